"""Webhook signing (Standard Webhooks): the headers, the id receivers dedupe on, the secret, the
backoff, and the sample receiver's verdicts. Pure logic: the network is off."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from directupload.errors import ConfigError
from directupload.webhooks import (
    BACKOFF_CAP,
    MIN_SECRET_BYTES,
    DeliveryRefusedError,
    WebhookSettings,
    retry_delay,
    signed_headers,
    webhook_from_secret,
    webhook_id,
)
from tests.webhooks import bus_event as event
from tests.webhooks import receiver_module

# The specification's published test vector (standard-webhooks spec, "Signature scheme").
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = '{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()


def test_signing_reproduces_the_specifications_test_vector() -> None:
    headers = signed_headers(
        webhook_from_secret(SPEC_SECRET), SPEC_ID, SPEC_BODY, datetime.fromtimestamp(SPEC_TIMESTAMP, UTC)
    )

    assert headers == {
        "webhook-id": SPEC_ID,
        "webhook-timestamp": str(SPEC_TIMESTAMP),
        "webhook-signature": SPEC_SIGNATURE,
    }


def test_a_signed_delivery_verifies_with_the_library_and_nothing_else_does() -> None:
    # Given a delivery signed now
    body = json.dumps(event(), separators=(",", ":"))
    headers = signed_headers(webhook_from_secret(SECRET), "abc-processed", body, datetime.now(UTC))

    # Then the reference verifier accepts it with the same secret, bare or prefixed
    assert Webhook(SECRET).verify(body, headers) == json.loads(body)
    assert Webhook(SECRET.removeprefix("whsec_")).verify(body, headers) == json.loads(body)
    # and refuses another body, another id, another secret
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body.replace("avatar", "admin"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body, {**headers, "webhook-id": "abc-rejected"})
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(b"x" * 32).decode()).verify(body, headers)


def test_the_timestamp_is_the_attempts_own_in_utc_whatever_the_clocks_zone() -> None:
    at = datetime(2026, 11, 22, 11, 15, 3, tzinfo=UTC)
    in_paris = at.astimezone(ZoneInfo("Europe/Paris"))
    webhook = webhook_from_secret(SECRET)

    assert signed_headers(webhook, "x", "{}", in_paris) == signed_headers(webhook, "x", "{}", at)
    assert signed_headers(webhook, "x", "{}", at)["webhook-timestamp"] == str(int(at.timestamp()))


def test_the_webhook_id_is_one_per_upload_and_kind_of_event_whatever_the_eventbridge_id() -> None:
    first, republished = event(), {**event(), "id": "another-eventbridge-id"}

    assert webhook_id(first) == webhook_id(republished) == "3f1c2a9e8b7d4c6a9e0f1a2b3c4d5e6f-processed"
    kinds = ("Upload Processed", "Upload Rejected", "Upload Failed", "Upload Deleted")
    ids = {webhook_id(event(kind)) for kind in kinds}
    assert len(ids) == 4
    assert webhook_id(event("Upload Deleted")).endswith("-deleted")


def test_an_event_without_an_upload_id_falls_back_to_its_eventbridge_id_and_a_non_event_is_refused() -> None:
    assert webhook_id({**event(), "detail": {}}) == "7b0f4c7e-1d3b-4e0e-9a0c-2b1a6c9f2d11"
    for not_an_event in ({}, {"detail": "x"}, {"detail-type": "Upload Processed", "detail": {"uploadId": 7}}):
        with pytest.raises(DeliveryRefusedError):
            webhook_id(not_an_event)


def test_the_backoff_grows_honours_retry_after_and_stops_at_twelve_hours() -> None:
    first, fourth = retry_delay(1), retry_delay(4)

    assert 24 <= first <= 36
    assert 192 <= fourth <= 288
    assert retry_delay(1, retry_after=600) == 600
    assert retry_delay(30) == BACKOFF_CAP
    assert retry_delay(1, retry_after=10**9) == BACKOFF_CAP


def test_the_secret_cloudformation_generates_is_a_valid_signing_key() -> None:
    """The template's GenerateSecretString makes letters and digits; as base64 they must decode to
    enough key (the local stack generates its secret from the same settings)."""
    from local.provision import _generated_secret
    from local.template import LocalTemplate, load

    spec = LocalTemplate(load(), parameters={"WebhookUrl": "https://example.com/h"}).properties("WebhookSigningSecret")[
        "GenerateSecretString"
    ]
    generated = _generated_secret(spec)

    webhook = webhook_from_secret(generated)
    headers = signed_headers(webhook, "id", "{}", datetime.now(UTC))
    assert Webhook("whsec_" + generated).verify("{}", headers) == {}


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("whsec_" + base64.b64encode(b"k" * (MIN_SECRET_BYTES - 1)).decode(), "fewer than"),
        ("whsec_not*base64*at*all", "not whsec_"),
        ("", "fewer than"),
    ],
)
def test_a_short_or_malformed_secret_is_a_config_error_that_does_not_repeat_it(secret: str, reason: str) -> None:
    with pytest.raises(ConfigError) as raised:
        webhook_from_secret(secret)

    assert reason in str(raised.value)
    assert "WEBHOOK_SECRET_ARN" in str(raised.value)
    if secret.removeprefix("whsec_"):
        assert secret.removeprefix("whsec_") not in str(raised.value)


def test_settings_name_each_missing_or_wrong_variable_but_never_the_url() -> None:
    with pytest.raises(ConfigError) as missing:
        WebhookSettings.from_env({})
    with pytest.raises(ConfigError) as wrong:
        WebhookSettings.from_env(
            {
                "WEBHOOK_URL": "ftp://hooks.example.com/?token=s3cr3t",
                "WEBHOOK_SECRET_ARN": "arn",
                "WEBHOOK_DEAD_LETTER_QUEUE_URL": "q",
            }
        )

    for name in ("WEBHOOK_URL", "WEBHOOK_SECRET_ARN", "WEBHOOK_DEAD_LETTER_QUEUE_URL"):
        assert name in str(missing.value)
    assert "WEBHOOK_URL" in str(wrong.value)
    assert "s3cr3t" not in str(wrong.value)
    ok = WebhookSettings.from_env(
        {"WEBHOOK_URL": "https://h.example.com/x", "WEBHOOK_SECRET_ARN": "a", "WEBHOOK_DEAD_LETTER_QUEUE_URL": "q"}
    )
    assert ok.timeout_seconds == 5


# --- the sample receiver's verdicts (client-demo/webhook_receiver.py) -------------------------------


def delivery(at: datetime, body: str | None = None, msg_id: str = "u1-processed") -> tuple[dict[str, str], bytes]:
    body = body if body is not None else json.dumps(event())
    return signed_headers(webhook_from_secret(SECRET), msg_id, body, at), body.encode()


def test_the_receiver_accepts_a_signed_delivery_once_and_a_repeat_as_a_duplicate() -> None:
    receiver = receiver_module().Receiver(SECRET)
    headers, body = delivery(datetime.now(UTC))

    assert receiver.receive(headers, body) == (200, {"accepted": True})
    assert receiver.receive(headers, body) == (200, {"accepted": True, "duplicate": True})
    assert list(receiver.seen) == ["u1-processed"]


def test_the_receiver_refuses_forged_replayed_future_and_malformed_deliveries_with_401() -> None:
    receiver = receiver_module().Receiver(SECRET)
    now = datetime.now(UTC)
    headers, body = delivery(now)
    cases = {
        "forged body": (headers, body.replace(b"avatar", b"admin")),
        "old timestamp": delivery(now - timedelta(minutes=6)),
        "future timestamp": delivery(now + timedelta(minutes=6)),
        "no signature": ({k: v for k, v in headers.items() if k != "webhook-signature"}, body),
        "signature without a version": ({**headers, "webhook-signature": "garbage"}, body),
        "signature not base64": ({**headers, "webhook-signature": "v1,***"}, body),
        "timestamp not a number": ({**headers, "webhook-timestamp": "yesterday"}, body),
        "body not UTF-8": (headers, b"\xff\xfe"),
    }

    for name, (case_headers, case_body) in cases.items():
        status, reply = receiver.receive(case_headers, case_body)
        assert status == 401, name
        assert "error" in reply, name
    assert not receiver.seen


def test_the_receiver_answers_400_to_a_verified_body_that_is_not_a_json_object() -> None:
    receiver = receiver_module().Receiver(SECRET)
    headers, body = delivery(datetime.now(UTC), body="[1, 2]")

    assert receiver.receive(headers, body)[0] == 400
