"""WebhookFunction's real handler against moto (Secrets Manager, SQS) and a real HTTP receiver:
what each answer of the receiver does to the SQS record."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from local.lambda_runtime import LocalContext
from local.poller import sqs_event
from tests.conftest import aws_client
from tests.support.servers import QuietHTTPServer
from tests.webhooks import bus_event as event
from tests.webhooks import receiver_module
from tests.webhooks import serve as serve_http


@dataclass
class FrontDoor:
    """The sample receiver behind a door that can answer a fixed status instead (a 500, a 400)."""

    receiver: Any
    status: int | None = None
    attempts: list[tuple[str, int]] = field(default_factory=list)


def serve(door: FrontDoor) -> ThreadingHTTPServer:
    def answer(headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        if door.status is not None:
            status, reply = door.status, {"error": "told to"}
        else:
            status, reply = door.receiver.receive(headers, body)
        door.attempts.append(({k.lower(): v for k, v in headers.items()}.get("webhook-id", ""), int(status)))
        return status, reply

    return serve_http(answer)


@dataclass
class Webhook:
    door: FrontDoor
    secret: str
    sqs: Any
    queue_url: str
    dlq_url: str


@pytest.fixture
def webhook(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Webhook]:
    from directupload import wiring

    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    name = f"t{uuid.uuid4().hex[:10]}"
    arn = aws_client("secretsmanager").create_secret(Name=f"{name}-signing", SecretString=secret)["ARN"]
    sqs = aws_client("sqs")
    dlq = sqs.create_queue(QueueName=f"{name}-webhook-dlq")["QueueUrl"]
    queue = sqs.create_queue(QueueName=f"{name}-webhook")["QueueUrl"]
    door = FrontDoor(receiver_module().Receiver(secret))
    httpd = serve(door)
    monkeypatch.setenv("WEBHOOK_URL", f"http://127.0.0.1:{httpd.server_address[1]}/hooks")
    monkeypatch.setenv("WEBHOOK_SECRET_ARN", arn)
    monkeypatch.setenv("WEBHOOK_DEAD_LETTER_QUEUE_URL", dlq)
    monkeypatch.setenv("WEBHOOK_TIMEOUT_SECONDS", "2")
    wiring.reset()
    yield Webhook(door, secret, sqs, queue, dlq)
    httpd.shutdown()
    httpd.server_close()
    wiring.reset()


def invoke(hook: Webhook, *bodies: str) -> tuple[dict[str, Any], list[str]]:
    """Send the bodies through the real queue and hand what it gives to the handler, as the event
    source does; returns the response and the message ids in order."""
    from handlers import webhook as handler

    for body in bodies:
        hook.sqs.send_message(QueueUrl=hook.queue_url, MessageBody=body)
    messages: list[dict[str, Any]] = []
    while len(messages) < len(bodies):
        reply = hook.sqs.receive_message(
            QueueUrl=hook.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["All"]
        )
        messages += reply.get("Messages", [])
    arn = hook.sqs.get_queue_attributes(QueueUrl=hook.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    order = {body: i for i, body in enumerate(bodies)}
    messages.sort(key=lambda m: order[m["Body"]])
    result = handler.lambda_handler(sqs_event(messages, arn, "us-east-1"), LocalContext("WebhookFunction"))
    return result, [m["MessageId"] for m in messages]


def parked(hook: Webhook) -> list[dict[str, Any]]:
    reply = hook.sqs.receive_message(
        QueueUrl=hook.dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
    )
    return list(reply.get("Messages", []))


def body_of(upload_id: str, detail_type: str = "Upload Processed") -> str:
    return json.dumps(event(detail_type, upload_id), separators=(",", ":"))


def test_a_delivery_the_receiver_takes_succeeds_and_is_signed_with_the_stable_id(webhook: Webhook) -> None:
    result, _ = invoke(webhook, body_of("u1"), body_of("u1", "Upload Deleted"))

    assert result == {"batchItemFailures": []}
    assert list(webhook.door.receiver.seen) == ["u1-processed", "u1-deleted"]
    assert webhook.door.receiver.seen["u1-processed"]["detail"]["uploadId"] == "u1"
    assert parked(webhook) == []


def test_a_500_fails_only_that_record_and_the_retry_with_the_same_id_is_taken(webhook: Webhook) -> None:
    webhook.door.status = 500
    failed, [message_id] = invoke(webhook, body_of("u2"))
    webhook.door.status = None
    retried, _ = invoke(webhook, body_of("u2"))  # what SQS hands back after the backoff

    assert failed == {"batchItemFailures": [{"itemIdentifier": message_id}]}
    assert retried == {"batchItemFailures": []}
    assert [status for _, status in webhook.door.attempts] == [500, 200]
    assert {webhook_id for webhook_id, _ in webhook.door.attempts} == {"u2-processed"}


@pytest.mark.parametrize("status", [408, 429, 502, 503, 302])
def test_statuses_that_may_pass_are_retried(webhook: Webhook, status: int) -> None:
    webhook.door.status = status
    result, [message_id] = invoke(webhook, body_of("u3"))

    assert result == {"batchItemFailures": [{"itemIdentifier": message_id}]}
    assert parked(webhook) == []


@pytest.mark.parametrize("status", [400, 401, 404, 410])
def test_a_refusal_is_parked_in_the_dead_letter_queue_at_once_not_retried(webhook: Webhook, status: int) -> None:
    webhook.door.status = status
    body = body_of("u4")
    result, _ = invoke(webhook, body)

    assert result == {"batchItemFailures": []}
    [dead] = parked(webhook)
    assert dead["Body"] == body  # as it came: a redrive to the WebhookQueue sends it again
    assert str(status) in dead["MessageAttributes"]["reason"]["StringValue"]


def test_a_record_that_is_not_an_event_is_parked_while_its_batch_mates_are_delivered(webhook: Webhook) -> None:
    result, _ = invoke(webhook, "not json", body_of("u5"))

    assert result == {"batchItemFailures": []}
    assert [m["Body"] for m in parked(webhook)] == ["not json"]
    assert list(webhook.door.receiver.seen) == ["u5-processed"]


def test_a_receiver_that_is_down_fails_the_record(webhook: Webhook, monkeypatch: pytest.MonkeyPatch) -> None:
    from directupload import wiring

    closed = QuietHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = closed.server_address[1]
    closed.server_close()  # nothing listens there now
    monkeypatch.setenv("WEBHOOK_URL", f"http://127.0.0.1:{port}/hooks")
    wiring.reset()

    result, [message_id] = invoke(webhook, body_of("u6"))

    assert result == {"batchItemFailures": [{"itemIdentifier": message_id}]}


def test_an_unreadable_secret_fails_the_record_and_names_no_secret(
    webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    from directupload import wiring

    monkeypatch.setenv("WEBHOOK_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf")
    wiring.reset()

    result, [message_id] = invoke(webhook, body_of("u7"))

    assert result == {"batchItemFailures": [{"itemIdentifier": message_id}]}
    assert webhook.door.attempts == []


def test_the_secret_is_never_logged_even_at_debug(webhook: Webhook) -> None:
    from directupload.observability import logger

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    previous = logger.log_level
    logger.setLevel("DEBUG")
    try:
        invoke(webhook, body_of("u8"))
        webhook.door.status = 500
        invoke(webhook, body_of("u9"))
        webhook.door.status = 401
        invoke(webhook, body_of("u10"))
    finally:
        logger.removeHandler(handler)  # type: ignore[attr-defined]  # powertools passes it to logging
        logger.setLevel(previous)
    logs = stream.getvalue()

    assert "webhook delivered" in logs and "will retry" in logs and "refused" in logs  # the capture works
    # each outcome names its delivery, so a receiver's report can be found
    assert all(f"u{n}-processed" in logs for n in (8, 9, 10))
    assert webhook.secret not in logs
    assert webhook.secret.removeprefix("whsec_") not in logs
    assert "v1," not in logs  # no signature either
    assert "127.0.0.1:" not in logs  # nor the URL


def logged_while(action: Callable[[], Any]) -> str:
    """What the functions' logger wrote while ``action`` ran."""
    from directupload.observability import logger

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    try:
        action()
    finally:
        logger.removeHandler(handler)  # type: ignore[attr-defined]  # powertools passes it to logging
    return stream.getvalue()


def serve_raw(reply: Callable[[socket.socket], None]) -> tuple[str, Callable[[], None]]:
    """A receiver that reads one request and answers with ``reply`` on the bare socket, as a
    receiver that does not play by HTTP's rules would; returns its URL and how to stop it."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    request = b""
                    while b"\r\n\r\n" not in request:
                        request += conn.recv(65536)
                    head, _, body = request.partition(b"\r\n\r\n")
                    length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
                    while len(body) < length:
                        body += conn.recv(65536)
                    reply(conn)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def close() -> None:
        stop.set()
        thread.join(5)
        listener.close()

    return f"http://127.0.0.1:{listener.getsockname()[1]}/hooks", close


def invoke_against(
    hook: Webhook, monkeypatch: pytest.MonkeyPatch, reply: Callable[[socket.socket], None], upload_id: str
) -> tuple[dict[str, Any], str, str]:
    """One delivery of ``upload_id``'s event to a raw receiver answering with ``reply``: the
    handler's response, the message id and what was logged meanwhile."""
    from directupload import wiring

    url, close = serve_raw(reply)
    monkeypatch.setenv("WEBHOOK_URL", url)
    wiring.reset()
    outcome: dict[str, Any] = {}
    try:
        logs = logged_while(lambda: outcome.update(result=invoke(hook, body_of(upload_id))))
    finally:
        close()
    result, [message_id] = outcome["result"]
    return result, message_id, logs


@pytest.mark.parametrize("retry_after", ["\u00b2", "1" * 5000, "-5", "1e3"])
def test_a_retry_after_that_is_no_number_of_seconds_is_ignored(
    webhook: Webhook, monkeypatch: pytest.MonkeyPatch, retry_after: str
) -> None:
    def unavailable(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: "
            + retry_after.encode("latin-1")  # (how http.client reads a header)
            + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )

    result, message_id, logs = invoke_against(webhook, monkeypatch, unavailable, "u11")

    assert result == {"batchItemFailures": [{"itemIdentifier": message_id}]}
    # the failure is the receiver's 503, logged with its backoff, not a crash of the handler
    assert "will retry" in logs and "the receiver answered 503" in logs
    assert "could not set the retry backoff" not in logs
    assert "Traceback" not in logs


def test_a_receiver_asking_for_a_day_is_retried_at_the_longest_backoff_sqs_takes(
    webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    # not at the queue's visibility timeout, which is what SQS refusing a longer one would mean
    def come_back_tomorrow(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 86400\r\nContent-Length: 0\r\n\r\n")

    _, _, logs = invoke_against(webhook, monkeypatch, come_back_tomorrow, "u12")

    assert "will retry" in logs and '"retry_in":42300' in logs.replace(" ", "")
    assert "could not set the retry backoff" not in logs
    reply = webhook.sqs.receive_message(QueueUrl=webhook.queue_url, WaitTimeSeconds=0)
    assert reply.get("Messages", []) == []  # waiting out its backoff


def test_a_receiver_that_answers_a_byte_at_a_time_is_cut_off_at_the_delivery_timeout(
    webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Padding: " + b"x" * 60 + b"\r\n\r\nok"
    sent: list[int] = []

    def dripping(conn: socket.socket) -> None:
        for byte in answer:  # one byte every 0.25 s: each read is quick, the whole answer is not
            conn.sendall(bytes([byte]))
            sent.append(byte)
            time.sleep(0.25)

    # the fixture's WEBHOOK_TIMEOUT_SECONDS is 2
    result, message_id, logs = invoke_against(webhook, monkeypatch, dripping, "u13")

    assert result == {"batchItemFailures": [{"itemIdentifier": message_id}]}
    assert "the delivery took longer than 2 s" in logs
    assert len(sent) < len(answer)  # the receiver was cut off before it had answered


def test_a_receiver_that_answers_at_once_but_drips_its_body_is_cut_off_at_the_delivery_timeout(
    webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = b"x" * 40
    sent: list[int] = []

    def dripping_body(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        for byte in body:  # the status is in at once; the body comes a byte every 0.25 s
            conn.sendall(bytes([byte]))
            sent.append(byte)
            time.sleep(0.25)

    # the fixture's WEBHOOK_TIMEOUT_SECONDS is 2: the 200 was given, the body is the receiver's own
    result, _, _ = invoke_against(webhook, monkeypatch, dripping_body, "u14")

    assert result == {"batchItemFailures": []}
    assert len(sent) < len(body)  # the delivery ended before the receiver had sent its body


@pytest.mark.parametrize("status", [b"200 OK", b"503 Service Unavailable"])
def test_no_watchdog_outlives_its_delivery(webhook: Webhook, monkeypatch: pytest.MonkeyPatch, status: bytes) -> None:
    # deliveries in one warm container to a receiver that keeps its connections alive: none
    # leaves its watchdog running until its deadline (30 s here), each stops with its delivery
    monkeypatch.setenv("WEBHOOK_TIMEOUT_SECONDS", "30")
    before = {t.ident for t in threading.enumerate()}

    def keep_alive(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\nok")

    for n in range(3):
        invoke_against(webhook, monkeypatch, keep_alive, f"w{n}")

    watchdogs = [t for t in threading.enumerate() if isinstance(t, threading.Timer) and t.ident not in before]
    until = time.monotonic() + 10
    for watchdog in watchdogs:  # a stopped one's thread ends at once
        watchdog.join(max(0.0, until - time.monotonic()))
    assert [w for w in watchdogs if w.is_alive()] == []
