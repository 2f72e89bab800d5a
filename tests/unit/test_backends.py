"""Trusted backends: the allow-list of issuer roles, the owners they may name, and the SigV4 check the
local gateway makes for the IAM routes as API Gateway does."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from directupload.backends import RoleArn, TrustedIssuers, check_owner, parse_allow_list, session_role
from directupload.config import Settings
from directupload.errors import ConfigError, Forbidden, Unprocessable
from local.sigv4 import KnownKey, SignatureRefused, verify

BASE = {
    "UPLOADS_TABLE": "t",
    "UPLOADS_BUCKET": "b",
    "EVENT_BUS_NAME": "e",
    "AUTH_MODE": "jwt",
}
JOBS = "arn:aws:iam::111122223333:role/jobs/thumbnailer"
SESSION = "arn:aws:sts::111122223333:assumed-role/thumbnailer/nightly-run"


# --- the allow-list --------------------------------------------------------------------------------


def test_a_role_arn_keeps_its_path_and_prints_as_given() -> None:
    role = RoleArn.parse(JOBS)
    assert (role.partition, role.account, role.path, role.name) == ("aws", "111122223333", "/jobs/", "thumbnailer")
    assert str(role) == JOBS
    assert str(RoleArn.parse("arn:aws-us-gov:iam::111122223333:role/plain")) == (
        "arn:aws-us-gov:iam::111122223333:role/plain"
    )


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::111122223333:user/alice",
        "arn:aws:sts::111122223333:assumed-role/thumbnailer/s",
        "arn:aws:iam::1111:role/short-account",
        "arn:aws:iam::111122223333:role/",
        "arn:aws:iam::111122223333:role/with space",
        "thumbnailer",
    ],
)
def test_anything_but_a_role_arn_is_refused_in_the_allow_list(arn: str) -> None:
    with pytest.raises(ValueError, match="not an IAM role ARN"):
        RoleArn.parse(arn)


def test_a_session_matches_its_role_across_the_path_in_the_same_account_only() -> None:
    issuers = TrustedIssuers.of(parse_allow_list(f"arn:aws:iam::999999999999:role/other,{JOBS}"))

    assert str(issuers.issuer(SESSION)) == JOBS  # the allow-list's spelling, path included
    for foreign in [
        "arn:aws:sts::444455556666:assumed-role/thumbnailer/nightly-run",  # same name, other account
        "arn:aws-cn:sts::111122223333:assumed-role/thumbnailer/nightly-run",  # other partition
        "arn:aws:sts::111122223333:assumed-role/thumbnailer-2/nightly-run",  # a longer name
        "arn:aws:sts::111122223333:assumed-role/Thumbnailer/nightly-run",  # role names are case-sensitive here
    ]:
        with pytest.raises(Forbidden, match="not a trusted backend"):
            issuers.issuer(foreign)


@pytest.mark.parametrize(
    "caller",
    [None, "", "arn:aws:iam::111122223333:user/alice", "arn:aws:iam::111122223333:root", "anonymous"],
)
def test_only_role_sessions_are_backends(caller: str | None) -> None:
    with pytest.raises(Forbidden):
        TrustedIssuers.of(parse_allow_list(JOBS)).issuer(caller)


def test_an_empty_allow_list_refuses_every_caller_and_says_why() -> None:
    assert session_role(SESSION) is not None
    with pytest.raises(Forbidden, match="TrustedIssuerRoleArns is empty"):
        TrustedIssuers.of(parse_allow_list("")).issuer(SESSION)


def test_a_bad_allow_list_fails_at_cold_start_naming_the_variable_and_entry() -> None:
    with pytest.raises(ConfigError, match=r"TRUSTED_ISSUER_ROLE_ARNS.*arn:aws:iam::111122223333:user/alice"):
        Settings.from_env({**BASE, "TRUSTED_ISSUER_ROLE_ARNS": f"{JOBS},arn:aws:iam::111122223333:user/alice"})
    settings = Settings.from_env({**BASE, "TRUSTED_ISSUER_ROLE_ARNS": JOBS})
    assert [str(role) for role in settings.trusted_issuers.allowed] == [JOBS]


# --- the owner a backend names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "owner",
    ["alice", "0b5f3c2e-8d6a-4c1e-9f7b-2a3d4e5f6a7b", "auth0|5f7c8ec7c33c6c004bbafe82", "a.b+c@example.com", "x" * 128],
)
def test_owners_as_identity_providers_spell_subjects_are_accepted(owner: str) -> None:
    assert check_owner(owner) == owner


@pytest.mark.parametrize(
    "owner",
    [
        None,
        "",
        "x" * 129,
        "owner#alice",  # the quota item's key separator
        "a/b",
        "two words",
        "tab\there",
        "new\nline",
        '"quoted"',
        "-leading-dash",
        "ünïcode",
        "nul\x00",
    ],
)
def test_owners_a_key_or_index_cannot_hold_as_is_are_refused_with_422(owner: str | None) -> None:
    with pytest.raises(Unprocessable) as raised:
        check_owner(owner)
    assert raised.value.status == 422


# --- SigV4, as the gateway checks it ---------------------------------------------------------------

REGION = "us-east-1"
KEY = KnownKey("secret-of-the-session", "token-of-the-session", SESSION, "AROAEXAMPLE:nightly-run", "111122223333")
URL = "http://127.0.0.1:3000/backend/uploads"


def signed(method: str = "POST", url: str = URL, body: bytes = b'{"owner":"alice"}', **kwargs: str) -> dict[str, str]:
    credentials = Credentials(
        "ASIAEXAMPLE", kwargs.get("secret", KEY.secret_key), kwargs.get("token", KEY.session_token)
    )
    request = AWSRequest(method=method, url=url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(credentials, kwargs.get("service", "execute-api"), kwargs.get("region", REGION)).add_auth(request)
    headers = dict(request.headers.items())
    headers["Host"] = "127.0.0.1:3000"
    headers["User-Agent"] = "python-requests"  # what the wire adds, unsigned
    return headers


def check(method: str, url: str, headers: dict[str, str], body: bytes, now: datetime | None = None) -> None:
    verify(method, url, headers, body, region=REGION, known_key={"ASIAEXAMPLE": KEY}.get, now=now)


def test_a_request_signed_by_a_known_session_is_verified() -> None:
    body = b'{"owner":"alice"}'
    auth, key = verify("POST", URL, signed(body=body), body, region=REGION, known_key={"ASIAEXAMPLE": KEY}.get)
    assert key.session_arn == SESSION and auth.access_key == "ASIAEXAMPLE"
    query = URL + "/" + "a" * 32 + "?owner=alice"
    check("GET", query, signed("GET", query, b""), b"")


@pytest.mark.parametrize(
    ("what", "tamper"),
    [
        ("body", lambda h: ("POST", URL, h, b'{"owner":"mallory"}')),
        ("path", lambda h: ("POST", URL.replace("uploads", "uploads2"), h, b'{"owner":"alice"}')),
        ("query", lambda h: ("POST", URL + "?owner=mallory", h, b'{"owner":"alice"}')),
        ("method", lambda h: ("DELETE", URL, h, b'{"owner":"alice"}')),
        ("signed header", lambda h: ("POST", URL, {**h, "Content-Type": "text/plain"}, b'{"owner":"alice"}')),
        ("host", lambda h: ("POST", URL, {**h, "Host": "evil.example"}, b'{"owner":"alice"}')),
    ],
)
def test_a_tampered_request_fails_its_signature(what: str, tamper: object) -> None:
    method, url, headers, body = tamper(signed())  # type: ignore[operator]
    with pytest.raises(SignatureRefused, match="signature we calculated does not match"):
        check(method, url, headers, body)


def test_a_request_signed_with_another_secret_fails() -> None:
    with pytest.raises(SignatureRefused, match="does not match"):
        check("POST", URL, signed(secret="guessed"), b'{"owner":"alice"}')


@pytest.mark.parametrize(
    ("headers", "reason"),
    [  # signed when the test runs (collection may be minutes earlier: a signature ages)
        (lambda: {}, "Missing Authentication Token"),
        (lambda: {"Authorization": "Bearer eyJ..."}, "SigV4"),
        (lambda: signed(token="someone-elses-token"), "security token"),
        (lambda: signed(service="s3"), "execute-api"),
        (lambda: signed(region="eu-west-1"), "region"),
    ],
)
def test_unsigned_or_misscoped_requests_are_refused(headers: Callable[[], dict[str, str]], reason: str) -> None:
    with pytest.raises(SignatureRefused, match=reason):
        check("POST", URL, headers(), b'{"owner":"alice"}')


def test_an_unknown_access_key_is_an_invalid_token() -> None:
    body = b"{}"
    with pytest.raises(SignatureRefused, match="security token"):
        verify("POST", URL, signed(body=body), body, region=REGION, known_key=lambda _: None)


def test_a_replay_after_five_minutes_is_expired() -> None:
    body = b'{"owner":"alice"}'
    headers = signed(body=body)
    stamp = datetime.strptime(headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    check("POST", URL, headers, body, now=stamp + timedelta(minutes=4))
    with pytest.raises(SignatureRefused, match="expired"):
        check("POST", URL, headers, body, now=stamp + timedelta(minutes=6))


def test_a_body_hash_header_must_name_the_body_sent() -> None:
    body = json.dumps({"owner": "alice"}).encode()
    headers = {**signed(body=body), "X-Amz-Content-SHA256": "0" * 64}
    with pytest.raises(SignatureRefused, match="X-Amz-Content-SHA256"):
        check("POST", URL, headers, body)
