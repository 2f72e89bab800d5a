"""End to end on the local stack (`python -m local.stack`, a subprocess, as `make run` starts it, auth
off, the template's default parameters): how long after the bytes land in S3 a client sees
PROCESSED, and how many small uploads per second the whole stack carries (issue, POST to S3,
processed) with 16 clients. All 16 share the one anonymous owner: under the default limit of 20
pending uploads: an issue that finds every slot taken frees those of the processed uploads."""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from bench.figures import Figure, Target, percentile
from local.launch import Stack, start_stack, stop_stack

CONTENT = b"directupload end to end\n" * 40  # ~1 KiB of text, profile "file", verify only
LATENCY_POLL = 0.02  # the brief's client: GET /uploads/{id} every ~20 ms
THROUGHPUT_POLL = 0.1  # 16 clients at 20 ms would be 800 GET/s: the polling would be the load
CLIENTS = 16


@contextmanager
def local_stack(timeout: float = 90) -> Iterator[Stack]:
    """The local stack on free ports (auth off, none of this process's AWS or powertools settings),
    stopped afterwards."""
    with tempfile.TemporaryDirectory(prefix="bench-stack-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "AWS_"))}
        stack = start_stack(Path(tmp), env=env, timeout=timeout)
        try:
            yield stack
        finally:
            stop_stack(stack)


class Client:
    """What a browser does: POST /uploads, POST the bytes to S3 with the presigned form, poll."""

    def __init__(self, api: str) -> None:
        self.api = api
        self.session = requests.Session()  # keep-alive to the gateway
        self.s3 = requests.Session()

    def issue(self) -> dict[str, Any]:
        reply = self.session.post(
            f"{self.api}/uploads",
            json={
                "profile": "file",
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

    def put(self, issued: dict[str, Any]) -> None:
        reply = self.s3.post(
            issued["url"], data=issued["fields"], files={"file": ("e2e.txt", CONTENT, "text/plain")}, timeout=30
        )
        if reply.status_code not in (200, 201, 204):
            raise RuntimeError(f"S3 answered {reply.status_code}: {reply.text[:300]}")

    def wait_processed(self, upload_id: str, poll: float, timeout: float = 60) -> tuple[float, list[float]]:
        """When PROCESSED was first seen (perf_counter), and each GET's round trip."""
        deadline = time.monotonic() + timeout
        round_trips = []
        while time.monotonic() < deadline:
            started = time.perf_counter()
            reply = self.session.get(f"{self.api}/uploads/{upload_id}", timeout=30)
            seen = time.perf_counter()
            round_trips.append(seen - started)
            status = reply.json().get("status")
            if status == "PROCESSED":
                return seen, round_trips
            if status in ("REJECTED", "FAILED", "CANCELLED", "EXPIRED"):
                raise RuntimeError(f"upload {upload_id} ended {status}: {reply.text[:300]}")
            time.sleep(poll)
        raise RuntimeError(f"upload {upload_id} not PROCESSED after {timeout}s")


def latency_samples(stack: Stack, count: int) -> tuple[list[float], list[float], list[str]]:
    """Seconds from the S3 POST's answer to PROCESSED seen through GET, for ``count`` uploads one
    after another; the GET round trips; the upload ids."""
    client = Client(stack.url)
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


def sustained(api: str, seconds: float, cycle: Callable[[Client], None]) -> tuple[float, int, list[str]]:
    """CLIENTS threads running ``cycle`` back to back for ``seconds``: cycles finished per second."""
    deadline = time.perf_counter() + seconds
    done = [0] * CLIENTS
    errors: list[str] = []

    def run(i: int) -> None:
        client = Client(api)
        while time.perf_counter() < deadline:
            try:
                cycle(client)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                return
            if time.perf_counter() <= deadline:
                done[i] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 120)
    elapsed = min(time.perf_counter(), deadline) - started
    return sum(done) / elapsed, sum(done), errors


def full_upload(client: Client) -> None:
    issued = client.issue()
    client.put(issued)
    client.wait_processed(issued["uploadId"], THROUGHPUT_POLL)


def raw_post_cycle(stack: Stack) -> Callable[[Client], None]:
    """The baseline: the same POST of the same bytes straight to the same emulator (a form signed
    here, a key outside incoming/ so nothing is notified or processed), nothing else."""
    from local.harness import client as aws_client

    s3 = aws_client("s3", stack.info["emulatorUrl"])
    lock = threading.Lock()

    def cycle(client: Client) -> None:
        with lock:  # a boto3 client's signer is shared state; signing is local and quick
            signed = s3.generate_presigned_post(
                Bucket=stack.info["bucket"],
                Key=f"bench/{uuid.uuid4().hex}.txt",
                Fields={"Content-Type": "text/plain"},
                Conditions=[{"Content-Type": "text/plain"}],
                ExpiresIn=900,
            )
        client.put(signed)

    return cycle


def same_mix_cycle(stack: Stack) -> Callable[[Client], None]:
    """A second baseline: the product's own AWS requests for one upload (the ``file-unscanned``
    scenario of bench/request_counts.py: quota update, record, the POST, idempotency record,
    claim, GET, promotion copy, outcome, staging delete, event, marker, idempotency completion,
    two reads, the queue's send, receive and delete) made by hand against the same emulator,
    with none of our code. If it runs at about the rate of the real uploads, the emulator's cost
    per request is what caps the figure."""
    from local.harness import client as aws_client

    endpoint, table, bucket = stack.info["emulatorUrl"], stack.info["uploadsTable"], stack.info["bucket"]
    ddb, s3, sqs, events = (aws_client(name, endpoint) for name in ("dynamodb", "s3", "sqs", "events"))
    queue = sqs.create_queue(QueueName=f"bench-mix-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    lock = threading.Lock()

    def update(key: str, expression: str, condition: str, values: dict[str, Any]) -> None:
        ddb.update_item(
            TableName=table,
            Key={"pk": {"S": key}},
            UpdateExpression=expression,
            ConditionExpression=condition,
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=values,
        )

    def cycle(client: Client) -> None:
        upload_id = uuid.uuid4().hex
        pk, owner = f"bench#{upload_id}", f"bench-owner#{threading.get_ident()}"
        ddb.update_item(  # the quota's reservation
            TableName=table,
            Key={"pk": {"S": owner}},
            UpdateExpression="SET #open = :m ADD #bytes :n",
            ExpressionAttributeNames={"#open": "open", "#bytes": "bytes"},
            ExpressionAttributeValues={":m": {"M": {}}, ":n": {"N": "1024"}},
        )
        ddb.put_item(
            TableName=table,
            Item={"pk": {"S": pk}, "status": {"S": "PENDING"}, "owner": {"S": owner}},
            ConditionExpression="attribute_not_exists(pk)",
        )
        key = f"bench-mix/{upload_id}.txt"
        with lock:
            signed = s3.generate_presigned_post(Bucket=bucket, Key=key, ExpiresIn=900)
        client.put(signed)
        sqs.send_message(QueueUrl=queue, MessageBody=upload_id)  # S3's notification, as S3 sends it
        received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1, WaitTimeSeconds=1).get("Messages", [])
        ddb.put_item(TableName=table, Item={"pk": {"S": f"{pk}#idempotency"}, "status": {"S": "INPROGRESS"}})
        update(pk, "SET #s = :u", "#s = :p", {":u": {"S": "UPLOADED"}, ":p": {"S": "PENDING"}})
        s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        s3.copy_object(Bucket=bucket, Key=f"{key}.promoted", CopySource={"Bucket": bucket, "Key": key})
        outcome = {":d": {"S": "PROCESSED"}, ":e": {"S": "x"}, ":u": {"S": "UPLOADED"}}
        update(pk, "SET #s = :d, pending_event = :e", "#s = :u", outcome)
        s3.delete_object(Bucket=bucket, Key=key)
        events.put_events(Entries=[{"Source": "bench", "DetailType": "mix", "Detail": "{}"}])
        ddb.update_item(TableName=table, Key={"pk": {"S": pk}}, UpdateExpression="REMOVE pending_event")
        ddb.update_item(
            TableName=table,
            Key={"pk": {"S": f"{pk}#idempotency"}},
            UpdateExpression="SET #s = :c",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":c": {"S": "COMPLETED"}},
        )
        if received:
            entries = [{"Id": "0", "ReceiptHandle": m["ReceiptHandle"]} for m in received]
            sqs.delete_message_batch(QueueUrl=queue, Entries=entries)
        for _ in range(2):  # the verdict's read, the client's status read
            ddb.get_item(TableName=table, Key={"pk": {"S": pk}}, ConsistentRead=True)

    return cycle


def measure_end_to_end(
    *, repeats: int, latency_count: int, seconds: float, progress: Callable[[str], None] = lambda _: None
) -> tuple[list[Figure], dict[str, Any]]:
    with local_stack() as stack:
        latency_samples(stack, 3)  # warm: handlers, clients, the poller's first batch
        p50, p95, rtt50, rate, base_rate, mix_rate = [], [], [], [], [], []
        mix = same_mix_cycle(stack)
        ids: list[str] = []
        counts = []
        for i in range(repeats):
            latencies, trips, made = latency_samples(stack, latency_count)
            ids.extend(made)
            p50.append(percentile(latencies, 50))
            p95.append(percentile(latencies, 95))
            rtt50.append(percentile(trips, 50))
            progress(f"end to end: latency repeat {i + 1}/{repeats} (p50 {p50[-1] * 1000:.0f} ms)")
            order = ("base", "mix", "stack") if i % 2 == 0 else ("stack", "mix", "base")
            for which in order:
                if which == "mix":
                    per_second, _, errors = sustained(stack.url, seconds / 2, mix)
                    mix_rate.append(per_second)
                elif which == "base":
                    per_second, _, errors = sustained(stack.url, seconds / 2, raw_post_cycle(stack))
                    base_rate.append(per_second)
                else:
                    per_second, count, errors = sustained(stack.url, seconds, full_upload)
                    rate.append(per_second)
                    counts.append(count)
                if errors:
                    raise RuntimeError(f"{len(errors)} clients failed, first: {errors[0]}\n{stack.log()[-2000:]}")
            progress(f"end to end: throughput repeat {i + 1}/{repeats} ({rate[-1]:.1f} uploads/s)")
    figures = [
        Figure(
            "end to end: S3 upload done -> PROCESSED seen, p50",
            "s",
            p50,
            rtt50,
            Target("value", "<=", 0.2),  # issue #14
            baseline_name="one GET /uploads/{id} round trip",
            notes=f"local stack, one client, 1 KiB text (profile file), GET every {LATENCY_POLL * 1000:.0f} ms",
            details={"uploadsPerRepeat": latency_count, "sampleUploadIds": ids[-3:]},
        ),
        Figure(
            "end to end: S3 upload done -> PROCESSED seen, p95",
            "s",
            p95,
            rtt50,
            None,
            baseline_name="one GET /uploads/{id} round trip",
        ),
        Figure(
            f"end to end: sustained uploads/s, {CLIENTS} clients",
            "uploads/s",
            rate,
            base_rate,
            Target("value", ">=", 25),
            baseline_name=f"bare S3 POSTs/s to the same emulator, {CLIENTS} clients",
            notes=f"each client: POST /uploads, POST to S3, GET every {THROUGHPUT_POLL * 1000:.0f} ms until PROCESSED",
            details={"secondsPerRepeat": seconds, "uploadsPerRepeat": counts},
        ),
        Figure(
            f"end to end: sustained uploads/s against the same request mix by hand, {CLIENTS} clients",
            "uploads/s",
            rate,
            mix_rate,
            None,
            baseline_name="the product's AWS requests for one upload, made by hand, per second",
            notes="a ratio near 1: the emulator's cost per request caps the figure, not our code; the real "
            "uploads also pay the local malware scanner (clamscan per staging object), which the mix does not",
            details={"secondsPerRepeat": seconds / 2},
        ),
    ]
    return figures, {"uploadIds": ids}
