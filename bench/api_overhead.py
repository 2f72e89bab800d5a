"""Request overhead and size independence: POST /uploads through the real ApiFunction handler,
warm, in this process, against moto on loopback (boto3 does real HTTP), interleaved with a
baseline doing the same work by hand in the same process."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bench.emulator import baseline_clients
from bench.figures import Figure, Target, interleaved, percentile
from local.harness import Deployment

OWNER = "anonymous"  # auth none: every caller is this owner
SMALL = {"profile": "file", "filename": "notes.txt", "contentType": "text/plain", "size": 1024}
VIDEO_SMALL = {"profile": "video", "filename": "clip.mp4", "contentType": "video/mp4", "size": 1024}
VIDEO_5GIB = {"profile": "video", "filename": "film.mp4", "contentType": "video/mp4", "size": 5 * 1024**3}


@contextlib.contextmanager
def function_environment(env: dict[str, str]) -> Iterator[None]:
    """The functions' environment in this process, the handlers' cached objects rebuilt from it."""
    from directupload import wiring

    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    wiring.reset()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        wiring.reset()


def api_event(body: dict[str, Any]) -> dict[str, Any]:
    from local.gateway import api_gateway_event

    data = json.dumps(body).encode()
    headers = {"content-type": "application/json", "host": "api.bench", "content-length": str(len(data))}
    return api_gateway_event("POST", "/uploads", headers, data, "198.51.100.7", None)


@dataclass
class Issued:
    status: int
    payload: dict[str, Any]


class Tidy:
    """Deletes the records a benchmark made, a few calls behind (untimed), so the table stays
    small: moto's TransactWriteItems deep-copies every table it touches, which real DynamoDB
    does not, and a growing table would charge that to the transaction alone."""

    KEEP = 5

    def __init__(self) -> None:
        self.made: list[tuple[Any, str, str]] = []

    def made_record(self, client: Any, table: str, upload_id: str) -> None:
        self.made.append((client, table, upload_id))
        while len(self.made) > self.KEEP:
            client, table, old = self.made.pop(0)
            client.delete_item(TableName=table, Key={"pk": {"S": f"upload#{old}"}})


@dataclass
class ApiSubject:
    """The real handler (handlers.api.lambda_handler). Logs go where Lambda's stdout would (here
    /dev/null), after being formatted all the same; each upload's pending slot is released after
    its timing, as finishing the upload would, so the owner never hits the pending limit."""

    issued: list[Issued] = field(default_factory=list)
    tidy: Tidy = field(default_factory=Tidy)

    def __post_init__(self) -> None:
        from directupload.observability import logger
        from handlers import api
        from local.lambda_runtime import LocalContext

        self.handler = api.lambda_handler
        self.context = LocalContext(function_name="ApiFunction", memory_limit_in_mb=512, timeout_seconds=10)
        self.devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the subject
        logger.registered_handler.setStream(self.devnull)  # type: ignore[attr-defined]

    def __call__(self, body: dict[str, Any]) -> float:
        from directupload import wiring

        event = api_event(body)
        with contextlib.redirect_stdout(self.devnull):  # metrics (EMF) print to stdout
            started = time.perf_counter()
            reply = self.handler(event, self.context)
            elapsed = time.perf_counter() - started
        payload = json.loads(reply["body"])
        if reply["statusCode"] != 201:
            raise RuntimeError(f"POST /uploads answered {reply['statusCode']}: {payload}")
        self.issued.append(Issued(reply["statusCode"], payload))
        del self.issued[:-5]  # the last few, for the tests
        service = wiring.upload_service()
        if service.quota is not None:
            service.quota.release(OWNER, payload["uploadId"])
        self.tidy.made_record(wiring.store().client, wiring.store().table_name, payload["uploadId"])
        return elapsed

    def close(self) -> None:
        from directupload.observability import logger

        logger.registered_handler.setStream(sys.stdout)  # type: ignore[attr-defined]
        self.devnull.close()


class HandWritten:
    """The minimal baseline: a hand-written handler making the same AWS calls as the product's
    POST /uploads, so the ratio measures our code and not the design's round trips: parse the
    JSON body, one SigV4 presigned POST, the quota's conditional update on the owner's item (as
    quotas.py writes it) and a conditional Put of a record like the handler's in one
    TransactWriteItems, json.dumps the answer. ``quota``: "on" as the product by default, "off"
    without the quota (the PutItem alone). Clients
    built once, configured as functions/directupload/aws.py configures them; its slot is given
    back after the timing, as the subject's is."""

    def __init__(self, deployment: Deployment) -> None:
        self.s3, self.ddb = baseline_clients(deployment)
        self.bucket = deployment.bucket
        self.table = deployment.table
        self.tidy = Tidy()
        self.quota = "on"
        self.max_pending = int(deployment.env.get("QUOTA_MAX_PENDING") or 20)
        self.daily_bytes = int(deployment.env.get("QUOTA_DAILY_BYTES") or 2**60)

    def _reservation(self, upload_id: str, size: int, now: float) -> dict[str, Any]:
        day = time.strftime("%Y-%m-%d", time.gmtime(now))
        return {
            "TableName": self.table,
            "Key": {"pk": {"S": f"owner#{OWNER}"}},
            "UpdateExpression": "SET #open.#id = :until ADD #bytes :size",
            "ConditionExpression": "#day = :day AND size(#open) < :max AND #bytes <= :room",
            "ExpressionAttributeNames": {"#open": "open", "#id": upload_id, "#bytes": "bytes", "#day": "day"},
            "ExpressionAttributeValues": {
                ":until": {"N": str(int(now + 900))},
                ":size": {"N": str(size)},
                ":day": {"S": day},
                ":max": {"N": str(self.max_pending)},
                ":room": {"N": str(self.daily_bytes - size)},
            },
        }

    def __call__(self, body: dict[str, Any]) -> float:
        event = api_event(body)
        started = time.perf_counter()
        request = json.loads(event["body"])
        upload_id = uuid.uuid4().hex
        now = time.time()
        key = f"incoming/{upload_id}/{request['filename']}"
        fields = {"Content-Type": request["contentType"], "x-amz-meta-upload-id": upload_id}
        conditions: list[Any] = [{k: v} for k, v in fields.items()]
        conditions.append(["content-length-range", request["size"], request["size"]])
        signed = self.s3.generate_presigned_post(
            Bucket=self.bucket, Key=key, Fields=fields, Conditions=conditions, ExpiresIn=900
        )
        put = {
            "TableName": self.table,
            "Item": {
                "pk": {"S": f"upload#{upload_id}"},
                "upload_id": {"S": upload_id},
                "owner": {"S": OWNER},
                "status": {"S": "PENDING"},
                "profile": {"S": request["profile"]},
                "key": {"S": key},
                "filename": {"S": request["filename"]},
                "content_type": {"S": request["contentType"]},
                "size": {"N": str(request["size"])},
                "created_at": {"S": str(now)},
                "updated_at": {"S": str(now)},
                "expires_at": {"S": str(now + 900)},
                "ttl": {"N": str(int(now + 900 + 30 * 86400))},
            },
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        if self.quota == "on":
            reservation = self._reservation(upload_id, request["size"], now)
            self.ddb.transact_write_items(TransactItems=[{"Update": reservation}, {"Put": put}])
        else:
            self.ddb.put_item(**put)
        json.dumps({"uploadId": upload_id, "key": key, "method": "POST", **signed})
        elapsed = time.perf_counter() - started
        if self.quota != "off":
            self.ddb.update_item(
                TableName=self.table,
                Key={"pk": {"S": f"owner#{OWNER}"}},
                UpdateExpression="REMOVE #open.#id",
                ExpressionAttributeNames={"#open": "open", "#id": upload_id},
            )
        self.tidy.made_record(self.ddb, self.table, upload_id)
        return elapsed


@contextlib.contextmanager
def quota_variant(variant: str) -> Iterator[None]:
    """``on``: the product as configured. ``off``: no quota (to attribute its cost)."""
    from directupload import wiring

    service = wiring.upload_service()
    original = service.quota
    if variant == "off":
        service.quota = None
    elif variant != "on":
        raise ValueError(f"unknown quota variant {variant!r}")
    try:
        yield
    finally:
        service.quota = original


BASELINE_NAME = "hand-written handler, the same AWS calls"


def requests_per_route() -> dict[str, int]:
    """The AWS requests each API route makes (counted on the local stack: bench/request_counts.json)."""
    from bench.request_counts import COUNTS, load_counts

    if not COUNTS.exists():
        return {}
    counts = load_counts()
    api = counts["image"]["byFunction"]["ApiFunction"]
    issue = sum(api.values()) - api.get("s3:PostObject", 0) - 1  # less the client's POST and the status read
    return {
        "POST /uploads (single part)": issue,
        "GET /uploads/{id}": 1,
        "GET /uploads/{id}/download": counts["download"]["total"],
        "GET /uploads?limit=20": counts["list"]["total"],
    }


def _summaries(samples: list[float]) -> dict[str, float]:
    return {"p50": percentile(samples, 50), "p99": percentile(samples, 99)}


@dataclass
class Series:
    """Per repeat: the p50 and p99 of the subject's and the baseline's latencies (ms)."""

    subject: dict[str, list[float]] = field(default_factory=lambda: {"p50": [], "p99": []})
    baseline: dict[str, list[float]] = field(default_factory=lambda: {"p50": [], "p99": []})

    def add(self, base: list[float], subj: list[float]) -> None:
        for name, value in _summaries([x * 1000 for x in base]).items():
            self.baseline[name].append(value)
        for name, value in _summaries([x * 1000 for x in subj]).items():
            self.subject[name].append(value)


def measure_request_overhead(
    deployment: Deployment,
    *,
    repeats: int,
    pairs: int,
    variants: tuple[str, ...] = ("on", "off"),
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[list[Figure], ApiSubject]:
    with function_environment(deployment.env):
        subject = ApiSubject()
        baseline = HandWritten(deployment)
        try:
            for _ in range(10):  # warm: clients built, connections and caches ready
                subject(SMALL)  # first: the owner's quota item, which the baseline's update needs
                baseline(SMALL)
            series = {variant: Series() for variant in variants}
            for r in range(repeats):
                for variant in variants:
                    baseline.quota = variant  # the same AWS calls as the subject's
                    with quota_variant(variant):
                        n = pairs if variant == "on" else max(10, pairs // 2)
                        series[variant].add(*interleaved(lambda: baseline(SMALL), lambda: subject(SMALL), n))
                progress(f"request overhead: repeat {r + 1}/{repeats}")
        finally:
            subject.close()
    figures = []
    on = series.get("on")
    if on is not None:
        figures.append(
            Figure(
                "request overhead p50 (quotas on, the default)",
                "ms",
                on.subject["p50"],
                on.baseline["p50"],
                Target("ratio", "<=", 1.3),
                baseline_name=BASELINE_NAME,
                notes="POST /uploads, 1 KiB, through handlers.api.lambda_handler, warm, against a hand-written "
                "handler making the same AWS calls (presigned POST, quota and record in one TransactWriteItems): "
                "the ratio is our code's; the design's AWS round trips per route are in the details",
                details={"pairsPerRepeat": pairs, "awsRequestsPerRoute": requests_per_route()},
            )
        )
        figures.append(
            Figure(
                "request overhead p99 (quotas on, the default)",
                "ms",
                on.subject["p99"],
                on.baseline["p99"],
                None,
                baseline_name=BASELINE_NAME,
                details={"pairsPerRepeat": pairs},
            )
        )
    names = {"off": "request overhead p50, quotas off (attribution)"}
    for variant, name in names.items():
        if variant in series:
            s = series[variant]
            figures.append(
                Figure(
                    name,
                    "ms",
                    s.subject["p50"],
                    s.baseline["p50"],
                    None,
                    baseline_name=BASELINE_NAME,
                    details={"pairsPerRepeat": max(10, pairs // 2)},
                )
            )
    return figures, subject


def measure_size_independence(
    deployment: Deployment, *, repeats: int, pairs: int, progress: Callable[[str], None] = lambda _: None
) -> tuple[list[Figure], ApiSubject]:
    """Issuing a 5 GiB multipart upload against issuing a 1 KiB one, both through the handler,
    profile video (the 1 KiB one is a presigned POST, the 5 GiB one a multipart plan: S3's
    multipart upload is created by the first parts call, which issuing does not make)."""
    with function_environment(deployment.env):
        subject = ApiSubject()
        try:
            for _ in range(5):
                subject(VIDEO_SMALL)
                subject(VIDEO_5GIB)
            small_p50: list[float] = []
            large_p50: list[float] = []
            for r in range(repeats):
                small, large = interleaved(lambda: subject(VIDEO_SMALL), lambda: subject(VIDEO_5GIB), pairs)
                small_p50.append(percentile(small, 50) * 1000)
                large_p50.append(percentile(large, 50) * 1000)
                progress(f"size independence: repeat {r + 1}/{repeats}")
        finally:
            subject.close()
    figure = Figure(
        "size independence: issue 5 GiB multipart vs 1 KiB (p50)",
        "ms",
        large_p50,
        small_p50,
        Target("ratio", "<=", 1.1),
        baseline_name="issue 1 KiB (presigned POST)",
        notes="both through the handler, profile video; 5 GiB answers a multipart plan instead of a "
        "presigned POST (CreateMultipartUpload waits for the first parts call)",
        details={"pairsPerRepeat": pairs},
    )
    return [figure], subject
