from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from local.lambda_runtime import LocalContext
from tests.event_schemas import validate_event
from tests.events import http
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
        reply = self.handler(http(method, path, body, **kwargs), LocalContext("ApiFunction"))
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
    """Every event the bus delivered since the last call, each checked against its schema: the
    PublishFunction first handles the changes written to the table's stream since then."""
    from tests.support.processing import publish_owed

    publish_owed(aws)
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


@pytest.fixture
def unscanned(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The built-in profiles with the malware scan off: for tests of processing mechanics (retries,
    races, dead letters) that the scan's wait for a verdict would only put a step before."""
    from directupload import wiring
    from tests.records import unscanned_profiles_json

    monkeypatch.setenv("PROFILES_JSON", unscanned_profiles_json())
    wiring.reset()


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
