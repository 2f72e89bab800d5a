"""Signed webhook deliveries (the Standard Webhooks specification, standardwebhooks.com).

One bus event in, one signed POST out. WebhookFunction reads the events from the
WebhookQueue (template.yaml: rule on the bus -> queue -> function) and, for each, POSTs the
event exactly as EventBridge wrote it to the queue, with three headers:

- ``webhook-id``: ``{uploadId}-{processed|rejected|failed|deleted}``. The same on every
  retry of a delivery, and on an event the processor had to publish twice (which gets a new
  EventBridge id), so a receiver dedupes on it. An event without an upload id (never sent by
  this service) falls back to the EventBridge event id.
- ``webhook-timestamp``: this attempt's time, in seconds: a receiver refuses attempts older
  or newer than its tolerance (5 minutes in the reference libraries), so a recorded delivery
  cannot be replayed later; a retry is signed afresh.
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``, made by
  the ``standardwebhooks`` library with the secret ``whsec_<base64>`` from Secrets Manager.

Outcomes: a 2xx answer delivers. A 4xx other than 408 and 429 is a refusal: the same bytes
would be refused again (wrong secret on the receiver, wrong path), so the event is parked in
the dead-letter queue at once, where its alarm tells someone and a redrive resends it once
the receiver is fixed. Anything else (5xx, 408, 429, 3xx, a timeout, a refused connection)
fails the record and SQS retries it with a backoff.

The secret is read on the first delivery of a container and kept for an hour (a rotation
reaches every container within that hour); it is never logged, and neither are the URL
(it may carry a token of its own) nor the signature.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import http.client
import json
import random
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from standardwebhooks import Webhook
from standardwebhooks.webhooks import EmptyWebhookSecretError

from directupload.errors import ConfigError

ENV_NAMES = {
    "url": "WEBHOOK_URL",
    "secret_arn": "WEBHOOK_SECRET_ARN",
    "dead_letter_queue_url": "WEBHOOK_DEAD_LETTER_QUEUE_URL",
    "timeout_seconds": "WEBHOOK_TIMEOUT_SECONDS",
}
# The specification's advice: 24 to 64 bytes of key. Shorter is refused at the first delivery.
MIN_SECRET_BYTES = 24
SECRET_MAX_AGE_SECONDS = 3600
# Statuses that say "try again later" although they are 4xx.
RETRYABLE_CLIENT_STATUSES = frozenset({408, 429})
# Retry n comes BACKOFF_BASE * 2**(n-1) seconds (+-20 %) after attempt n failed, at most
# BACKOFF_CAP: SQS takes a visibility timeout of up to 12 hours counted from the message's
# receive, and the attempt that sets it runs up to a Lambda timeout after that receive (15
# minutes at most). With the queue's 12 receives, the last attempt is about 17 hours after the first.
BACKOFF_BASE = 30
BACKOFF_CAP = 43200 - 900
_RETRY_AFTER = re.compile(r"[0-9]{1,9}")  # ASCII digits only (str.isdigit also takes "²")
USER_AGENT = "directupload-webhook/1"


class WebhookSettings(BaseModel):
    """WebhookFunction's configuration (template.yaml sets it; so does the local stack)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(min_length=1, description="where signed events are POSTed")
    secret_arn: str = Field(min_length=1, description="the secret holding the signing key")
    dead_letter_queue_url: str = Field(min_length=1, description="where undeliverable events are kept")
    timeout_seconds: float = Field(default=5, gt=0, le=30, description="how long one delivery may take")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL")
        return value

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WebhookSettings:
        values = {field: env[name] for field, name in ENV_NAMES.items() if env.get(name, "") != ""}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            # the variable and the reason, never the value (the URL may carry a token)
            problems = [f"{ENV_NAMES.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}" for e in exc.errors()]
            raise ConfigError("invalid webhook configuration: " + "; ".join(problems)) from None


class DeliveryFailedError(RuntimeError):
    """The receiver did not take the event this time (5xx, 408, 429, timeout, network): retry it."""

    def __init__(self, reason: str, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.webhook_id: str | None = None  # set once the event is known, for the logs


class DeliveryRefusedError(RuntimeError):
    """The receiver refused the event (a 4xx that retrying cannot change), or the record is not an
    event at all: park it in the dead-letter queue instead of retrying."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.webhook_id: str | None = None


@dataclass(frozen=True)
class Delivery:
    webhook_id: str
    upload_id: str | None
    detail_type: str | None
    status: int


def webhook_id(event: Mapping[str, Any]) -> str:
    """The id a receiver dedupes on: one per upload and kind of event, whatever the retries."""
    detail = event.get("detail")
    upload_id = detail.get("uploadId") if isinstance(detail, Mapping) else None
    detail_type = event.get("detail-type")
    if isinstance(upload_id, str) and upload_id and isinstance(detail_type, str) and detail_type:
        kind = detail_type.removeprefix("Upload ").strip().lower().replace(" ", "-")
        return f"{upload_id}-{kind}"
    event_id = event.get("id")
    if isinstance(event_id, str) and event_id:
        return event_id
    raise DeliveryRefusedError("the record is not an EventBridge event (no detail.uploadId, no id)")


def signed_headers(webhook: Webhook, msg_id: str, body: str, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt. ``at`` must be timezone-aware: the library
    takes a naive or UTC time as UTC (it replaces the zone rather than converting)."""
    at = at.astimezone(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": webhook.sign(msg_id=msg_id, timestamp=at, data=body),
    }


def retry_delay(receive_count: int, retry_after: int | None = None) -> int:
    """Seconds before the next attempt: exponential with jitter, or the receiver's Retry-After
    when that asks for longer, never past SQS's 12 hours."""
    backoff = BACKOFF_BASE * 2 ** (max(receive_count, 1) - 1) * random.uniform(0.8, 1.2)
    return int(min(max(backoff, retry_after or 0), BACKOFF_CAP))


class SigningSecret:
    """The ``whsec_<base64>`` secret in Secrets Manager, read on first use and kept for an hour.

    Its value never leaves this object: not in a log, an exception or a repr."""

    def __init__(self, secret_arn: str, client: Callable[[], Any], *, max_age: float = SECRET_MAX_AGE_SECONDS) -> None:
        self.secret_arn = secret_arn
        self._client = client  # a factory: nothing is built before the first delivery
        self._max_age = max_age
        self._lock = threading.Lock()
        self._webhook: Webhook | None = None
        self._loaded_at = 0.0

    def __repr__(self) -> str:
        return f"SigningSecret({self.secret_arn!r})"

    def __call__(self) -> Webhook:
        with self._lock:
            if self._webhook is None or time.monotonic() - self._loaded_at > self._max_age:
                self._webhook = self._load()
                self._loaded_at = time.monotonic()
            return self._webhook

    def _load(self) -> Webhook:
        try:
            reply = self._client().get_secret_value(SecretId=self.secret_arn)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise DeliveryFailedError(f"could not read the signing secret ({code})") from None
        except BotoCoreError as exc:
            raise DeliveryFailedError(f"could not read the signing secret ({type(exc).__name__})") from None
        return webhook_from_secret(str(reply.get("SecretString") or ""))


def webhook_from_secret(secret: str) -> Webhook:
    """A signer for ``whsec_<base64>`` (or the bare base64), refusing a short or malformed key.
    The messages name the variable, never the value."""
    encoded = secret.strip().removeprefix("whsec_")
    try:
        # padded as the library pads it: some tools print base64 without its trailing "="
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("WEBHOOK_SECRET_ARN: the secret is not whsec_ followed by base64") from None
    if len(key) < MIN_SECRET_BYTES:
        raise ConfigError(f"WEBHOOK_SECRET_ARN: the secret holds fewer than {MIN_SECRET_BYTES} bytes of key")
    try:
        return Webhook(key)
    except EmptyWebhookSecretError:  # pragma: no cover - the length check comes first
        raise ConfigError("WEBHOOK_SECRET_ARN: the secret is empty") from None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a delivery: the signed POST goes to the configured URL only."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class _Deadline:
    """When one delivery must be over: each connection it opens is shut down then by a watchdog,
    wherever the delivery is (a socket timeout bounds each read only, so a receiver answering a
    byte at a time, in its headers or its body, could hold a delivery and its batch until the
    function timed out). ``cancel`` when the delivery is over."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self._watchdogs: list[threading.Timer] = []

    def passed(self) -> bool:
        return time.monotonic() >= self.at

    def watch(self, sock: socket.socket) -> None:
        watchdog = threading.Timer(max(0.0, self.at - time.monotonic()), _cut, (sock,))
        watchdog.daemon = True
        self._watchdogs.append(watchdog)
        watchdog.start()

    def cancel(self) -> None:
        for watchdog in self._watchdogs:
            watchdog.cancel()


def _cut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked read (close alone may not)


class _CutAtDeadline:
    """A connection its request's ``_Deadline`` watches from the moment it is connected (urllib
    lets go of the connection once the headers are in: the watchdog holds the socket itself)."""

    sock: socket.socket | None

    def __init__(self, *args: Any, deadline: _Deadline, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = deadline

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        if self.sock is not None:
            self.deadline.watch(self.sock)


class _HTTPConnection(_CutAtDeadline, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_CutAtDeadline, http.client.HTTPSConnection):
    pass


_CONNECTIONS: dict[type, type[_CutAtDeadline]] = {
    http.client.HTTPConnection: _HTTPConnection,
    http.client.HTTPSConnection: _HTTPSConnection,
}


class _OpenUntilDeadline:
    """urllib's handler opening its connection as one cut at the request's ``deadline``."""

    def do_open(self, http_class: Any, req: urllib.request.Request, **http_conn_args: Any) -> http.client.HTTPResponse:
        deadline = req.deadline  # type: ignore[attr-defined]
        return super().do_open(_CONNECTIONS[http_class], req, deadline=deadline, **http_conn_args)  # type: ignore[misc]


class _HTTPHandler(_OpenUntilDeadline, urllib.request.HTTPHandler):
    pass


class _HTTPSHandler(_OpenUntilDeadline, urllib.request.HTTPSHandler):
    pass


class WebhookSender:
    """Signs and POSTs one event per call; raises unless the receiver answered 2xx."""

    def __init__(
        self,
        url: str,
        secret: Callable[[], Webhook],
        *,
        timeout: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.url = url
        self._secret = secret
        self.timeout = timeout
        self._clock = clock
        # each delivery ends ``timeout`` seconds after it began, whatever the receiver does
        self._opener = urllib.request.build_opener(_NoRedirects(), _HTTPHandler(), _HTTPSHandler())

    def __repr__(self) -> str:
        return "WebhookSender(<url withheld>)"

    def deliver(self, body: str) -> Delivery:
        try:
            event = json.loads(body)
        except ValueError:
            raise DeliveryRefusedError("the record's body is not JSON") from None
        if not isinstance(event, dict):
            raise DeliveryRefusedError("the record's body is not a JSON object")
        msg_id = webhook_id(event)
        try:
            status = self._post(msg_id, body)
        except (DeliveryFailedError, DeliveryRefusedError) as exc:
            exc.webhook_id = msg_id
            raise
        detail = event.get("detail")
        upload_id = detail.get("uploadId") if isinstance(detail, dict) else None
        return Delivery(msg_id, upload_id, event.get("detail-type"), status)

    def _post(self, msg_id: str, body: str) -> int:
        try:
            webhook = self._secret()
        except ConfigError as exc:
            raise DeliveryFailedError(str(exc)) from None
        headers = signed_headers(webhook, msg_id, body, self._clock())
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in WebhookSettings
            self.url,
            data=body.encode(),
            method="POST",
            headers={"content-type": "application/json", "user-agent": USER_AGENT, **headers},
        )
        deadline = _Deadline(self.timeout)
        request.deadline = deadline  # type: ignore[attr-defined]  # (_HTTPHandler, _HTTPSHandler)
        try:
            return self._send(request, deadline)
        finally:
            deadline.cancel()

    def _send(self, request: urllib.request.Request, deadline: _Deadline) -> int:
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read(4096)  # the answer's body is the receiver's business; not logged
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            status = exc.code
            retry_after = _seconds(exc.headers.get("retry-after") if exc.headers else None)
            exc.close()
            if 400 <= status < 500 and status not in RETRYABLE_CLIENT_STATUSES:
                raise DeliveryRefusedError(f"the receiver refused the delivery with {status}") from None
            raise DeliveryFailedError(f"the receiver answered {status}", retry_after) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            # URLError.reason names the cause (refused, timed out), never the URL
            reason = getattr(exc, "reason", None) or type(exc).__name__
            if deadline.passed():
                reason = f"the delivery took longer than {self.timeout:g} s"
            raise DeliveryFailedError(f"no answer from the receiver: {reason}") from None
        if not 200 <= status < 300:
            raise DeliveryFailedError(f"the receiver answered {status}")
        return status


def _seconds(value: str | None) -> int | None:
    """Retry-After in seconds (the HTTP-date form is rare from webhook receivers and ignored, as
    is anything but up to nine ASCII digits: the backoff caps it long before that)."""
    if value and _RETRY_AFTER.fullmatch(value.strip()):
        return int(value.strip())
    return None


class DeadLetters:
    """Parks an event the receiver refused in the webhook's dead-letter queue (the same queue the
    WebhookQueue redrives to), with the reason as a message attribute."""

    def __init__(self, queue_url: str, client: Any) -> None:
        self.queue_url = queue_url
        self.client = client

    def park(self, body: str, reason: str) -> None:
        self.client.send_message(
            QueueUrl=self.queue_url,
            MessageBody=body,
            MessageAttributes={"reason": {"DataType": "String", "StringValue": reason[:256]}},
        )
