"""`make cost`: what one million uploads cost on AWS with this design (presigned straight to S3),
against proxying the bytes through API Gateway + Lambda, at 1 MB, 100 MB and 1 GB each.

Function memory, timeouts and architecture are read from template.yaml; the profiles (which
sizes go multipart, in which parts) from the built-in profiles. Prices are AWS's public
us-east-1 list prices, written below with the date they were taken; request counts per
upload are the ones the local stack counted (bench/request_counts.json, `make request-counts`:
every request the functions' roles made for one upload, by operation). Free tiers are left out.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any

import bench  # noqa: F401 - puts functions/ on the path

# --- prices: us-east-1 list prices, as published on the AWS pricing pages in January 2025 ------------
PRICES_DATE = "2025-01"
PRICES = {
    "lambda_gb_second_arm64": 0.0000133334,  # USD per GB-second, arm64, first 7.5 billion GB-s a month
    "lambda_request": 0.20 / 1e6,  # USD per invocation
    "http_api_request": 1.00 / 1e6,  # USD per HTTP API request (first 300 million), metered per 512 KB
    "dynamodb_write_unit": 0.625 / 1e6,  # USD per on-demand write request unit (1 KB; transactions x2)
    "dynamodb_read_unit": 0.125 / 1e6,  # USD per on-demand read request unit (4 KB strongly consistent)
    "sqs_request": 0.40 / 1e6,  # USD per standard queue request (64 KB chunks)
    "eventbridge_event": 1.00 / 1e6,  # USD per custom event published (64 KB chunks)
    "s3_put": 0.005 / 1000,  # USD per PUT, COPY, POST, LIST request (S3 Standard)
    "s3_get": 0.0004 / 1000,  # USD per GET, HEAD and other read requests
    "s3_gb_month": 0.023,  # USD per GB-month stored, first 50 TB (S3 Standard)
}

# --- limits that decide where proxying stops working -------------------------------------------
HTTP_API_MAX_PAYLOAD = 10 * 1024 * 1024  # API Gateway HTTP API request payload
LAMBDA_MAX_SYNC_PAYLOAD = 6 * 1024 * 1024  # Lambda synchronous invocation request payload
HTTP_API_METERING = 512 * 1024  # HTTP API bills each started 512 KB of a request as one request

# --- assumptions (not prices): durations on Lambda, kept visible -----------------------------------
API_MS = {"issue": 40, "get": 15, "sign": 20, "complete": 60}  # warm handler durations, DynamoDB ~5-10 ms a call
PROCESS_FIXED_MS = 150  # per upload: DynamoDB transitions (claim, outcome), promotion, staging delete
PUBLISH_MS = 20  # PublishFunction: one PutEvents for a batch of stream records (up to 10 events)
S3_READ_MB_S = 90  # one S3 GET stream into a 1,024 MB arm64 function
POLLS = 3  # GET /uploads/{id} calls a client makes until it sees the outcome
SIGN_BATCH = 8  # parts signed per POST /uploads/{id}/parts (the CLI's smallest batch)
HEAD_BYTES = 8192  # what the sniffer reads of an object whose SHA-256 S3 verified (sniff.HEAD_BYTES)
PROXY_MB_S = 50  # a proxying function writing the body it was handed (API Gateway buffers it first) to S3
MILLION = 1_000_000


def template_settings() -> dict[str, Any]:
    """MemorySize, Timeout and Architectures of each function, Globals applied."""
    from local.template import load

    raw = load()
    glob = raw.get("Globals", {}).get("Function", {})
    functions = {}
    for name, resource in raw["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.get("Properties", {})
        functions[name] = {
            "memoryMb": int(props.get("MemorySize", glob.get("MemorySize", 128))),
            "timeoutS": int(props.get("Timeout", glob.get("Timeout", 3))),
            "architectures": props.get("Architectures", glob.get("Architectures", ["x86_64"])),
        }
    return functions


@dataclass
class Bill:
    """Counts for one upload; ``cost()`` turns them into USD per million uploads."""

    lambda_gb_s: float = 0.0
    lambda_requests: float = 0.0
    api_requests: float = 0.0
    write_units: float = 0.0
    read_units: float = 0.0
    sqs_requests: float = 0.0
    events: float = 0.0
    s3_puts: float = 0.0
    s3_gets: float = 0.0
    notes: list[str] = field(default_factory=list)

    def invoke(self, memory_mb: int, ms: float, count: float = 1) -> None:
        self.lambda_requests += count
        self.lambda_gb_s += count * memory_mb / 1024 * math.ceil(ms) / 1000  # billed per 1 ms

    def costs(self) -> dict[str, float]:
        p = PRICES
        return {
            "Lambda": MILLION
            * (self.lambda_gb_s * p["lambda_gb_second_arm64"] + self.lambda_requests * p["lambda_request"]),
            "API": MILLION * self.api_requests * p["http_api_request"],
            "DynamoDB": MILLION
            * (self.write_units * p["dynamodb_write_unit"] + self.read_units * p["dynamodb_read_unit"]),
            "S3 requests": MILLION * (self.s3_puts * p["s3_put"] + self.s3_gets * p["s3_get"]),
            "SQS": MILLION * self.sqs_requests * p["sqs_request"],
            "EventBridge": MILLION * self.events * p["eventbridge_event"],
        }


def profile_for(size: int) -> Any:
    """The built-in profile an upload of this size would use: file up to its maximum, then video."""
    from directupload.profiles import BUILTIN_PROFILES

    file, video = BUILTIN_PROFILES["file"], BUILTIN_PROFILES["video"]
    return file if size <= file.max_size else video


# How AWS bills each operation the request counts name (bench/request_counts.json)
S3_PUT_CLASS = frozenset(
    {"PutObject", "PostObject", "CopyObject", "CreateMultipartUpload", "UploadPart", "UploadPartCopy",
     "CompleteMultipartUpload", "ListParts", "ListObjectsV2", "PutObjectTagging"}
)  # fmt: skip
S3_GET_CLASS = frozenset({"GetObject", "HeadObject", "GetObjectTagging"})  # DELETE and Abort are free
DYNAMODB_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem"})  # 1 write unit each per KB
DYNAMODB_READS = frozenset({"GetItem", "Query"})  # 1 read unit each (strongly consistent, up to 4 KB)
OUTCOME_EXTRA_WRITE_UNITS = 1  # the outcome write carries the result and variants: ~2 KB, 2 units
BATCH = 10  # messages per event source batch under load (the scenarios' batches hold one each)
SCENARIO_SIGN_CALLS = 1  # the video scenario signs its parts in one call
SCENARIO_STATUS_READS = 1  # each upload scenario reads the status once


def measured(scenario: str) -> dict[str, int]:
    """The product's requests of one scenario ("service:Operation" -> count), as counted."""
    from bench.request_counts import load_counts

    return dict(load_counts()[scenario]["product"])


def _add_requests(bill: Bill, counts: dict[str, int]) -> None:
    """Turn counted requests into what they are billed as."""
    for name, n in counts.items():
        service, operation = name.split(":", 1)
        if service == "s3" and operation in S3_PUT_CLASS:
            bill.s3_puts += n
        elif service == "s3" and operation in S3_GET_CLASS:
            bill.s3_gets += n
        elif service == "dynamodb" and operation in DYNAMODB_WRITES:
            bill.write_units += n
        elif service == "dynamodb" and operation in DYNAMODB_READS:
            bill.read_units += n
        elif service == "dynamodb" and operation == "TransactWriteItems":
            bill.write_units += 2 * 2 * n  # two items, each at twice the units
        elif service == "sqs" and operation in ("ReceiveMessage", "DeleteMessageBatch"):
            bill.sqs_requests += n / BATCH
        elif service == "sqs":
            bill.sqs_requests += n
        elif service == "events" and operation == "PutEvents":
            bill.events += n


def direct(size: int, functions: dict[str, Any], s3_verified: bool = False) -> Bill:
    """This design: the client sends the bytes to S3 itself; the functions see only metadata. The
    AWS requests are the ones counted on the local stack (bench/request_counts.json): the
    ``file`` scenario for a single POST (malware scan included), the ``video`` one for multipart,
    with its parts, part signing and status reads scaled to this upload.
    ``s3_verified``: one POST (a profile without multipart, up to S3's 5 GiB) whose declared
    SHA-256 S3 verified (FULL_OBJECT), so processing reads only the head it sniffs
    (processing/verify.py). A multipart upload's SHA-256 at S3 is COMPOSITE: never trusted."""
    api, proc = functions["ApiFunction"]["memoryMb"], functions["ProcessFunction"]["memoryMb"]
    bill = Bill()
    profile = profile_for(size)
    if s3_verified:
        profile = profile.model_copy(update={"multipart_threshold": None})
    multipart = profile.is_multipart(size)
    scenario = "video" if multipart else "file"
    counts = measured(scenario)
    receives = counts.get("sqs:ReceiveMessage", 1)
    bill.api_requests += 1  # POST /uploads
    bill.invoke(api, API_MS["issue"])
    if multipart:
        parts = math.ceil(size / profile.part_size_for(size))
        signs = math.ceil(parts / SIGN_BATCH)
        counts["s3:UploadPart"] = parts
        # each POST /uploads/{id}/parts reads the record once
        counts["dynamodb:GetItem"] = counts.get("dynamodb:GetItem", 0) + signs - SCENARIO_SIGN_CALLS
        bill.api_requests += signs + 1  # the parts calls, POST /uploads/{id}/complete
        bill.invoke(api, API_MS["sign"], signs)
        bill.invoke(api, API_MS["complete"])
        bill.notes.append(f"{profile.name}: multipart, {parts} parts")
    else:
        scanned = ", malware scan" if profile.scan == "required" else ""
        bill.notes.append(f"{profile.name}: one presigned POST{scanned}")
    # the client polls GET /uploads/{id}: the scenario read the status once
    counts["dynamodb:GetItem"] = counts.get("dynamodb:GetItem", 0) + POLLS - SCENARIO_STATUS_READS
    bill.api_requests += POLLS
    bill.invoke(api, API_MS["get"], POLLS)
    _add_requests(bill, counts)
    bill.write_units += OUTCOME_EXTRA_WRITE_UNITS
    # S3's notification and the scanner's verdict reach the queue as messages sent by AWS
    bill.sqs_requests += receives
    # ProcessFunction: one invocation per batch; read the whole object once (verify)
    read_ms = size / (S3_READ_MB_S * 1e6) * 1000
    if s3_verified:
        read_ms = HEAD_BYTES / (S3_READ_MB_S * 1e6) * 1000
        bill.notes.append("SHA-256 declared, verified by S3: head read only")
    bill.invoke(proc, PROCESS_FIXED_MS + read_ms, 1)
    bill.invoke(proc, PROCESS_FIXED_MS / 5, receives - 1)  # the verdict and deadline deliveries
    bill.lambda_requests -= receives * (1 - 1 / BATCH)  # ten messages share an invocation
    # PublishFunction: the outcome's event from the table's stream (batches of up to 10 under load)
    bill.invoke(functions["PublishFunction"]["memoryMb"], PUBLISH_MS, 1 / BATCH)
    bill.notes.append(f"{sum(counts.values())} AWS requests (the {scenario} scenario's counts, scaled)")
    if read_ms + PROCESS_FIXED_MS > functions["ProcessFunction"]["timeoutS"] * 1000:
        bill.notes.append("does not fit the ProcessFunction timeout")
    return bill


def proxied(size: int, functions: dict[str, Any]) -> Bill | str:
    """The alternative: the bytes go through API Gateway into a Lambda function, which writes them to
    S3, verifies them on the way and answers the outcome (no notification, queue or polling)."""
    body = math.ceil(size * 4 / 3)  # a binary body reaches Lambda base64-encoded
    if size > HTTP_API_MAX_PAYLOAD:
        return f"impossible: over API Gateway's {HTTP_API_MAX_PAYLOAD // 2**20} MB payload limit"
    if body > LAMBDA_MAX_SYNC_PAYLOAD:
        limit = LAMBDA_MAX_SYNC_PAYLOAD // 2**20
        return f"impossible: {body / 2**20:.1f} MB base64 over Lambda's {limit} MB payload limit"
    memory = functions["ProcessFunction"]["memoryMb"]  # it holds the body: the larger function
    bill = Bill()
    bill.api_requests += math.ceil(size / HTTP_API_METERING)
    bill.invoke(memory, PROCESS_FIXED_MS + size / (PROXY_MB_S * 1e6) * 1000)
    bill.write_units += 2 + 2  # quota and record, then the outcome
    bill.s3_puts += 1
    bill.events += 1
    bill.notes.append(f"{math.ceil(size / HTTP_API_METERING)} API requests billed (512 KB metering)")
    return bill


def money(usd: float) -> str:
    return f"${usd:,.2f}"


def report(sizes: tuple[int, ...] = (10**6, 100 * 10**6, 10**9)) -> str:
    functions = template_settings()
    rows = [
        f"Cost of one million uploads, us-east-1 list prices of {PRICES_DATE}, free tiers left out. "
        f"Functions from template.yaml: "
        + ", ".join(
            f"{n} {f['memoryMb']} MB/{f['timeoutS']} s {'/'.join(f['architectures'])}" for n, f in functions.items()
        )
        + ".",
        "",
        "| size | design | Lambda | API | DynamoDB | S3 requests | SQS | EventBridge | total | storage/month | notes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for size in sizes:
        label = f"{size / 10**9:g} GB" if size >= 10**9 else f"{size / 10**6:g} MB"
        storage = MILLION * size / 2**30 * PRICES["s3_gb_month"]
        for design, bill in (
            ("direct to S3 (this)", direct(size, functions)),
            ("one POST, SHA-256 declared (S3 verifies it)", direct(size, functions, s3_verified=True)),
            ("proxied through the API", proxied(size, functions)),
        ):
            if isinstance(bill, str):
                rows.append(f"| {label} | {design} | - | - | - | - | - | - | {bill} | {money(storage)} | |")
                continue
            costs = bill.costs()
            cells = " | ".join(
                money(costs[k]) for k in ("Lambda", "API", "DynamoDB", "S3 requests", "SQS", "EventBridge")
            )
            rows.append(
                f"| {label} | {design} | {cells} | **{money(sum(costs.values()))}** | {money(storage)} | "
                f"{'; '.join(bill.notes)} |"
            )
    largest = min(HTTP_API_MAX_PAYLOAD, LAMBDA_MAX_SYNC_PAYLOAD * 3 // 4)
    rows += [
        "",
        f"Proxying stops working above {largest / 2**20:.1f} MiB: a binary body reaches Lambda base64-encoded "
        f"(4/3 larger) and a synchronous invocation takes at most {LAMBDA_MAX_SYNC_PAYLOAD // 2**20} MB; API "
        f"Gateway's own limit is {HTTP_API_MAX_PAYLOAD // 2**20} MB. Larger files would need a chunked protocol "
        "through the API, which is multipart upload rebuilt at 512 KB-metered API prices.",
        "",
        "One POST with a declared SHA-256: S3 refuses other bytes and keeps the checksum (FULL_OBJECT), so "
        "processing reads only the head it sniffs instead of the whole object (the streaming suite of "
        "`make bench` measures both, in Lambda-seconds per GiB). It needs the upload in one POST (a profile "
        "without multipart, up to S3's 5 GiB: no resume, no parallel parts); a multipart upload's SHA-256 "
        "at S3 is COMPOSITE (of its parts), so every byte of it is still hashed.",
        "",
        f"Assumptions: warm API durations {API_MS} ms, processing {PROCESS_FIXED_MS} ms + the object read at "
        f"{S3_READ_MB_S} MB/s, {POLLS} status polls per upload, parts signed {SIGN_BATCH} at a time; a proxying "
        f"function writes its body to S3 at {PROXY_MB_S} MB/s. Data into AWS is free; CloudWatch Logs and "
        "X-Ray (Tracing: Active) come on top of both designs.",
    ]
    return "\n".join(rows)


if __name__ == "__main__":
    print(report())
    sys.exit(0)
