"""Processing never loses an upload, on the local stack under injected faults.

Hundreds of uploads go through the real API and presigned POSTs, concurrently, while the
poller throttles a share of ProcessFunction's AWS calls (real botocore ClientErrors),
delivers a share of the S3 notifications twice and late, and fails every attempt for a few
"poison" objects. Then: every upload has exactly one state and the event log exactly one
terminal event per settled upload, nothing is in flight, the poison uploads are FAILED
with their messages in the dead-letter queue; with faults off, the redrive command brings
them back and they complete. Every event is checked against its published schema.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import ROOT, Stack, start_stack, stop_stack
from tests.event_schemas import validate_event
from tests.support.samples import png

pytestmark = pytest.mark.slow

USERS = 20  # each with its own pending-upload quota (20 by default)
PLAIN, IMAGES, CORRUPT, POISON = 160, 25, 5, 10  # 200 uploads
FAULT_RATE = 0.03  # share of the processor's S3 / UploadsTable / EventBridge calls throttled
DUPLICATE_RATE = 0.2  # share of notifications (and of malware scan verdicts) delivered twice
# the file profile's scan timeout here: long enough for the scanners' backlog on a loaded machine
# (a verdict later than this rejects the upload, as it should: fail closed)
SCAN_TIMEOUT = 75
TERMINAL = {"PROCESSED", "REJECTED"}
TERMINAL_EVENTS = {"Upload Processed", "Upload Rejected"}


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
        out: dict[str, dict[str, Any]] = {}
        kwargs: dict[str, Any] = {"TableName": self.table}
        while True:
            page = self.ddb.scan(**kwargs)
            for item in page["Items"]:
                if item["pk"]["S"].startswith("upload#"):
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


def wait_until(what: str, done: Callable[[], bool], timeout: float, state: Callable[[], Any] | None = None) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if done():
            return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"not reached in {timeout}s: {what}" + (f" ({state()})" if state else ""))


def check_events(stack: Stack) -> list[dict[str, Any]]:
    events = stack.events()
    for event in events:
        validate_event(event)
    return events


def test_no_upload_is_lost_under_faults_duplicates_and_poison(tmp_path: Path) -> None:
    switch = tmp_path / "faults-on"
    switch.touch()
    env = {
        "LOCAL_FAULT_RATE": str(FAULT_RATE),
        "LOCAL_DUPLICATE_RATE": str(DUPLICATE_RATE),
        "LOCAL_POISON_KEYS": "*/poison-*",
        "LOCAL_FAULTS_SWITCH": str(switch),
        "LOCAL_FAULT_SEED": "20261122",
    }
    started = time.monotonic()
    # failed messages come back at once: the poison ones run out of their 5 receives in moments;
    # each scanned upload's deadline check comes back after the scan timeout, a no-op by then
    from directupload.profiles import BUILTIN_PROFILES

    profiles = {name: p.model_dump(by_alias=True, exclude={"name"}) for name, p in BUILTIN_PROFILES.items()}
    profiles["file"]["scanTimeoutSeconds"] = SCAN_TIMEOUT
    stack = start_stack(
        tmp_path / "stack",
        "--retry-delay",
        "0",
        "--parameter",
        f"ProfilesJson={json.dumps(profiles)}",
        env=env,
        auth="jwt",
    )
    try:
        emulator = Emulator(stack)
        client = Client(stack)

        # --- When 200 uploads go through the API and S3 at once, under faults
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            uploads = list(pool.map(lambda pair: client.upload(*pair), enumerate(files())))
        upload_seconds = time.monotonic() - t0
        by_id = {u["uploadId"]: u for u in uploads}
        poison = {i for i, u in by_id.items() if u["expect"] == "FAILED"}
        assert len(by_id) == len(uploads) == 200

        def settled() -> bool:
            # the scans' deadline checks wait, delayed, until the scan timeout: a no-op by then
            # (checked at the end); a duplicate notification is delayed 2 s at most
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

        def state() -> str:
            statuses = Counter(r["status"]["S"] for r in emulator.records().values())
            kinds = Counter(e["detail-type"] for e in stack.events())
            queue = emulator.depth(emulator.queue, delayed=False)
            return f"queue {queue}, records {dict(statuses)}, events {dict(kinds)}"

        settle_seconds = wait_until("every upload settled, the ingest queue empty", settled, timeout=240, state=state)

        # --- Then every upload is in exactly one state, with nothing in flight
        records = emulator.records()
        status = {i: r["status"]["S"] for i, r in records.items()}
        assert set(status) == set(by_id)
        failed = {i for i, s in status.items() if s == "FAILED"}
        assert poison <= failed, "every poison upload ran out of retries"
        unlucky = failed - poison  # a normal upload throttled on all its attempts: legitimate, redriven below
        for upload_id, upload in by_id.items():
            if upload_id not in failed:
                assert status[upload_id] == upload["expect"], (upload["name"], records[upload_id])
        for upload_id in failed:
            assert records[upload_id]["error"]["S"].count("processing-failed") == 1
            assert "pending_event" not in records[upload_id]
        # clients and consumers get a code and a safe message; the reason, the last attempt's error
        # (the poison's SlowDown, a throttle that hit first, or, with several processor workers, a
        # duplicate delivery another worker held the lock of), is in the logs only
        transient = r"SlowDown|ThrottlingException|IdempotencyAlreadyInProgress"
        assert not any(re.search(transient, records[i]["error"]["S"]) for i in failed)
        gave_up = [line for line in stack.log().splitlines() if "processing failed for good" in line]
        for upload_id in failed:
            assert any(upload_id in line and re.search(transient, line) for line in gave_up), upload_id

        # and exactly one event per settled upload: terminal for the settled, Upload Failed for the failed
        events = check_events(stack)
        per = Counter((e["detail"]["uploadId"], e["detail-type"]) for e in events)
        assert all(n == 1 for n in per.values()), [k for k, n in per.items() if n > 1]
        event_of = {"PROCESSED": "Upload Processed", "REJECTED": "Upload Rejected", "FAILED": "Upload Failed"}
        for upload_id, upload in by_id.items():
            kinds = [kind for (i, kind) in per if i == upload_id]
            assert kinds == [event_of[status[upload_id]]], (upload["name"], kinds)

        # the failed uploads' messages wait in the dead-letter queue (duplicates of them too)
        dlq_keys = Counter(dead_letter_keys(emulator))
        assert {key for key in dlq_keys} == {by_id[i]["key"] for i in failed}

        # the faults really happened
        log = stack.log()
        injected = Counter(re.findall(r"^\[fault\] (\w+)", log, flags=re.MULTILINE))
        assert injected["throttle"] > 0 and injected["duplicate"] > 0
        assert injected["poison"] >= len(poison)  # how many depends on timing; the outcome is asserted above

        # --- When the faults stop and the dead-letter queue is redriven (the `make redrive` command)
        switch.unlink()
        t1 = time.monotonic()
        command = [sys.executable, "-m", "local.redrive", "--state", str(stack.state_dir / "stack.json")]
        redriven = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
        assert f"moved {sum(dlq_keys.values())} message(s)" in redriven.stdout, redriven.stdout

        def all_final() -> bool:
            terminal = sum(1 for e in stack.events() if e["detail-type"] in TERMINAL_EVENTS)
            if terminal < len(by_id) or emulator.depth(emulator.queue, delayed=False):
                return False
            statuses = Counter(r["status"]["S"] for r in emulator.records().values())
            return statuses["PROCESSED"] + statuses["REJECTED"] == len(by_id)

        wait_until("every redriven upload completed", all_final, timeout=60)
        redrive_seconds = time.monotonic() - t1

        # --- Then every upload has its one terminal state and its one terminal event, and nothing is left
        # (the scans' deadline checks came and went: each found its upload final and changed nothing)
        wait_until(
            "every scan deadline check came and went",
            lambda: emulator.depth(emulator.queue) == 0,
            timeout=SCAN_TIMEOUT + 60,
        )
        time.sleep(1.5)  # one more poll cycle: a stray late event would show up now
        records = emulator.records()
        for upload_id, upload in by_id.items():
            expected = "REJECTED" if upload["expect"] == "REJECTED" else "PROCESSED"
            assert records[upload_id]["status"]["S"] == expected, (upload["name"], records[upload_id].get("error"))
            assert "pending_event" not in records[upload_id]
        events = check_events(stack)
        terminal = Counter(e["detail"]["uploadId"] for e in events if e["detail-type"] in TERMINAL_EVENTS)
        assert terminal == Counter({i: 1 for i in by_id})
        failed_events = Counter(e["detail"]["uploadId"] for e in events if e["detail-type"] == "Upload Failed")
        assert failed_events == Counter({i: 1 for i in failed})
        # a redriven upload's Upload Failed comes before its terminal event
        order = [(e["detail"]["uploadId"], e["detail-type"]) for e in events]
        for upload_id in failed:
            assert order.index((upload_id, "Upload Failed")) < order.index((upload_id, "Upload Processed"))
        assert emulator.depth(emulator.queue) == 0 and emulator.depth(emulator.dlq) == 0

        print(
            f"\nfault injection: {len(by_id)} uploads in {upload_seconds:.1f}s, settled in {settle_seconds:.1f}s, "
            f"redriven {sum(dlq_keys.values())} message(s) of {len(failed)} upload(s) "
            f"({len(unlucky)} not poison) in {redrive_seconds:.1f}s; injected {dict(injected)}; "
            f"events {len(events)}; total {time.monotonic() - started:.1f}s"
        )
    finally:
        stop_stack(stack)


def dead_letter_keys(emulator: Emulator) -> list[str]:
    """The object keys of the notifications (and scan verdicts) in the dead-letter queue (left
    there: read and let go)."""
    import json
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
