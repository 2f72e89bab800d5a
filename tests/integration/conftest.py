from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests.event_schemas import validate_event
from tests.events import http, s3_notification, sqs_batch
from tests.lambda_context import context
from tests.support.samples import a_pdf as a_pdf  # re-exported: tests import it from here
from tests.support.samples import png as png  # re-exported: tests import it from here


class Api:
    """Calls the real ApiFunction handler with API Gateway v2 events."""

    def __init__(self, claims: dict[str, Any] | None = None) -> None:
        from handlers import api

        self.handler = api.lambda_handler
        self.claims = claims

    def call(
        self, method: str, path: str, body: Any = None, **kwargs: Any
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        kwargs.setdefault("claims", self.claims)
        reply = self.handler(http(method, path, body, **kwargs), context("ApiFunction"))
        payload = json.loads(reply["body"]) if reply.get("body") else {}
        return reply["statusCode"], payload, reply.get("headers") or {}


@pytest.fixture
def api(aws: Any) -> Api:
    return Api()


def post_to_s3(issued: dict[str, Any], data: bytes, filename: str = "upload.bin") -> requests.Response:
    """What a browser does with the presigned POST: the fields, then the file, as multipart/form-data."""
    content_type = issued["fields"]["Content-Type"]
    return requests.post(
        issued["url"], data=issued["fields"], files={"file": (filename, data, content_type)}, timeout=30
    )


def delivered_events(aws: Any) -> list[dict[str, Any]]:
    """Every event the bus delivered since the last call, each checked against its schema."""
    out = []
    while True:
        reply = aws.sqs.receive_message(
            QueueUrl=aws.resources.events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        )
        messages = reply.get("Messages", [])
        if not messages:
            break
        for message in messages:
            event = json.loads(message["Body"])
            validate_event(event)
            out.append(event)
            aws.sqs.delete_message(QueueUrl=aws.resources.events_queue_url, ReceiptHandle=message["ReceiptHandle"])
    return out


def current_etag(aws: Any, key: str) -> str | None:
    """The ETag S3 would name in the notification of the object now at ``key``."""
    try:
        return str(aws.s3.head_object(Bucket=aws.bucket, Key=key)["ETag"]).strip('"')
    except aws.s3.exceptions.ClientError:
        return None


def process(
    aws: Any,
    key: str,
    size: int,
    receive_count: int = 1,
    etag: str | None = None,
    sequencer: str | None = None,
    scan: bool = True,
) -> dict[str, Any]:
    """The processor handling S3's notification of the object now at ``key`` (or of ``etag``).
    Another write of the key has another ``sequencer``; a repeated notification has the same.
    With ``scan`` (as the deployed stack does), an upload that then waits for its malware scan
    is scanned by the real ClamAV scanner and the processor handles that verdict too."""
    from handlers import processor

    etag = etag or current_etag(aws, key)
    body = s3_notification(aws.bucket, key, size, etag=etag, **({"sequencer": sequencer} if sequencer else {}))
    reply: dict[str, Any] = processor.lambda_handler(
        sqs_batch(body, receive_count=receive_count), context("ProcessFunction")
    )
    if scan and etag and not reply.get("batchItemFailures") and awaiting_scan(aws, key, etag):
        return deliver_verdict(aws, key, etag)
    return reply


def scan_once(aws: Any) -> int:
    """The malware scanner (local/scanner.py: real ClamAV, playing GuardDuty) over every object S3
    announced to it since the last call; its verdicts go to the bus, whose rule brings them to the
    ingest queue. Returns how many notifications it handled."""
    from local.scanner import Scanner

    url = aws.resources.scan_requests_queue_url
    if not url:
        return 0
    scanner = Scanner(aws.sqs, aws.s3, aws.events, url, "us-east-1")
    handled = 0
    while messages := aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
        "Messages", []
    ):
        for message in messages:
            scanner.handle(json.loads(message["Body"]))
            aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            handled += 1
    return handled


@pytest.fixture
def unscanned(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The built-in profiles with the malware scan off: for tests of processing mechanics (retries,
    races, dead letters) that the scan's wait for a verdict would only put a step before."""
    from directupload import wiring
    from tests.records import unscanned_profiles_json

    monkeypatch.setenv("PROFILES_JSON", unscanned_profiles_json())
    wiring.reset()


def awaiting_scan(aws: Any, key: str, etag: str) -> bool:
    from directupload import keys, wiring

    upload_id = keys.upload_id_from_key(key)
    record = wiring.store().get(upload_id) if upload_id else None
    return record is not None and record.status.value == "SCANNING" and record.claim_etag == etag


def scan_verdict(
    aws: Any, key: str, etag: str, status: str | None = None, threats: tuple[str, ...] = (), tag: bool = True
) -> dict[str, Any]:
    """GuardDuty's scan result event for version ``etag`` of ``key``, as EventBridge delivers it to
    the queue: from a real ClamAV scan of the object (local/scanner.py), or with ``status`` given."""
    import uuid
    from datetime import UTC, datetime

    from local.scanner import TAG, Scanner, Verdict, scan_result_event

    if status:
        verdict: Verdict | None = Verdict(status, threats)
        if tag and current_etag(aws, key) == etag:  # the scanner tags the version it scanned
            aws.s3.put_object_tagging(Bucket=aws.bucket, Key=key, Tagging={"TagSet": [{"Key": TAG, "Value": status}]})
    else:
        verdict = Scanner(None, aws.s3, None, "", "us-east-1").scan(aws.bucket, key, etag)
        assert verdict is not None, f"{key} ({etag}) is not in the bucket to scan"
        aws.s3.put_object_tagging(
            Bucket=aws.bucket, Key=key, Tagging={"TagSet": [{"Key": TAG, "Value": verdict.status}]}
        )
    assert verdict is not None
    entry = scan_result_event(aws.bucket, key, etag, verdict, "us-east-1")
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": entry["DetailType"],
        "source": entry["Source"],
        "account": "123456789012",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": entry["Resources"],
        "detail": json.loads(entry["Detail"]),
    }


def deliver_verdict(
    aws: Any,
    key: str,
    etag: str,
    status: str | None = None,
    threats: tuple[str, ...] = (),
    receive_count: int = 1,
    tag: bool = True,
) -> dict[str, Any]:
    """The processor handling the scanner's verdict on version ``etag`` of ``key`` (``tag``: the
    scanner tagged the object it scanned, as GuardDuty does)."""
    from handlers import processor

    body = scan_verdict(aws, key, etag, status, threats, tag)
    return processor.lambda_handler(sqs_batch(body, receive_count=receive_count), context("ProcessFunction"))


def upload(api: Api, data: bytes, filename: str, content_type: str, profile: str) -> dict[str, Any]:
    status, issued, _ = api.call(
        "POST", "/uploads", {"profile": profile, "filename": filename, "contentType": content_type, "size": len(data)}
    )
    assert status == 201, issued
    assert post_to_s3(issued, data, filename).status_code == 204
    return issued


def fail_calls(
    service: str, operation: str, times: int, code: str = "ThrottlingException", when: Any = None
) -> list[int]:
    """The next ``times`` calls of ``operation`` (matching ``when(params)``) by the functions' own
    client answer with a real ClientError, as a throttled call does once botocore gives up."""
    from botocore.awsrequest import AWSResponse

    from directupload import aws as clients

    left = [times]

    def decide(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if left[0] > 0 and (when is None or when(params)):
            left[0] -= 1
            context["test_fault"] = True

    def answer(context: dict[str, Any], **_: Any) -> Any:
        if context.get("test_fault"):
            parsed = {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": 400}}
            return AWSResponse("", 400, {}, None), parsed
        return None

    events_ = clients.client(service).meta.events
    events_.register(f"before-parameter-build.{service}.{operation}", decide)
    events_.register_first(f"before-call.{service}.{operation}", answer)
    return left
