"""Processing never loses an upload, on the local stack under injected faults.

Hundreds of uploads go through the real API and presigned POSTs, concurrently, while the
poller throttles a share of ProcessFunction's AWS calls (real botocore ClientErrors),
delivers a share of the S3 notifications twice and late, and fails every attempt for a few
"poison" objects. Then: every upload has exactly one state and the event log exactly one
terminal event per settled upload, nothing is in flight, the poison uploads are FAILED
with their messages in the dead-letter queue; with faults off, the redrive command brings
them back and they complete. Every event is checked against its published schema.

The workload runs once per module (the ``run`` fixture) and the redrive once after it (the
``redriven`` fixture); each test asserts one property of the state those left, so a failure
says which property broke.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import ROOT, Stack, start_stack, stop_stack
from tests.event_schemas import validate_event
from tests.support.samples import png
from tests.support.template import partition_key
from tests.support.waiting import poll

# one worker runs the whole module: its tests read the state of one run of the workload; the
# run's own waits (start, uploads, SETTLE_TIMEOUT) end well within the module's timeout, so a
# run that does not settle says why (Emulator.state) instead of being cut off
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

USERS = 20  # each with its own pending-upload quota (20 by default)
PLAIN, IMAGES, CORRUPT, POISON = 160, 25, 5, 10  # 200 uploads
FAULT_RATE = 0.03  # share of the processor's S3 / UploadsTable calls and the publisher's PutEvents throttled
DUPLICATE_RATE = 0.2  # share of notifications (and of malware scan verdicts) delivered twice
# the file profile's scan timeout here: long enough for the scanners' backlog on a loaded machine
# (a verdict later than this rejects the upload, as it should: fail closed)
SCAN_TIMEOUT = 75
SETTLE_TIMEOUT = 240  # seconds for the 200 uploads to settle under faults
REDRIVE_TIMEOUT = 60  # seconds for the redriven uploads to complete
# what a stuck upload's record is diagnosed by
DIAGNOSED = {"status", "claim_by", "claim_until", "claim_etag", "pending_event", "scan_deadline", "outcome_of"}
TERMINAL_EVENTS = {"Upload Processed", "Upload Rejected"}
EVENT_OF = {"PROCESSED": "Upload Processed", "REJECTED": "Upload Rejected", "FAILED": "Upload Failed"}
# the error of a failed attempt (the poison's SlowDown, a throttle, a duplicate delivery whose
# upload another attempt held): in the logs, never in what clients and consumers see
TRANSIENT = r"SlowDown|ThrottlingException|ClaimHeldError"


def a_png(n: int) -> bytes:
    return png(32 + n % 7, 24, color=(n % 255, 80, 160))


def files() -> list[dict[str, Any]]:
    """What to upload: plain text, images, corrupt images (rejected), and poison (fail every attempt)."""
    out: list[dict[str, Any]] = []
    out += [
        {
            "name": f"note-{i}.txt",
            "data": f"note {i}\n".encode() * (1 + i % 5),
            "type": "text/plain",
            "profile": "file",
            "expect": "PROCESSED",
        }
        for i in range(PLAIN)
    ]
    out += [
        {"name": f"pic-{i}.png", "data": a_png(i), "type": "image/png", "profile": "avatar", "expect": "PROCESSED"}
        for i in range(IMAGES)
    ]
    out += [
        {"name": f"cut-{i}.png", "data": a_png(i)[:60], "type": "image/png", "profile": "avatar", "expect": "REJECTED"}
        for i in range(CORRUPT)
    ]
    out += [
        {"name": f"poison-{i}.txt", "data": b"poison\n", "type": "text/plain", "profile": "file", "expect": "FAILED"}
        for i in range(POISON)
    ]
    return out


class Client:
    """What an app does: a token per user, POST /uploads, then the presigned POST to S3."""

    def __init__(self, stack: Stack) -> None:
        self.url = stack.url
        self.session = requests.Session()
        self.session.mount("http://", requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=32))
        self.tokens = {f"user{u}": self._token(f"user{u}") for u in range(USERS)}

    def _token(self, user: str) -> str:
        reply = self.session.post(f"{self.url}/local/token", json={"user": user}, timeout=10)
        reply.raise_for_status()
        return str(reply.json()["token"])

    def upload(self, index: int, file: dict[str, Any]) -> dict[str, Any]:
        token = self.tokens[f"user{index % USERS}"]
        reply = self.session.post(
            f"{self.url}/uploads",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
            json={
                "profile": file["profile"],
                "filename": file["name"],
                "contentType": file["type"],
                "size": len(file["data"]),
            },
        )
        assert reply.status_code == 201, reply.text
        issued = reply.json()
        posted = self.session.post(
            issued["url"], data=issued["fields"], timeout=30, files={"file": (file["name"], file["data"], file["type"])}
        )
        assert posted.status_code == 204, posted.text
        return {**file, "uploadId": issued["uploadId"], "key": issued["key"]}


class Emulator:
    """Reads the stack's state straight from its emulator: records, queues."""

    def __init__(self, stack: Stack) -> None:
        import boto3

        info = stack.info
        # the emulator accepts any credentials; these are placeholders, not secrets
        kwargs = {
            "region_name": info["region"],
            "endpoint_url": info["emulatorUrl"],
            "aws_access_key_id": "local",
            "aws_secret_access_key": "local",
        }
        self.ddb = boto3.client("dynamodb", **kwargs)
        self.sqs = boto3.client("sqs", **kwargs)
        self.table = info["uploadsTable"]
        self.queue = info["ingestQueueUrl"]
        self.dlq = info["deadLetterQueueUrl"]

    def records(self) -> dict[str, dict[str, Any]]:
        """Every upload record, by upload id (the table's quota items left out)."""
        from directupload.store import upload_pk

        key, prefix = partition_key(), upload_pk("")
        out: dict[str, dict[str, Any]] = {}
        kwargs: dict[str, Any] = {"TableName": self.table}
        while True:
            page = self.ddb.scan(**kwargs)
            for item in page["Items"]:
                if item[key]["S"].startswith(prefix):
                    out[item["upload_id"]["S"]] = item
            if "LastEvaluatedKey" not in page:
                return out
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def depth(self, url: str, delayed: bool = True) -> int:
        """Messages in the queue: waiting, in flight, and (``delayed``) not yet due."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        if delayed:
            names.append("ApproximateNumberOfMessagesDelayed")
        attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        return sum(int(v) for v in attrs.values())

    def off(self, stack: Stack, by_id: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
        """The counts, and the uploads whose record or events are off (by id: name, status, their
        terminal and failed events, claims and the event owed last)."""
        records = self.records()
        events = stack.events()
        terminal = Counter(e["detail"]["uploadId"] for e in events if e["detail-type"] in TERMINAL_EVENTS)
        failed = Counter(e["detail"]["uploadId"] for e in events if e["detail-type"] == "Upload Failed")
        off = {}
        for upload_id, upload in by_id.items():
            record = records.get(upload_id, {})
            status = record.get("status", {}).get("S")
            final = status in {"PROCESSED", "REJECTED"}
            if (final and terminal[upload_id] != 1) or (not final and status != "FAILED") or failed[upload_id] > 1:
                fields = {k: v.get("S", v.get("N")) for k, v in record.items() if k in DIAGNOSED - {"status"}}
                told = f"terminal {terminal[upload_id]} failed {failed[upload_id]}"
                off[upload_id] = (upload["name"], status, told, fields)
        counts = (
            f"records {dict(Counter(r['status']['S'] for r in records.values()))}; "
            f"events {dict(Counter(e['detail-type'] for e in events))}; "
            f"ingest {self.depth(self.queue)} dead letters {self.depth(self.dlq)}"
        )
        return counts, off

    def brief(self, stack: Stack, by_id: dict[str, dict[str, Any]]) -> str:
        """What a failed run is diagnosed by, short enough to survive a CI log's cut."""
        counts, off = self.off(stack, by_id)
        return f"{counts}; off {dict(list(off.values())[:8])}"

    def state(self, stack: Stack, by_id: dict[str, dict[str, Any]]) -> str:
        """The brief, the queue's counts, and what the stack logged of the uploads that are off."""
        counts, off = self.off(stack, by_id)
        queue = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["All"])["Attributes"]
        depth = {k.removeprefix("ApproximateNumberOf"): v for k, v in queue.items() if k.startswith("Approximate")}
        log = stack.log().splitlines()
        lines = {i: [line[:400] for line in log if i in line][-8:] for i in list(off)[:5]}
        troubles = [line[:300] for line in log if line.startswith(("[poller]", "[events]", "Traceback"))][-10:]
        return f"{counts}; queue {depth}; off {off}; their log lines {lines}; the stack's troubles {troubles}"


# --- the run: once per module, its state read in phases --------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """What the stack holds at one moment: every record, every event, the log, and the
    dead-letter queue's object keys."""

    records: dict[str, dict[str, Any]]
    events: list[dict[str, Any]]
    log: str
    dead_letter_keys: Counter[str]

    @classmethod
    def of(cls, stack: Stack, emulator: Emulator, dead_letters: bool = False) -> Snapshot:
        return cls(
            emulator.records(),
            stack.events(),
            stack.log(),
            Counter(dead_letter_keys(emulator)) if dead_letters else Counter(),
        )

    def status(self) -> dict[str, str]:
        return {upload_id: record["status"]["S"] for upload_id, record in self.records.items()}


@dataclass(frozen=True)
class Run:
    """The stack under faults, the 200 uploads sent through it, and how they settled."""

    stack: Stack
    emulator: Emulator
    switch: Path
    by_id: dict[str, dict[str, Any]]
    started: float
    upload_seconds: float
    settle_seconds: float | None  # None: not settled within the wait
    settled_state: str  # the stack's state when the wait ended
    settled: Snapshot
    brief: str  # what a failure is diagnosed by (brief)

    @property
    def poison(self) -> set[str]:
        return {i for i, u in self.by_id.items() if u["expect"] == "FAILED"}

    @property
    def failed(self) -> set[str]:
        return {i for i, s in self.settled.status().items() if s == "FAILED"}

    def state(self) -> str:
        return self.emulator.state(self.stack, self.by_id)


def injected(log: str) -> Counter[str]:
    """The faults the stack's log says it injected, by kind."""
    return Counter(re.findall(r"^\[fault\] (\w+)", log, flags=re.MULTILINE))


def timed(condition: Callable[[], bool], timeout: float, interval: float = 0.5) -> float | None:
    """Seconds until ``condition`` held (polled), or None if it did not within ``timeout``."""
    started = time.monotonic()
    return time.monotonic() - started if poll(condition, timeout, interval) else None


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """200 uploads through the API and S3 at once, under faults, waited for until they settle."""
    from directupload.profiles import BUILTIN_PROFILES

    tmp_path = tmp_path_factory.mktemp("faults")
    started = time.monotonic()
    switch = tmp_path / "faults-on"
    switch.touch()
    env = {
        "LOCAL_FAULT_RATE": str(FAULT_RATE),
        "LOCAL_DUPLICATE_RATE": str(DUPLICATE_RATE),
        "LOCAL_POISON_KEYS": "*/poison-*",
        "LOCAL_FAULTS_SWITCH": str(switch),
        "LOCAL_FAULT_SEED": "20261122",
    }
    # failed messages come back after 1 s (the local stack's default; Lambda waits out the backoff):
    # the poison ones run out of their receives in seconds, and a delivery held by another's
    # claim (a twin, a duplicate verdict) is not spun through all its receives while the holder
    # is still at work, which on AWS its backoff, longer than a claim lives, rules out;
    # each scanned upload's deadline check comes back after the scan timeout, a no-op by then
    profiles = {name: p.model_dump(by_alias=True, exclude={"name"}) for name, p in BUILTIN_PROFILES.items()}
    profiles["file"]["scanTimeoutSeconds"] = SCAN_TIMEOUT
    stack = start_stack(
        tmp_path / "stack",
        "--retry-delay",
        "1",
        "--parameter",
        f"ProfilesJson={json.dumps(profiles)}",
        env=env,
        auth="jwt",
    )
    try:
        emulator = Emulator(stack)
        client = Client(stack)

        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            uploads = list(pool.map(lambda pair: client.upload(*pair), enumerate(files())))
        upload_seconds = time.monotonic() - t0
        by_id = {u["uploadId"]: u for u in uploads}
        assert len(by_id) == len(uploads) == PLAIN + IMAGES + CORRUPT + POISON, "every upload got its own id"

        def settled() -> bool:
            # the scans' deadline checks wait, delayed, until the scan timeout: a no-op by then
            # (checked after the redrive); a duplicate notification is delayed 2 s at most
            if emulator.depth(emulator.queue, delayed=False) or len(stack.events()) < len(by_id):
                return False  # cheap checks first: the scan below competes with the stack for the CPU
            statuses = Counter(r["status"]["S"] for r in emulator.records().values())
            kinds = Counter(e["detail-type"] for e in stack.events())
            return (
                sum(statuses.values()) == len(by_id)
                and statuses["PENDING"] == statuses["UPLOADED"] == statuses["SCANNING"] == 0
                and kinds["Upload Processed"] + kinds["Upload Rejected"] == statuses["PROCESSED"] + statuses["REJECTED"]
                and kinds["Upload Failed"] == statuses["FAILED"]
            )

        settle_seconds = timed(settled, SETTLE_TIMEOUT)
        settled_state = emulator.state(stack, by_id)
        snapshot = Snapshot.of(stack, emulator, dead_letters=True)
        settled_brief = f"settled after {settle_seconds}s: {emulator.brief(stack, by_id)}"
        yield Run(
            stack,
            emulator,
            switch,
            by_id,
            started,
            upload_seconds,
            settle_seconds,
            settled_state,
            snapshot,
            settled_brief,
        )
    finally:
        stop_stack(stack)


@dataclass(frozen=True)
class Redrive:
    """The faults off, the dead-letter queue redriven, and what came of it."""

    returncode: int
    stdout: str
    stderr: str
    final_seconds: float | None  # None: not every upload final within the wait
    final_state: str
    drained: bool  # the ingest queue empty, the scans' deadline checks included
    dead_left: int  # messages in the dead-letter queue right after the redrive
    after: Snapshot
    brief: str  # what a failure is diagnosed by (brief)


@pytest.fixture(scope="module")
def redriven(run: Run) -> Redrive:
    """With the faults off, the dead-letter queue redriven (the `make redrive` command), waited for
    until every upload is final and the scans' deadline checks came and went."""
    stack, emulator = run.stack, run.emulator
    run.switch.unlink()
    t1 = time.monotonic()
    command = [sys.executable, "-m", "scripts.redrive", "--state", str(stack.state_dir / "stack.json")]
    redriven = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    dead_left = emulator.depth(emulator.dlq)

    def all_final() -> bool:
        terminal = sum(1 for e in stack.events() if e["detail-type"] in TERMINAL_EVENTS)
        if terminal < len(run.by_id) or emulator.depth(emulator.queue, delayed=False):
            return False
        statuses = Counter(r["status"]["S"] for r in emulator.records().values())
        return statuses["PROCESSED"] + statuses["REJECTED"] == len(run.by_id)

    final_seconds = timed(all_final, REDRIVE_TIMEOUT)
    final_state = run.state()
    redrive_seconds = time.monotonic() - t1
    # each scanned upload's deadline check comes back after the scan timeout: it finds its upload
    # final and changes nothing
    drained = poll(lambda: emulator.depth(emulator.queue) == 0, SCAN_TIMEOUT + 60, 0.5) is not None
    time.sleep(1.5)  # one more poll cycle: a stray late event would show up now
    after = Snapshot.of(stack, emulator)
    print(
        f"\nfault injection: {len(run.by_id)} uploads in {run.upload_seconds:.1f}s, settled in "
        f"{run.settle_seconds or float('nan'):.1f}s, redriven {sum(run.settled.dead_letter_keys.values())} "
        f"message(s) of {len(run.failed)} upload(s) ({len(run.failed - run.poison)} not poison) in "
        f"{redrive_seconds:.1f}s; injected {dict(injected(run.settled.log))}; events {len(after.events)}; "
        f"total {time.monotonic() - run.started:.1f}s"
    )
    final_brief = f"{run.brief} | after the redrive ({final_seconds}s): {emulator.brief(stack, run.by_id)}"
    return Redrive(
        redriven.returncode,
        redriven.stdout,
        redriven.stderr,
        final_seconds,
        final_state,
        drained,
        dead_left,
        after,
        final_brief,
    )


@pytest.fixture(autouse=True)
def diagnosis(request: pytest.FixtureRequest) -> None:
    """A failure's diagnosis, printed at the end of the run (tests/conftest.py)."""
    for name in ("redriven", "run"):
        if name in request.fixturenames:
            request.node.user_properties.append(("diagnosis", request.getfixturevalue(name).brief))
            return


# --- under faults: every upload settles, once --------------------------------------------------


def test_every_upload_settles_with_nothing_left_in_flight(run: Run) -> None:
    assert run.settle_seconds is not None, (
        f"not every upload settled within {SETTLE_TIMEOUT}s, the ingest queue not empty: {run.settled_state}"
    )
    statuses = Counter(run.settled.status().values())
    assert statuses["PENDING"] == statuses["UPLOADED"] == statuses["SCANNING"] == 0, dict(statuses)


def test_every_upload_has_exactly_one_record_in_the_state_its_file_deserves(run: Run) -> None:
    status = run.settled.status()
    assert set(status) == set(run.by_id), "one record per upload, none missing, none extra"
    assert run.poison <= run.failed, f"poison uploads not FAILED: {run.poison - run.failed}"
    # a normal upload throttled on all its attempts may be FAILED too: legitimate, redriven later
    wrong = {
        upload["name"]: (status[upload_id], run.settled.records[upload_id].get("error"))
        for upload_id, upload in run.by_id.items()
        if upload_id not in run.failed and status[upload_id] != upload["expect"]
    }
    assert not wrong, wrong


def test_a_failed_upload_records_one_safe_error_and_its_reason_is_in_the_logs_only(run: Run) -> None:
    records = run.settled.records
    for upload_id in run.failed:
        assert records[upload_id]["error"]["S"].count("processing-failed") == 1, records[upload_id]["error"]
        assert records[upload_id]["pending_event"] == {"S": "Upload Failed"}, records[upload_id].get("pending_event")
    # clients and consumers get a code and a safe message; the reason, the last attempt's error
    # (the poison's SlowDown, a throttle that hit first, or, with several processor workers, a
    # duplicate delivery whose upload another attempt held), is in the logs only
    leaked = [i for i in run.failed if re.search(TRANSIENT, records[i]["error"]["S"])]
    assert not leaked, {i: records[i]["error"]["S"] for i in leaked}
    gave_up = [line for line in run.settled.log.splitlines() if "processing failed for good" in line]
    unlogged = [i for i in run.failed if not any(i in line and re.search(TRANSIENT, line) for line in gave_up)]
    assert not unlogged, f"failed without its reason logged: {unlogged}"


def test_each_settled_upload_has_exactly_one_schema_valid_event_of_its_state(run: Run) -> None:
    for event in run.settled.events:
        validate_event(event)
    per = Counter((e["detail"]["uploadId"], e["detail-type"]) for e in run.settled.events)
    assert all(n == 1 for n in per.values()), [k for k, n in per.items() if n > 1]
    status = run.settled.status()
    wrong = {}
    for upload_id, upload in run.by_id.items():
        kinds = [kind for (i, kind) in per if i == upload_id]
        if kinds != [EVENT_OF.get(status.get(upload_id, ""))]:
            wrong[upload["name"]] = (status.get(upload_id), kinds)
    assert not wrong, wrong


def test_the_failed_uploads_messages_wait_in_the_dead_letter_queue(run: Run) -> None:
    # their duplicates too: a key may be there more than once
    dead = set(run.settled.dead_letter_keys)
    assert dead == {run.by_id[i]["key"] for i in run.failed}, (
        f"in the DLQ but not FAILED: {dead - {run.by_id[i]['key'] for i in run.failed}}; "
        f"FAILED but not in the DLQ: {[run.by_id[i]['key'] for i in run.failed if run.by_id[i]['key'] not in dead]}"
    )


def test_the_faults_really_happened(run: Run) -> None:
    faults = injected(run.settled.log)
    assert faults["throttle"] > 0 and faults["duplicate"] > 0, dict(faults)
    assert faults["poison"] >= len(run.poison), dict(faults)  # how many depends on timing


# --- the faults off, the dead-letter queue redriven: every upload completes ----------------------


def test_the_redrive_moves_every_dead_lettered_message_back(run: Run, redriven: Redrive) -> None:
    assert redriven.returncode == 0, redriven.stdout + redriven.stderr
    moved = re.search(r"moved (\d+) message\(s\)", redriven.stdout)
    assert moved is not None, redriven.stdout
    # every one the queue held when the run settled, and any duplicate that failed after that
    assert int(moved.group(1)) >= sum(run.settled.dead_letter_keys.values()), redriven.stdout
    assert redriven.dead_left == 0, "the redrive left messages in the dead-letter queue"


def test_every_redriven_upload_completes(run: Run, redriven: Redrive) -> None:
    assert redriven.final_seconds is not None, (
        f"not every upload final within {REDRIVE_TIMEOUT}s of the redrive: {redriven.final_state}"
    )
    status = redriven.after.status()
    wrong = {}
    for upload_id, upload in run.by_id.items():
        expected = "REJECTED" if upload["expect"] == "REJECTED" else "PROCESSED"
        record = redriven.after.records.get(upload_id, {})
        if status.get(upload_id) != expected or "claim_by" in record:
            wrong[upload["name"]] = (status.get(upload_id), record.get("error"), record.get("claim_by"))
    assert not wrong, wrong


def test_each_upload_ends_with_one_terminal_event_after_its_one_upload_failed(run: Run, redriven: Redrive) -> None:
    events = redriven.after.events
    for event in events:
        validate_event(event)
    terminal = Counter(e["detail"]["uploadId"] for e in events if e["detail-type"] in TERMINAL_EVENTS)
    assert terminal == Counter({i: 1 for i in run.by_id}), {i: n for i, n in terminal.items() if n != 1}
    failed_events = Counter(e["detail"]["uploadId"] for e in events if e["detail-type"] == "Upload Failed")
    assert failed_events == Counter({i: 1 for i in run.failed})
    # a redriven upload's Upload Failed comes before its terminal event (Upload Rejected for a
    # corrupt image that failed under the faults before it was judged)
    order = [(e["detail"]["uploadId"], e["detail-type"]) for e in events]
    for upload_id in run.failed:
        final = [i for i, (u, kind) in enumerate(order) if u == upload_id and kind in TERMINAL_EVENTS]
        assert order.index((upload_id, "Upload Failed")) < final[0], upload_id


def test_nothing_is_left_in_the_ingest_or_the_dead_letter_queue(run: Run, redriven: Redrive) -> None:
    # the scans' deadline checks came and went: each found its upload final and changed nothing
    assert redriven.drained, f"the ingest queue not empty within {SCAN_TIMEOUT + 60}s: {run.state()}"
    assert run.emulator.depth(run.emulator.queue) == 0
    assert run.emulator.depth(run.emulator.dlq) == 0


def dead_letter_keys(emulator: Emulator) -> list[str]:
    """The object keys of the notifications (and scan verdicts) in the dead-letter queue (left
    there: read and let go)."""
    from urllib.parse import unquote_plus

    keys: list[str] = []
    held: dict[str, str] = {}
    while True:
        reply = emulator.sqs.receive_message(
            QueueUrl=emulator.dlq, MaxNumberOfMessages=10, VisibilityTimeout=30, WaitTimeSeconds=0
        )
        messages = reply.get("Messages", [])
        if not messages:
            break
        for message in messages:
            held[message["MessageId"]] = message["ReceiptHandle"]
            body = json.loads(message["Body"])
            for record in body.get("Records", []):  # S3's notification
                keys.append(unquote_plus(record["s3"]["object"]["key"]))
            if "s3ObjectDetails" in body.get("detail", {}):  # the malware scanner's verdict on it
                keys.append(body["detail"]["s3ObjectDetails"]["objectKey"])
    handles = list(held.values())
    for start in range(0, len(handles), 10):  # visible again, for the redrive
        batch = handles[start : start + 10]
        emulator.sqs.change_message_visibility_batch(
            QueueUrl=emulator.dlq,
            Entries=[{"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0} for i, h in enumerate(batch)],
        )
    return keys
