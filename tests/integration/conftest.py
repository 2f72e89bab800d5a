from __future__ import annotations

import io
import json
from typing import Any

import pytest
import requests

from tests.event_schemas import validate_event
from tests.events import http, s3_notification, sqs_batch
from tests.lambda_context import context


def png(width: int = 32, height: int = 24) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(buf, "PNG")
    return buf.getvalue()


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
    aws: Any, key: str, size: int, receive_count: int = 1, etag: str | None = None, sequencer: str | None = None
) -> dict[str, Any]:
    """The processor handling S3's notification of the object now at ``key`` (or of ``etag``).
    Another write of the key has another ``sequencer``; a repeated notification has the same."""
    from handlers import processor

    etag = etag or current_etag(aws, key)
    body = s3_notification(aws.bucket, key, size, etag=etag, **({"sequencer": sequencer} if sequencer else {}))
    return processor.lambda_handler(sqs_batch(body, receive_count=receive_count), context("ProcessFunction"))  # type: ignore[no-any-return]


def upload(api: Api, data: bytes, filename: str, content_type: str, profile: str) -> dict[str, Any]:
    status, issued, _ = api.call(
        "POST", "/uploads", {"profile": profile, "filename": filename, "contentType": content_type, "size": len(data)}
    )
    assert status == 201, issued
    assert post_to_s3(issued, data, filename).status_code == 204
    return issued


def a_pdf(pages: int) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(100, 100)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


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
