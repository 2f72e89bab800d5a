"""The signed webhook on the local stack, as a user runs it: `--parameter WebhookUrl=...` makes the
template's rule fill the webhook's queue, and the real WebhookFunction POSTs each event, signed,
to the sample receiver (client-demo/webhook_receiver.py) over real HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from typing import Any

import pytest
import requests
from standardwebhooks import Webhook

from tests.conftest import Stack, emulator_client, start_stack, stop_stack, wait_for_status
from tests.e2e.test_local_stack import png
from tests.support.waiting import eventually
from tests.webhooks import receiver_module
from tests.webhooks import serve as serve_http


@dataclass
class Attempt:
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class FlakyReceiver:
    """The sample receiver, behind a door that answers 500 to the first attempt of chosen ids."""

    receiver: Any = None  # set once the stack has generated the secret
    flaky: set[str] = field(default_factory=set)
    attempts: list[Attempt] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        webhook_id = {k.lower(): v for k, v in headers.items()}.get("webhook-id", "")
        with self.lock:
            if webhook_id in self.flaky:
                self.flaky.discard(webhook_id)
                status, reply = 500, {"error": "down for a moment"}
            else:
                status, reply = self.receiver.receive(headers, body)
            self.attempts.append(Attempt(headers, body, int(status)))
        return status, reply

    def of(self, webhook_id: str) -> list[Attempt]:
        with self.lock:
            return [a for a in self.attempts if a.headers.get("webhook-id") == webhook_id]


def serve(door: FlakyReceiver) -> ThreadingHTTPServer:
    return serve_http(lambda headers, body: door.answer({k.lower(): v for k, v in headers.items()}, body))


@dataclass
class WebhookStack:
    stack: Stack
    door: FlakyReceiver
    secret: str
    url: str


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebhookStack]:
    door = FlakyReceiver()
    httpd = serve(door)
    url = f"http://127.0.0.1:{httpd.server_address[1]}/hooks/uploads"
    # INFO: the handlers' logs reach stack.log, so the secret test reads what they wrote
    stack = start_stack(
        tmp_path_factory.mktemp("webhook"), "--parameter", f"WebhookUrl={url}", env={"LOCAL_LOG_LEVEL": "INFO"}
    )
    try:
        secret_id = stack.info["webhookSecretId"]
        secret = emulator_client(stack, "secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
        door.receiver = receiver_module().Receiver(secret)
        yield WebhookStack(stack, door, secret, url)
    finally:
        stop_stack(stack)
        httpd.shutdown()
        httpd.server_close()


def issue(stack: Stack, data: bytes) -> dict[str, Any]:
    reply = requests.post(
        f"{stack.url}/uploads",
        json={"profile": "avatar", "filename": "hook.png", "contentType": "image/png", "size": len(data)},
        timeout=10,
    )
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


def send(issued: dict[str, Any], data: bytes) -> None:
    reply = requests.post(
        issued["url"], data=issued["fields"], files={"file": ("hook.png", data, "image/png")}, timeout=30
    )
    assert reply.status_code == 204, reply.text


def test_an_upload_processed_event_is_delivered_signed_and_the_receiver_accepts_it(hooked: WebhookStack) -> None:
    # Given an upload that goes through
    data = png(64, 48)
    issued = issue(hooked.stack, data)
    send(issued, data)
    record = wait_for_status(hooked.stack.url, issued["uploadId"])
    webhook_id = f"{issued['uploadId']}-processed"

    # When the webhook delivers its event
    event = eventually(lambda: hooked.door.receiver.seen.get(webhook_id), f"{webhook_id} accepted")

    # Then the receiver verified it and holds the event the bus carried
    assert record["status"] == "PROCESSED"
    assert event["detail-type"] == "Upload Processed"
    assert event["source"] == "directupload"
    assert event["detail"]["uploadId"] == issued["uploadId"]
    assert event["detail"]["sha256"] == record["sha256"]
    [accepted] = [a for a in hooked.door.of(webhook_id) if a.status == 200]
    assert accepted.headers["webhook-signature"].startswith("v1,")
    assert accepted.headers["content-type"] == "application/json"
    assert Webhook(hooked.secret).verify(accepted.body, accepted.headers) == event


def test_a_forged_body_and_a_replayed_old_delivery_are_refused_and_a_repeat_is_not_handled_twice(
    hooked: WebhookStack,
) -> None:
    data = png(30, 30)
    issued = issue(hooked.stack, data)
    send(issued, data)
    webhook_id = f"{issued['uploadId']}-processed"
    eventually(lambda: hooked.door.receiver.seen.get(webhook_id), f"{webhook_id} accepted")
    [real] = [a for a in hooked.door.of(webhook_id) if a.status == 200]
    signer = Webhook(hooked.secret)
    old = datetime.now(UTC) - timedelta(minutes=10)

    def post(headers: dict[str, str], body: bytes) -> requests.Response:
        return requests.post(hooked.url, data=body, headers=headers, timeout=10)

    # a body changed in flight, with the real headers
    forged = post(real.headers, real.body.replace(b'"avatar"', b'"document"'))
    # the real bytes, captured and replayed 10 minutes later (signed then, so an old timestamp)
    replayed_headers = {
        **real.headers,
        "webhook-timestamp": str(int(old.timestamp())),
        "webhook-signature": signer.sign(webhook_id, old, real.body.decode()),
    }
    replayed = post(replayed_headers, real.body)
    # an unsigned request
    unsigned = post({"content-type": "application/json"}, real.body)
    # the very same request again, within the 5 minutes
    repeated = post(real.headers, real.body)

    assert (forged.status_code, unsigned.status_code) == (401, 401)
    assert replayed.status_code == 401
    assert "too old" in replayed.json()["error"]
    assert repeated.status_code == 200 and repeated.json() == {"accepted": True, "duplicate": True}


def test_a_receiver_answering_500_gets_the_delivery_again_with_the_same_id_and_then_takes_it(
    hooked: WebhookStack,
) -> None:
    data = png(20, 40)
    issued = issue(hooked.stack, data)
    webhook_id = f"{issued['uploadId']}-processed"
    hooked.door.flaky.add(webhook_id)  # its first attempt will be answered 500
    send(issued, data)

    eventually(lambda: hooked.door.receiver.seen.get(webhook_id), f"{webhook_id} accepted after a 500")

    attempts = hooked.door.of(webhook_id)
    assert attempts[0].status == 500
    assert attempts[-1].status == 200
    # every attempt was signed afresh for the same id, and each one verifies
    for attempt in attempts:
        assert attempt.headers["webhook-id"] == webhook_id
        Webhook(hooked.secret).verify(attempt.body, attempt.headers)


def test_the_secret_never_appears_in_the_logs_events_or_stack_description(hooked: WebhookStack) -> None:
    eventually(lambda: hooked.door.receiver.seen, "any delivery")
    logs = hooked.stack.log()
    files = [hooked.stack.state_dir / name for name in ("stack.json", "events.jsonl")]

    assert "webhook delivered" in logs  # the capture holds the webhook function's logs
    assert hooked.secret not in logs
    for path in files:
        assert hooked.secret not in path.read_text(), path
