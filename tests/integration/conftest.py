from __future__ import annotations

import io
import json
from typing import Any

import pytest
import requests

from tests.event_schemas import validate_event
from tests.events import http
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
