"""End to end on the local stack (`python -m local.stack`, a subprocess, as `make run` starts it, auth
off, the template's default parameters but for ProfilesJson): how long after the bytes land in S3 a
client sees PROCESSED, and how many small uploads per second the whole stack carries (issue, POST
to S3, processed) with 16 clients. All 16 share the one anonymous owner: under the default limit
of 20 pending uploads: an issue that finds every slot taken frees those of the processed uploads.

The headline figures are of profile ``file-unscanned`` (the built-in ``file`` with ``scan: off``,
the scenario of the same name in bench/request_counts.py): the 0.2 s and 25/s targets are of the
product's own path, and on AWS a GuardDuty scan alone takes seconds. The scanned ``file`` profile's
figures are measured beside them, for information (the local scanner is ClamAV, not GuardDuty).

Whose cost the sustained rate is: a baseline in the same run makes the same AWS requests per
upload (that scenario's counts in bench/request_counts.json, so it follows when they change) by
hand with plain boto3, 16 clients, against the same emulator, with none of our code. Its DynamoDB
and EventBridge requests are the product's own, replayed: the emulator captures the bodies of one
upload's requests, and the baseline sends the same expressions, conditions and ReturnValues for
uploads of its own, so the emulator does the same work for them; its S3 requests carry the
product's conditions and headers (GET If-Match, the promotion's CopySourceIfMatch and SHA-256).
The CPU seconds each process of the stack spent while each ran (/proc, Linux) say which one is
saturated.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from botocore import xform_name

from bench.figures import Figure, Target, percentile
from local.launch import Stack, start_stack, stop_stack

CONTENT = b"directupload end to end\n" * 40  # ~1 KiB of text: profile "file", verify only
# its ETag in S3 (one part, no KMS): what the by-hand GET and copy are conditioned on, as the
# product's are on the notification's (a wrong one fails them: 412)
CONTENT_ETAG = hashlib.md5(CONTENT, usedforsecurity=False).hexdigest()
UNSCANNED = "file-unscanned"  # the headline: "file" without the scan (bench/request_counts.py's scenario)
SCANNED = "file"  # informational: the built-in profile, malware scan required
LATENCY_POLL = 0.02  # the brief's client: GET /uploads/{id} every ~20 ms
THROUGHPUT_POLL = 0.1  # 16 clients at 20 ms would be 800 GET/s: the polling would be the load
CLIENTS = 16
# what the product's sustained rate must reach of the same request mix made by hand: the product
# also runs the API handler and the processor (Python, on the same two cores as the emulator) and
# polls the status until PROCESSED; 0.8 leaves them a fifth of the machine's work
MIX_RATIO_TARGET = 0.8
FINAL = ("REJECTED", "FAILED", "CANCELLED", "EXPIRED")


def profiles_json() -> str:
    """The built-in profiles, and ``file-unscanned``: ``file`` with the scan off."""
    from directupload.profiles import BUILTIN_PROFILES

    profiles = {name: p.model_dump(by_alias=True, exclude={"name"}) for name, p in BUILTIN_PROFILES.items()}
    profiles[UNSCANNED] = {**profiles[SCANNED], "scan": "off"}
    return json.dumps(profiles, separators=(",", ":"))


@contextmanager
def local_stack(timeout: float = 90) -> Iterator[Stack]:
    """The local stack on free ports (auth off, none of this process's AWS or powertools settings,
    the profiles of ``profiles_json``), stopped afterwards."""
    with tempfile.TemporaryDirectory(prefix="bench-stack-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "AWS_"))}
        stack = start_stack(Path(tmp), "--parameter", f"ProfilesJson={profiles_json()}", env=env, timeout=timeout)
        try:
            yield stack
        finally:
            stop_stack(stack)


class Client:
    """What a browser does: POST /uploads, POST the bytes to S3 with the presigned form, poll."""

    def __init__(self, api: str, profile: str = UNSCANNED) -> None:
        self.api = api
        self.profile = profile
        self.session = requests.Session()  # keep-alive to the gateway
        self.s3 = requests.Session()
        self.status_reads = 0

    def connect(self, attempts: int = 5) -> None:
        """Open the keep-alive connection to the gateway before the clock starts (a CORS preflight,
        which the gateway answers itself): 16 clients connecting at once can overflow the local
        gateway's listen backlog (http.server's 5), which resets a connection now and then."""
        for attempt in range(attempts):
            try:
                self.session.options(f"{self.api}/uploads", timeout=30)
                return
            except requests.ConnectionError:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.1 * (attempt + 1))

    def issue(self) -> dict[str, Any]:
        reply = self.session.post(
            f"{self.api}/uploads",
            json={
                "profile": self.profile,
                "filename": f"e2e-{uuid.uuid4().hex[:8]}.txt",
                "contentType": "text/plain",
                "size": len(CONTENT),
            },
            timeout=30,
        )
        if reply.status_code != 201:
            raise RuntimeError(f"POST /uploads answered {reply.status_code}: {reply.text[:300]}")
        issued: dict[str, Any] = reply.json()
        return issued

    def put(self, issued: dict[str, Any]) -> requests.Response:
        reply = self.s3.post(
            issued["url"], data=issued["fields"], files={"file": ("e2e.txt", CONTENT, "text/plain")}, timeout=30
        )
        if reply.status_code not in (200, 201, 204):
            raise RuntimeError(f"S3 answered {reply.status_code}: {reply.text[:300]}")
        return reply

    def wait_processed(self, upload_id: str, poll: float, timeout: float = 60) -> tuple[float, list[float]]:
        """When PROCESSED was first seen (perf_counter), and each GET's round trip."""
        deadline = time.monotonic() + timeout
        round_trips = []
        while time.monotonic() < deadline:
            started = time.perf_counter()
            reply = self.session.get(f"{self.api}/uploads/{upload_id}", timeout=30)
            seen = time.perf_counter()
            self.status_reads += 1
            round_trips.append(seen - started)
            status = reply.json().get("status")
            if status == "PROCESSED":
                return seen, round_trips
            if status in FINAL:
                raise RuntimeError(f"upload {upload_id} ended {status}: {reply.text[:300]}")
            time.sleep(poll)
        raise RuntimeError(f"upload {upload_id} not PROCESSED after {timeout}s")


def latency_samples(stack: Stack, count: int, profile: str = UNSCANNED) -> tuple[list[float], list[float], list[str]]:
    """Seconds from the S3 POST's answer to PROCESSED seen through GET, for ``count`` uploads one
    after another; the GET round trips; the upload ids."""
    client = Client(stack.url, profile)
    latencies, trips, ids = [], [], []
    for _ in range(count):
        issued = client.issue()
        client.put(issued)
        landed = time.perf_counter()
        seen, round_trips = client.wait_processed(issued["uploadId"], LATENCY_POLL)
        latencies.append(seen - landed)
        trips.extend(round_trips)
        ids.append(issued["uploadId"])
    return latencies, trips, ids


# -- where the CPU goes -------------------------------------------------------------------------

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
HOST = "stack host (gateway, pollers, event tap, scanner threads)"
REAPED = "the stack's finished children (clamscan per scanned object)"
BENCH = "the 16 clients (this process)"
EMULATOR = "emulator (moto, one process)"


def _stat(pid: int) -> tuple[int, float, float] | None:
    """(parent pid, own CPU seconds, its finished children's CPU seconds) from /proc/PID/stat."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = text.rsplit(")", 1)[1].split()  # fields 3.. (the command may hold spaces and parentheses)
    utime, stime, cutime, cstime = (int(x) for x in rest[11:15])
    return int(rest[1]), (utime + stime) / TICKS, (cutime + cstime) / TICKS


def _role(pid: int) -> str:
    """Which part of the local stack a process is, by its command line."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "other"

    def after(flag: str) -> str | None:
        return argv[argv.index(flag) + 1] if flag in argv[:-1] else None

    if "local.emulator" in argv:
        return EMULATOR
    if "local.worker" in argv:
        return after("--function") or "ProcessFunction"
    if "local.function_host" in argv:
        return after("--name") or "function"
    return "other"


def cpu_snapshot(root: int) -> dict[str, float]:
    """CPU seconds so far of each part of the stack under ``root`` (the stack's process), and of
    this process; parts with several processes (the ProcessFunction workers) summed."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            stats[int(entry)] = stat
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    out: defaultdict[str, float] = defaultdict(float)
    if root in stats:
        out[HOST] += stats[root][1]
        out[REAPED] += stats[root][2]
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        out[_role(pid)] += stats[pid][1]
        todo.extend(children.get(pid, []))
    own = os.times()
    out[BENCH] = own.user + own.system
    return dict(out)


def cpu_shares(before: dict[str, float], after: dict[str, float], wall: float) -> dict[str, Any]:
    """Each part's CPU seconds over the run, its share of all of them, and cores it kept busy."""
    spent = {name: max(0.0, after.get(name, 0.0) - before.get(name, 0.0)) for name in after}
    total = sum(spent.values()) or 1.0
    return {
        "wallSeconds": round(wall, 3),
        "cpuSeconds": {name: round(s, 3) for name, s in sorted(spent.items(), key=lambda kv: -kv[1])},
        "shares": {name: round(s / total, 3) for name, s in sorted(spent.items(), key=lambda kv: -kv[1])},
        "cores": {name: round(s / wall, 3) for name, s in sorted(spent.items(), key=lambda kv: -kv[1])},
        "coresTotal": round(total / wall, 3),
    }


# -- 16 clients, closed loop ----------------------------------------------------------------------


MIX_KEY = "bench-by-hand"  # the by-hand baseline's access key: the emulator counts its requests apart


def served_requests(stack: Stack, reset: bool = False) -> dict[str, int]:
    """The requests the emulator served since its counter's last reset, by who made them (a
    function's role, the scanner, the by-hand baseline, the harness's key; empty long polls apart)."""
    from local.request_log import EMPTY_RECEIVE, PATH

    url = stack.info["emulatorUrl"] + PATH
    if reset:
        requests.delete(url, timeout=10).raise_for_status()
        return {}
    reply = requests.get(url, timeout=10)
    reply.raise_for_status()
    out: defaultdict[str, int] = defaultdict(int)
    for entry in reply.json()["requests"]:
        empty = entry["operation"] == EMPTY_RECEIVE
        out[f"{entry['principal']}{' (empty long polls)' if empty else ''}"] += int(entry["count"])
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


@dataclass
class Run:
    per_second: float
    counted: int  # cycles finished before the deadline
    completed: int  # every cycle finished (those past the deadline too: their requests were made)
    status_reads: int
    errors: list[str]
    cpu: dict[str, Any] = field(default_factory=dict)
    served: dict[str, int] = field(default_factory=dict)  # requests the emulator served meanwhile, by whom

    def served_per_upload(self) -> dict[str, float]:
        return {who: round(n / self.completed, 2) for who, n in self.served.items()} if self.completed else {}


def sustained(
    stack: Stack, seconds: float, make_cycle: Callable[[], Callable[[Client], None]], profile: str = UNSCANNED
) -> Run:
    """CLIENTS threads, each with a cycle of its own (``make_cycle``, built before the clock
    starts), starting it back to back for ``seconds``: cycles finished per second (each client's
    own rate, summed), and where the CPU went meanwhile."""
    done = [0] * CLIENTS
    completed = [0] * CLIENTS
    last = [0.0] * CLIENTS  # when each client finished its last cycle
    errors: list[str] = []
    clients = [Client(stack.url, profile) for _ in range(CLIENTS)]
    ready, go = threading.Barrier(CLIENTS + 1), threading.Barrier(CLIENTS + 1)
    clock: dict[str, float] = {}

    def run(i: int) -> None:
        cycle: Callable[[Client], None] | None = None
        try:
            cycle = make_cycle()
            clients[i].connect()
        except Exception as exc:  # reported below; the barriers must still be met
            errors.append(f"setting up: {type(exc).__name__}: {exc}")
        ready.wait()
        go.wait()
        deadline = clock["deadline"]
        if cycle is None:
            return
        while time.perf_counter() < deadline:
            try:
                cycle(clients[i])
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                return
            completed[i] += 1
            last[i] = time.perf_counter()
            if time.perf_counter() <= deadline:
                done[i] += 1

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    ready.wait()  # every client's cycle built and its connection to the gateway open
    served_requests(stack, reset=True)
    before = cpu_snapshot(stack.process.pid)
    started = time.perf_counter()
    clock["deadline"] = started + seconds
    go.wait()
    for thread in threads:
        thread.join(timeout=seconds + 120)
    wall = time.perf_counter() - started
    cpu = cpu_shares(before, cpu_snapshot(stack.process.pid), wall)
    served = served_requests(stack)
    # each client's cycles run back to back from the start: its rate is its cycles over the time
    # until its last one ended (the one that straddles the deadline included, not cut off)
    rate = sum(n / (end - started) for n, end in zip(completed, last, strict=True) if n)
    reads = sum(c.status_reads for c in clients)
    return Run(rate, sum(done), sum(completed), reads, errors, cpu, served)


def full_upload() -> Callable[[Client], None]:
    def cycle(client: Client) -> None:
        issued = client.issue()
        client.put(issued)
        client.wait_processed(issued["uploadId"], THROUGHPUT_POLL)

    return cycle


def raw_post_cycle(stack: Stack) -> Callable[[], Callable[[Client], None]]:
    """The floor: the same POST of the same bytes straight to the same emulator (a form signed
    here, a key outside incoming/ so nothing is notified or processed), nothing else."""
    from local.harness import client as aws_client

    def make() -> Callable[[Client], None]:
        s3 = aws_client("s3", stack.info["emulatorUrl"])

        def cycle(client: Client) -> None:
            signed = s3.generate_presigned_post(
                Bucket=stack.info["bucket"],
                Key=f"bench/{uuid.uuid4().hex}.txt",
                Fields={"Content-Type": "text/plain"},
                Conditions=[{"Content-Type": "text/plain"}],
                ExpiresIn=900,
            )
            client.put(signed)

        return cycle

    return make


# -- the same request mix by hand ---------------------------------------------------------------


# the product's requests the by-hand cycle replays as the product made them (JSON protocol: the
# emulator captures their bodies); the rest it makes by hand with the product's parameters
REPLAYED = (
    "dynamodb:TransactWriteItems",
    "dynamodb:UpdateItem",
    "dynamodb:PutItem",
    "dynamodb:GetItem",
    "events:PutEvents",
)
PRODUCT_ROLES = ("ApiFunction", "ProcessFunction", "PublishFunction")


@dataclass(frozen=True)
class Captured:
    """The product's own DynamoDB and EventBridge requests for one upload, as the emulator received
    them (``/_local/requests?capture=1``): the by-hand cycle sends the same expressions, conditions,
    attributes and ReturnValues, so the emulator does the same work for them as for the product's."""

    upload_id: str
    bodies: dict[str, list[dict[str, Any]]]  # "service:Operation" -> the request bodies, in order
    owner_item: dict[str, Any]  # the product's owner item, read after the capture (its open slots are reset)

    def request(self, name: str, n: int, upload_id: str, owner_pk: str, bus: str) -> dict[str, Any] | None:
        """The ``n``-th request of kind ``name`` (the last one again past the captured count) for
        by-hand upload ``upload_id``, as boto3 parameters; None if the product made none."""
        made = self.bodies.get(name)
        if not made:
            return None
        text = json.dumps(made[min(n, len(made) - 1)]).replace(self.upload_id, upload_id)
        params: dict[str, Any] = json.loads(text)
        params.pop("ClientRequestToken", None)  # each transaction is a new one
        for item in params.get("TransactItems", []):
            for write in item.values():
                if write.get("Key", {}).get("pk", {}).get("S", "").startswith("owner#"):
                    write["Key"] = {"pk": {"S": owner_pk}}
                if "owner" in write.get("Item", {}):
                    write["Item"]["owner"] = {"S": owner_pk.removeprefix("owner#")}
        for entry in params.get("Entries", []):
            entry.update(Source="bench.mix", EventBusName=bus)  # to the by-hand bus and its rule
        return _binary(params)


def _binary(value: Any) -> Any:
    """JSON's base64 binary attribute values as the bytes boto3 takes."""
    if isinstance(value, dict):
        if set(value) == {"B"} and isinstance(value["B"], str):
            return {"B": base64.b64decode(value["B"])}
        return {k: _binary(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_binary(v) for v in value]
    return value


def capture_product(stack: Stack) -> Captured:
    """One upload of the headline profile with the emulator capturing request bodies: the
    product's DynamoDB and EventBridge requests for it, in the order it made them."""
    from bench.request_counts import Counting
    from local.request_log import CAPTURE_LIMIT

    url = stack.info["emulatorUrl"] + "/_local/requests"
    counting = Counting(stack)

    def product_requests() -> list[dict[str, Any]]:
        return [c for c in counting.counts() if c["principal"] in PRODUCT_ROLES and "(empty)" not in c["operation"]]

    requests.delete(url, params={"capture": "1"}, timeout=10).raise_for_status()
    try:
        _, _, (upload_id,) = latency_samples(stack, 1)
        deadline = time.monotonic() + 60
        while not counting.announced(upload_id):  # until its event is out
            if time.monotonic() > deadline:
                raise RuntimeError(f"upload {upload_id}: its event did not go out")
            time.sleep(0.05)
        made: list[dict[str, Any]] = []
        while made != (made := product_requests()):  # and the product is done with it (the queue's delete)
            if time.monotonic() > deadline:
                raise RuntimeError(f"upload {upload_id}: the product's requests did not settle")
            time.sleep(1)
        captured = requests.get(url, timeout=10).json()["bodies"]
        if len(captured) >= CAPTURE_LIMIT:
            raise RuntimeError("the emulator's capture filled up: some of the product's requests were not kept")
    finally:
        requests.delete(url, timeout=10).raise_for_status()
    bodies: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in captured:
        name = f"{entry['service']}:{entry['operation']}"
        if entry["principal"] in PRODUCT_ROLES and name in REPLAYED and entry["body"]:
            bodies[name].append(json.loads(entry["body"]))
    owner_item: dict[str, Any] = {}
    for transaction in bodies.get("dynamodb:TransactWriteItems", [])[:1]:
        for item in transaction["TransactItems"]:
            key = item.get("Update", {}).get("Key")
            if key and key["pk"]["S"].startswith("owner#"):
                owner_item = dict(counting.ddb.get_item(TableName=stack.info["uploadsTable"], Key=key)["Item"])
    return Captured(upload_id, dict(bodies), owner_item)


def request_mix(scenario: str = UNSCANNED) -> dict[str, int]:
    """The product's AWS requests for one upload of ``scenario`` ("service:Operation" -> count),
    as `make request-counts` wrote them (bench/request_counts.json)."""
    from bench.request_counts import load_counts

    counts = load_counts()
    if scenario not in counts:
        raise RuntimeError(f"bench/request_counts.json has no scenario {scenario!r} (make request-counts)")
    return {name: int(n) for name, n in counts[scenario]["product"].items()}


class _Upload:
    """One by-hand upload: each method makes one request of the mix (its ``n``-th of that kind)."""

    def __init__(self, clients: _MixClients, client: Client) -> None:
        self.c, self.client = clients, client
        self.id = uuid.uuid4().hex
        self.pk, self.key = {"S": f"bench#{self.id}"}, f"incoming/{self.id}.txt"
        self.received: list[dict[str, Any]] = []

    def transact(self, n: int) -> None:  # the quota's reservation and the record in one transaction
        quota = {
            "TableName": self.c.table,
            "Key": {"pk": {"S": self.c.owner}},
            "UpdateExpression": "ADD #b :n",
            "ExpressionAttributeNames": {"#b": "bytes"},
            "ExpressionAttributeValues": {":n": {"N": str(len(CONTENT))}},
        }
        record = {"TableName": self.c.table, "Item": self.record(), "ConditionExpression": "attribute_not_exists(pk)"}
        self.c.ddb.transact_write_items(TransactItems=[{"Update": quota}, {"Put": record}])

    def record(self) -> dict[str, Any]:
        return {**self.c.record, "pk": self.pk, "owner": {"S": self.c.owner}, "status": {"S": "PENDING"}}

    def update(self, n: int) -> None:
        if n == 0 and not self.c.transactional:  # the quota's reservation, on the owner's item
            self.c.ddb.update_item(
                TableName=self.c.table,
                Key={"pk": {"S": self.c.owner}},
                UpdateExpression="SET #last = :id ADD #bytes :n",
                ExpressionAttributeNames={"#last": "last", "#bytes": "bytes"},
                ExpressionAttributeValues={":id": {"S": self.id}, ":n": {"N": str(len(CONTENT))}},
            )
            return
        self.c.ddb.update_item(  # a conditional write on the record, as each processing step's
            TableName=self.c.table,
            Key={"pk": self.pk},
            UpdateExpression="SET #s = :s",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": f"STEP{n}"}},
        )

    def put_item(self, n: int) -> None:  # the record (a real one's attributes), then items of their own
        if n == 0 and not self.c.transactional:
            self.c.ddb.put_item(
                TableName=self.c.table, Item=self.record(), ConditionExpression="attribute_not_exists(pk)"
            )
            return
        item = {"pk": {"S": f"bench#{self.id}#{n}"}, "status": {"S": "INPROGRESS"}}
        self.c.ddb.put_item(TableName=self.c.table, Item=item, ConditionExpression="attribute_not_exists(pk)")

    def post(self, n: int) -> None:  # the client's POST of the bytes, with a form pinned as the product's
        fields = {"Content-Type": "text/plain", "x-amz-meta-upload-id": self.id}
        conditions: list[Any] = [{name: value} for name, value in fields.items()]
        conditions.append(["content-length-range", len(CONTENT), len(CONTENT)])
        signed = self.c.s3.generate_presigned_post(
            Bucket=self.c.bucket, Key=self.key, Fields=fields, Conditions=conditions, ExpiresIn=900
        )
        self.client.put(signed)

    def replay(self, name: str, n: int) -> bool:
        """Send the product's own ``n``-th request of kind ``name`` for this upload (Captured); False
        if there is none to replay."""
        captured = self.c.captured
        params = captured.request(name, n, self.id, self.c.owner, self.c.bus) if captured else None
        if params is None:
            return False
        service, operation = name.split(":")
        call = getattr(self.c.ddb if service == "dynamodb" else self.c.events, xform_name(operation))
        try:
            call(**params)
        except self.c.ddb.exceptions.TransactionCanceledException as exc:
            reasons = [reason.get("Code") for reason in exc.response.get("CancellationReasons", [])]
            if reasons[:1] != ["ConditionalCheckFailed"]:
                raise
            # the owner's item holds as many open uploads as the quota allows (the product then
            # frees the slots of processed ones): the item afresh, and the same transaction again
            self.c.seed_owner()
            call(**params)
        return True

    def receive(self, n: int) -> None:  # S3's notification, as the event source polls it
        reply = self.c.sqs.receive_message(QueueUrl=self.c.queue, MaxNumberOfMessages=1, WaitTimeSeconds=2)
        self.received += reply.get("Messages", [])

    def send(self, n: int) -> None:  # a message of the processor's own (a scan deadline's check), delayed
        self.c.sqs.send_message(QueueUrl=self.c.side_queue, MessageBody=self.id, DelaySeconds=900)

    def head(self, n: int) -> None:
        self.c.s3.head_object(Bucket=self.c.bucket, Key=self.key)

    def get_tagging(self, n: int) -> None:
        self.c.s3.get_object_tagging(Bucket=self.c.bucket, Key=self.key)

    def get(self, n: int) -> None:  # of exactly the version POSTed, as the product's
        self.c.s3.get_object(Bucket=self.c.bucket, Key=self.key, IfMatch=f'"{CONTENT_ETAG}"')["Body"].read()

    def put_object(self, n: int) -> None:  # a derived file (a thumbnail's place)
        self.c.s3.put_object(Bucket=self.c.bucket, Key=f"derived/{self.id}/{n}", Body=CONTENT[:512])

    def copy(self, n: int) -> None:  # the promotion, with the product's conditions and headers
        source = {"Bucket": self.c.bucket, "Key": self.key}
        self.c.s3.copy_object(
            Bucket=self.c.bucket,
            Key=f"files/{self.id}/{n}",
            CopySource=source,
            ChecksumAlgorithm="SHA256",
            MetadataDirective="REPLACE",
            ContentType="text/plain",
            Metadata={"upload-id": self.id},
            CopySourceIfMatch=f'"{CONTENT_ETAG}"',
        )

    def put_tagging(self, n: int) -> None:
        tags = {"TagSet": [{"Key": "bench", "Value": str(n)}]}
        self.c.s3.put_object_tagging(Bucket=self.c.bucket, Key=self.key, Tagging=tags)

    def delete(self, n: int) -> None:  # the staging copy
        self.c.s3.delete_object(Bucket=self.c.bucket, Key=self.key)

    def put_events(self, n: int) -> None:
        entry = {"Source": "bench.mix", "DetailType": "Upload Processed", "Detail": "{}", "EventBusName": self.c.bus}
        self.c.events.put_events(Entries=[entry])

    def delete_batch(self, n: int) -> None:
        if self.received:  # another client's receive may have taken this upload's message
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(self.received)]
            self.c.sqs.delete_message_batch(QueueUrl=self.c.queue, Entries=entries)
            self.received.clear()

    def delete_message(self, n: int) -> None:
        if self.received:
            self.c.sqs.delete_message(QueueUrl=self.c.queue, ReceiptHandle=self.received.pop()["ReceiptHandle"])

    def get_item(self, n: int) -> None:  # the status reads
        self.c.ddb.get_item(TableName=self.c.table, Key={"pk": self.pk}, ConsistentRead=True)

    def query(self, n: int) -> None:
        self.c.ddb.query(
            TableName=self.c.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": self.pk},
            Limit=20,
        )

    def delete_item(self, n: int) -> None:
        self.c.ddb.delete_item(TableName=self.c.table, Key={"pk": self.pk})


# what the by-hand cycle makes for each operation of the mix
MIX_STEPS: dict[str, Callable[[_Upload, int], None]] = {
    "dynamodb:TransactWriteItems": _Upload.transact,
    "dynamodb:UpdateItem": _Upload.update,
    "dynamodb:PutItem": _Upload.put_item,
    "s3:PostObject": _Upload.post,
    "sqs:ReceiveMessage": _Upload.receive,
    "sqs:SendMessage": _Upload.send,
    "s3:HeadObject": _Upload.head,
    "s3:GetObjectTagging": _Upload.get_tagging,
    "s3:GetObject": _Upload.get,
    "s3:PutObject": _Upload.put_object,
    "s3:CopyObject": _Upload.copy,
    "s3:PutObjectTagging": _Upload.put_tagging,
    "s3:DeleteObject": _Upload.delete,
    "events:PutEvents": _Upload.put_events,
    "sqs:DeleteMessageBatch": _Upload.delete_batch,
    "sqs:DeleteMessage": _Upload.delete_message,
    "dynamodb:GetItem": _Upload.get_item,
    "dynamodb:Query": _Upload.query,
    "dynamodb:DeleteItem": _Upload.delete_item,
}
# the order an upload makes them in: the issue's (the quota's reservation and the record, in one
# transaction or one write each; None: all of that kind), then the processor's and the client's
TRANSACTIONAL_ISSUE: tuple[tuple[str, int | None], ...] = (("dynamodb:TransactWriteItems", 1), ("s3:PostObject", None))
ISSUE: tuple[tuple[str, int | None], ...] = (
    ("dynamodb:UpdateItem", 1),
    ("dynamodb:PutItem", 1),
    ("s3:PostObject", None),
)
PROCESSING = (
    "sqs:ReceiveMessage",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    *(
        name
        for name in MIX_STEPS
        if name not in ("sqs:ReceiveMessage", "dynamodb:PutItem", "dynamodb:UpdateItem", "s3:PostObject")
    ),
)


def mix_plan(mix: dict[str, int]) -> list[tuple[str, range]]:
    """The by-hand cycle's requests in order: (operation, which of its kind), every one of ``mix``
    once. An operation the cycle cannot make is an error, so a new one in the counts is not
    silently left out of the baseline."""
    unknown = sorted(set(mix) - set(MIX_STEPS))
    if unknown:
        raise RuntimeError(f"the by-hand request mix cannot make {unknown} yet (bench/end_to_end.py MIX_STEPS)")
    made = dict.fromkeys(mix, 0)
    plan = []
    issue = TRANSACTIONAL_ISSUE if mix.get("dynamodb:TransactWriteItems") else ISSUE
    for name, most in (*issue, *((name, None) for name in PROCESSING)):
        n = mix.get(name, 0) - made.get(name, 0)
        n = n if most is None else min(n, most)
        if n > 0:
            plan.append((name, range(made[name], made[name] + n)))
            made[name] += n
    return plan


@dataclass
class _MixClients:
    """One client thread's boto3 clients (as each function has its own) and where they write."""

    ddb: Any
    s3: Any
    sqs: Any
    events: Any
    table: str
    transactional: bool  # the issue writes the quota and the record in one TransactWriteItems
    side_queue: str  # for the processor's own messages
    record: dict[str, Any]  # a processed upload's record: the by-hand records have its attributes (and index keys)
    bucket: str
    queue: str
    bus: str
    owner: str  # the pk of this client's owner item
    captured: Captured | None = None  # the product's requests to replay

    def seed_owner(self) -> None:
        """This client's owner item as the product's transaction found its own, its open uploads
        cleared (nothing to do without a capture: the hand-made transaction creates its own)."""
        if self.captured is not None and self.captured.owner_item:
            item = {**self.captured.owner_item, "pk": {"S": self.owner}, "open": {"M": {}}}
            self.ddb.put_item(TableName=self.table, Item=item)


class RequestMix:
    """The request mix of one upload (``mix``: "service:Operation" -> count), made by hand with
    plain boto3 against the stack's emulator and with none of our code: with ``captured``, the
    product's own DynamoDB and EventBridge requests replayed for uploads of its own (one owner item
    per client); the records in the stack's own table (so its stream carries them too), the
    bytes POSTed with a presigned form to a bucket
    of its own whose ObjectCreated notifications go to a queue of its own (so the emulator
    delivers them as it does the product's), that queue received from and deleted from, the events
    put on a bus of its own with a rule to a queue (so the emulator routes them, as the
    product's). It does the issue's steps, then the processor's, one after another, as one
    upload's requests follow each other in the product."""

    def __init__(
        self, stack: Stack, mix: dict[str, int], record: dict[str, Any], captured: Captured | None = None
    ) -> None:
        from local.harness import client as aws_client

        self.record = record
        self.captured = captured
        self.last_id: str | None = None  # the last by-hand upload a cycle finished
        self.plan = [(name, MIX_STEPS[name], which) for name, which in mix_plan(mix)]
        self.transactional = bool(mix.get("dynamodb:TransactWriteItems"))
        self.endpoint, self.table = stack.info["emulatorUrl"], stack.info["uploadsTable"]
        tag = uuid.uuid4().hex[:8]
        self.bucket = self.bus = f"bench-mix-{tag}"
        sqs, s3, events = (aws_client(name, self.endpoint) for name in ("sqs", "s3", "events"))
        self.queue = sqs.create_queue(QueueName=f"bench-mix-{tag}")["QueueUrl"]
        self.events_queue = events_queue = sqs.create_queue(QueueName=f"bench-mix-events-{tag}")["QueueUrl"]

        def arn(url: str) -> str:
            return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])

        s3.create_bucket(Bucket=self.bucket)
        prefix = {"Key": {"FilterRules": [{"Name": "prefix", "Value": "incoming/"}]}}
        notify = {"QueueArn": arn(self.queue), "Events": ["s3:ObjectCreated:*"], "Filter": prefix}
        s3.put_bucket_notification_configuration(
            Bucket=self.bucket, NotificationConfiguration={"QueueConfigurations": [notify]}
        )
        events.create_event_bus(Name=self.bus)
        events.put_rule(Name="bench-mix", EventBusName=self.bus, EventPattern=json.dumps({"source": ["bench.mix"]}))
        events.put_targets(Rule="bench-mix", EventBusName=self.bus, Targets=[{"Id": "queue", "Arn": arn(events_queue)}])
        # S3's test event of the new configuration
        while messages := sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages", []):
            entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)]
            sqs.delete_message_batch(QueueUrl=self.queue, Entries=entries)

    def last_record(self) -> dict[str, str]:
        """The status and owed event of the last by-hand upload's record (replayed writes only)."""
        if self.last_id is None:
            return {}
        from local.harness import client as aws_client

        item = (
            aws_client("dynamodb", self.endpoint)
            .get_item(TableName=self.table, Key={"pk": {"S": f"upload#{self.last_id}"}}, ConsistentRead=True)
            .get("Item", {})
        )
        kept = ("status", "owner", "pending_event")
        return {name: value.get("S", "") for name, value in item.items() if name in kept}

    def promoted(self) -> int:
        """How many promotions (CopyObject) the cycles made: the objects under files/."""
        from local.harness import client as aws_client

        pages = aws_client("s3", self.endpoint).get_paginator("list_objects_v2")
        return sum(page.get("KeyCount", 0) for page in pages.paginate(Bucket=self.bucket, Prefix="files/"))

    def make(self) -> Callable[[Client], None]:
        """One client thread's cycle: one upload's requests, with clients of its own."""
        from local.harness import client as aws_client

        ddb, s3, sqs, events = (
            aws_client(name, self.endpoint, access_key=MIX_KEY) for name in ("dynamodb", "s3", "sqs", "events")
        )
        clients = _MixClients(
            ddb,
            s3,
            sqs,
            events,
            self.table,
            self.transactional,
            self.events_queue,
            self.record,
            self.bucket,
            self.queue,
            self.bus,
            f"owner#bench-{uuid.uuid4().hex[:8]}",
            self.captured,
        )
        clients.seed_owner()

        def cycle(client: Client) -> None:
            upload = _Upload(clients, client)
            for name, step, which in self.plan:
                for n in which:
                    if not upload.replay(name, n):
                        step(upload, n)
            self.last_id = upload.id

        return cycle


# -- the suite ----------------------------------------------------------------------------------


def _record(stack: Stack, upload_id: str) -> dict[str, Any]:
    from local.harness import client as aws_client

    ddb = aws_client("dynamodb", stack.info["emulatorUrl"])
    key = {"pk": {"S": f"upload#{upload_id}"}}
    item: dict[str, Any] = ddb.get_item(TableName=stack.info["uploadsTable"], Key=key, ConsistentRead=True)["Item"]
    return item


def _records(stack: Stack, upload_ids: list[str]) -> list[dict[str, Any]]:
    """Status, profile and scan outcome of these uploads, as the table holds them."""
    out = []
    for upload_id in upload_ids:
        item = _record(stack, upload_id)
        out.append(
            {
                "uploadId": upload_id,
                **{name: value.get("S", value.get("N")) for name, value in item.items() if name in _KEPT},
            }
        )
    return out


_KEPT = ("status", "profile", "file_key", "size")


def gate_cost(stack: Stack, upload_id: str, count: int = 400) -> dict[str, float]:
    """The emulator's CPU per request when the IAM gate checks it, and when it does not: ``count``
    GetItems of one upload's record each way, with the ApiFunction role's credentials (as the
    product's every request) and with a harness key (as the by-hand baseline's), in ABBA blocks.
    The difference is what the local IAM gate adds to each of the product's requests; AWS's own
    authorization is no cost of ours."""
    import boto3

    from local.harness import client as aws_client

    endpoint, region = stack.info["emulatorUrl"], stack.info["region"]
    role = stack.info["functionRoles"]["ApiFunction"]
    credentials = aws_client("sts", endpoint).assume_role(RoleArn=role, RoleSessionName="bench-gate")["Credentials"]
    checked = boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=region,
    ).client("dynamodb", endpoint_url=endpoint)
    unchecked = aws_client("dynamodb", endpoint, access_key="bench-gate-unchecked")
    key = {"pk": {"S": f"upload#{upload_id}"}}
    spent = {"checked": 0.0, "unchecked": 0.0}
    blocks = 8
    for block in range(blocks):
        for name in ("checked", "unchecked") if block % 2 == 0 else ("unchecked", "checked"):
            ddb = checked if name == "checked" else unchecked
            before = cpu_snapshot(stack.process.pid).get(EMULATOR, 0.0)
            for _ in range(count // blocks):
                ddb.get_item(TableName=stack.info["uploadsTable"], Key=key)
            spent[name] += cpu_snapshot(stack.process.pid).get(EMULATOR, 0.0) - before
    per = {name: seconds * 1000 / (count // blocks * blocks) for name, seconds in spent.items()}
    return {
        "emulatorCpuMsPerCheckedRequest": round(per["checked"], 3),
        "emulatorCpuMsPerUncheckedRequest": round(per["unchecked"], 3),
        "gateCpuMsPerRequest": round(per["checked"] - per["unchecked"], 3),
    }


def _median_shares(runs: list[Run]) -> dict[str, float]:
    names = {name for run in runs for name in run.cpu["shares"]}
    medians = {name: statistics.median(run.cpu["shares"].get(name, 0.0) for run in runs) for name in names}
    return {name: round(share, 3) for name, share in sorted(medians.items(), key=lambda kv: -kv[1])}


def _emulator_bound(runs: list[Run]) -> dict[str, float]:
    """The emulator's CPU per upload and per request, and the rate one core of it would carry."""
    done = [run for run in runs if run.completed]
    if not done:
        return {}
    per_upload = statistics.median(run.cpu["cpuSeconds"].get(EMULATOR, 0.0) / run.completed for run in done)
    served = statistics.median(sum(run.served.values()) / run.completed for run in done)
    return {
        "emulatorCpuMsPerUpload": round(per_upload * 1000, 2),
        "requestsServedPerUpload": round(served, 2),  # every principal's, empty long polls included
        "emulatorCpuMsPerServedRequest": round(per_upload * 1000 / served, 3) if served else 0.0,
        "emulatorCores": round(statistics.median(run.cpu["cores"].get(EMULATOR, 0.0) for run in done), 3),
        "uploadsPerSecondOnOneEmulatorCore": round(1 / per_upload, 1) if per_upload else 0.0,
    }


def measure_end_to_end(
    *, repeats: int, latency_count: int, seconds: float, progress: Callable[[str], None] = lambda _: None
) -> tuple[list[Figure], dict[str, Any]]:
    mix = request_mix(UNSCANNED)
    requests_per_upload = sum(mix.values())
    with local_stack() as stack:
        _, _, warm = latency_samples(stack, 3)  # warm: handlers, clients, the poller's first batch
        captured = capture_product(stack)  # the product's requests of one more, for the by-hand baseline
        latency_samples(stack, 2, SCANNED)  # and the scanner's path
        by_hand = RequestMix(stack, mix, _record(stack, warm[-1]), captured)
        by_hand.make()(Client(stack.url))
        p50, p95, rtt50, s_p50, s_p95, s_rtt50 = [], [], [], [], [], []
        runs: dict[str, list[Run]] = {"stack": [], "mix": [], "base": [], "scanned": []}
        ids: list[str] = []
        scanned_ids: list[str] = []
        gates: list[dict[str, float]] = []
        for i in range(repeats):
            latencies, trips, made = latency_samples(stack, latency_count)
            ids.extend(made)
            p50.append(percentile(latencies, 50))
            p95.append(percentile(latencies, 95))
            rtt50.append(percentile(trips, 50))
            latencies, trips, made = latency_samples(stack, latency_count, SCANNED)
            scanned_ids.extend(made)
            s_p50.append(percentile(latencies, 50))
            s_p95.append(percentile(latencies, 95))
            s_rtt50.append(percentile(trips, 50))
            progress(
                f"end to end: latency repeat {i + 1}/{repeats} "
                f"(p50 {p50[-1] * 1000:.0f} ms, scanned {s_p50[-1] * 1000:.0f} ms)"
            )
            # ABBA: drift in the machine's load falls on subject and baselines alike
            order = ("mix", "stack", "base", "scanned") if i % 2 == 0 else ("scanned", "base", "stack", "mix")
            for which in order:
                if which == "mix":
                    run = sustained(stack, seconds, by_hand.make)
                elif which == "base":
                    run = sustained(stack, seconds / 2, raw_post_cycle(stack))
                elif which == "stack":
                    run = sustained(stack, seconds, full_upload)
                else:
                    run = sustained(stack, seconds, full_upload, SCANNED)
                if run.errors:
                    raise RuntimeError(
                        f"{which}: {len(run.errors)} clients failed: {run.errors[:3]}\n{stack.log()[-2000:]}"
                    )
                runs[which].append(run)
            progress(
                f"end to end: throughput repeat {i + 1}/{repeats} ({runs['stack'][-1].per_second:.1f} uploads/s, "
                f"by hand {runs['mix'][-1].per_second:.1f}/s, scanned {runs['scanned'][-1].per_second:.1f}/s)"
            )
            gates.append(gate_cost(stack, ids[-1]))
        records = _records(stack, ids[-3:] + scanned_ids[-3:])
        mix_evidence = {
            "requestsPerUpload": requests_per_upload,
            "mix": mix,
            "cycles": sum(run.completed for run in runs["mix"]) + 1,  # and the warm-up's
            "promoted": by_hand.promoted(),
            # the product's own requests it replays, by kind, and how the last replayed record ended
            "replayed": {name: len(bodies) for name, bodies in sorted(captured.bodies.items())},
            "lastRecord": by_hand.last_record(),
        }
    rate = [run.per_second for run in runs["stack"]]
    mix_rate = [run.per_second for run in runs["mix"]]
    cpu = {
        "product": _median_shares(runs["stack"]),
        "byHand": _median_shares(runs["mix"]),
        "scanned": _median_shares(runs["scanned"]),
        "perRepeat": {which: [run.cpu for run in each] for which, each in runs.items()},
    }
    bound = {
        "product": _emulator_bound(runs["stack"]),
        "byHand": _emulator_bound(runs["mix"]),
        "scanned": _emulator_bound(runs["scanned"]),
    }
    served = {which: [run.served_per_upload() for run in each] for which, each in runs.items()}
    gate = {name: statistics.median(g[name] for g in gates) for name in gates[0]}
    reads = [run.status_reads / run.completed for run in runs["stack"] if run.completed]
    stack_notes = (
        f"profile {UNSCANNED} (file, scan off), 1 KiB text; each client: POST /uploads, POST to S3, "
        f"GET every {THROUGHPUT_POLL * 1000:.0f} ms until PROCESSED"
    )
    figures = [
        Figure(
            "end to end: S3 upload done -> PROCESSED seen, p50",
            "s",
            p50,
            rtt50,
            Target("value", "<=", 0.2),  # issue #14
            baseline_name="one GET /uploads/{id} round trip",
            notes=f"local stack, one client, 1 KiB text (profile {UNSCANNED}: file, scan off), "
            f"GET every {LATENCY_POLL * 1000:.0f} ms",
            details={"uploadsPerRepeat": latency_count, "sampleUploadIds": ids[-3:]},
        ),
        Figure(
            "end to end: S3 upload done -> PROCESSED seen, p95",
            "s",
            p95,
            rtt50,
            None,
            baseline_name="one GET /uploads/{id} round trip",
            notes=f"profile {UNSCANNED}",
        ),
        Figure(
            f"end to end: sustained uploads/s, {CLIENTS} clients",
            "uploads/s",
            rate,
            [run.per_second for run in runs["base"]],
            Target("value", ">=", 25),  # issue #14
            baseline_name=f"bare S3 POSTs/s to the same emulator, {CLIENTS} clients",
            notes=stack_notes,
            details={
                "secondsPerRepeat": seconds,
                "uploadsPerRepeat": [run.counted for run in runs["stack"]],
                "statusReadsPerUpload": round(statistics.median(reads), 2) if reads else None,
                "cpuShares": cpu["product"],
                **bound["product"],
            },
        ),
        Figure(
            f"end to end: sustained uploads/s against the same request mix by hand, {CLIENTS} clients",
            "uploads/s",
            rate,
            mix_rate,
            Target("ratio", ">=", MIX_RATIO_TARGET),
            baseline_name=f"the product's {requests_per_upload} AWS requests of one {UNSCANNED} upload "
            "(bench/request_counts.json), made by hand with boto3 (its DynamoDB and EventBridge requests "
            "the product's own, replayed), per second",
            notes="same stack, same emulator, 16 clients, no API handler and no processor: the ratio is "
            "what our code costs beyond the emulator's requests; the CPU shares (details) say who is busy",
            details={
                "secondsPerRepeat": seconds,
                "requestMix": mix,
                "cpuShares": cpu["product"],
                "cpuSharesByHand": cpu["byHand"],
                "emulatorBound": bound,
                "iamGate": gate,
                "requestsServedPerUpload": {"product": served["stack"], "byHand": served["mix"]},
            },
        ),
        Figure(
            "end to end with the malware scan (profile file): S3 upload done -> PROCESSED seen, p50",
            "s",
            s_p50,
            s_rtt50,
            None,
            baseline_name="one GET /uploads/{id} round trip",
            notes="informational: the local scanner is ClamAV (clamscan per object), GuardDuty's takes seconds",
            details={"uploadsPerRepeat": latency_count, "sampleUploadIds": scanned_ids[-3:]},
        ),
        Figure(
            "end to end with the malware scan (profile file): S3 upload done -> PROCESSED seen, p95",
            "s",
            s_p95,
            s_rtt50,
            None,
            baseline_name="one GET /uploads/{id} round trip",
            notes="informational",
        ),
        Figure(
            f"end to end with the malware scan (profile file): sustained uploads/s, {CLIENTS} clients",
            "uploads/s",
            [run.per_second for run in runs["scanned"]],
            mix_rate,
            None,
            baseline_name=f"the {UNSCANNED} request mix by hand, per second",
            notes="informational: every upload also waits for the local scanner and its verdict's trip",
            details={
                "uploadsPerRepeat": [run.counted for run in runs["scanned"]],
                "cpuShares": cpu["scanned"],
            },
        ),
    ]
    evidence = {
        "uploadIds": ids,
        "scannedUploadIds": scanned_ids,
        "records": records,
        "byHand": mix_evidence,
        "cpu": cpu,
        "emulatorBound": bound,
        "iamGate": gate,
        "requestsServedPerUpload": served,
    }
    return figures, evidence
