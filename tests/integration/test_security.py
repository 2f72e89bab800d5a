"""Authentication, owner isolation, quotas, and every bad input answered with a 4xx problem."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.conftest import Api, fail_calls
from tests.support.auth import use_jwt

UPLOAD = {"profile": "avatar", "filename": "a.png", "contentType": "image/png", "size": 100}


@pytest.fixture
def jwt_env(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    use_jwt(monkeypatch)
    return aws


def assert_problem(status: int, body: dict[str, Any], headers: dict[str, str], expected: int) -> None:
    assert status == expected, body
    assert headers.get("Content-Type") == "application/problem+json"
    assert set(body) >= {"type", "title", "status", "detail"} and body["status"] == expected
    assert "Traceback" not in json.dumps(body)


# --- authentication and owner isolation ---------------------------------------------------------


def test_without_a_verified_subject_every_route_answers_401(jwt_env: Any) -> None:
    api = Api(claims=None)
    for method, path in [
        ("POST", "/uploads"),
        ("GET", "/uploads/" + "a" * 32),
        ("DELETE", "/uploads/" + "a" * 32),
        ("GET", "/uploads/" + "a" * 32 + "/parts"),
    ]:
        status, body, headers = api.call(method, path, UPLOAD)
        assert_problem(status, body, headers, 401)


def test_someone_elses_upload_is_indistinguishable_from_a_missing_one(jwt_env: Any) -> None:
    alice, bob = Api(claims={"sub": "alice"}), Api(claims={"sub": "bob"})
    status, issued, _ = alice.call("POST", "/uploads", UPLOAD)
    assert status == 201
    upload_id = issued["uploadId"]

    assert alice.call("GET", f"/uploads/{upload_id}")[0] == 200
    for method, path, body in [
        ("GET", f"/uploads/{upload_id}", None),
        ("DELETE", f"/uploads/{upload_id}", None),
        ("GET", f"/uploads/{upload_id}/parts", None),
        ("POST", f"/uploads/{upload_id}/parts", {"partNumbers": [1]}),
        ("POST", f"/uploads/{upload_id}/complete", {"parts": [{"partNumber": 1, "etag": "x"}]}),
    ]:
        theirs = bob.call(method, path, body)
        missing = bob.call(method, path.replace(upload_id, "f" * 32), body)
        assert_problem(*theirs, 404)
        assert theirs[1]["title"] == missing[1]["title"] and theirs[0] == missing[0]
    # and bob's attempts changed nothing
    assert alice.call("GET", f"/uploads/{upload_id}")[1]["status"] == "PENDING"


def test_the_owner_is_recorded_from_the_token_not_the_body(jwt_env: Any) -> None:
    from directupload import wiring

    status, issued, _ = Api(claims={"sub": "alice"}).call("POST", "/uploads", {**UPLOAD, "metadata": {"owner": "bob"}})
    assert status == 201
    stored = wiring.store().get(issued["uploadId"])
    assert stored is not None and stored.owner == "alice"
    assert Api(claims={"sub": "bob"}).call("GET", f"/uploads/{issued['uploadId']}")[0] == 404


# --- quotas --------------------------------------------------------------------------------------


def test_pending_uploads_are_capped_per_owner_with_retry_after(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUOTA_MAX_PENDING", "2")
    use_jwt(monkeypatch)
    alice, bob = Api(claims={"sub": "alice"}), Api(claims={"sub": "bob"})
    first = alice.call("POST", "/uploads", UPLOAD)[1]
    assert alice.call("POST", "/uploads", UPLOAD)[0] == 201
    status, body, headers = alice.call("POST", "/uploads", UPLOAD)
    assert_problem(status, body, headers, 429)
    assert 1 <= int(headers["Retry-After"]) <= 300 + 600 + 1  # the avatar URL lifetime plus the grace
    assert bob.call("POST", "/uploads", UPLOAD)[0] == 201  # per owner

    assert alice.call("DELETE", f"/uploads/{first['uploadId']}")[0] == 200  # cancelling frees a slot
    assert alice.call("POST", "/uploads", UPLOAD)[0] == 201


def test_bytes_issued_per_day_are_capped(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from directupload import wiring

    monkeypatch.setenv("QUOTA_DAILY_BYTES", "1000")
    wiring.reset()
    api = Api()
    assert api.call("POST", "/uploads", {**UPLOAD, "size": 600})[0] == 201
    status, body, headers = api.call("POST", "/uploads", {**UPLOAD, "size": 600})
    assert_problem(status, body, headers, 429)
    assert 0 < int(headers["Retry-After"]) <= 86_401
    assert api.call("POST", "/uploads", {**UPLOAD, "size": 400})[0] == 201  # exactly up to the limit


def test_quota_reservations_are_atomic_under_concurrency(aws: Any) -> None:
    from directupload.aws import client
    from directupload.errors import QuotaExceeded
    from directupload.quotas import OwnerQuota

    quota = OwnerQuota(aws.env["UPLOADS_TABLE"], client("dynamodb"), max_pending=3, daily_bytes=10**9)
    now = datetime.now(UTC)
    granted, refused = [], []
    barrier = threading.Barrier(12)

    def reserve(i: int) -> None:
        barrier.wait()
        for _ in range(20):  # a 429 "try again" (the item changed under it too often) is retried, as clients do
            try:
                quota.reserve("carol", f"{i:032x}", 10, now, now + timedelta(minutes=5))
                granted.append(i)
                return
            except QuotaExceeded as exc:
                if "try again" not in exc.detail:
                    refused.append(i)
                    return
        raise AssertionError("still contended after 20 tries")

    threads = [threading.Thread(target=reserve, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 3 and len(refused) == 9


def test_lapsed_reservations_free_their_slot_by_themselves(aws: Any) -> None:
    from directupload.aws import client
    from directupload.errors import QuotaExceeded
    from directupload.quotas import OwnerQuota

    quota = OwnerQuota(aws.env["UPLOADS_TABLE"], client("dynamodb"), max_pending=1, daily_bytes=10**9)
    now = datetime.now(UTC)
    quota.reserve("dave", "1" * 32, 1, now, now + timedelta(minutes=5))
    with pytest.raises(QuotaExceeded):
        quota.reserve("dave", "2" * 32, 1, now, now + timedelta(minutes=5))
    later = now + timedelta(minutes=6)  # the first upload was abandoned
    quota.reserve("dave", "3" * 32, 1, later, later + timedelta(minutes=5))


# --- every bad input answered --------------------------------------------------------------------

BAD_ISSUES: dict[str, tuple[Any, int]] = {
    "malformed JSON": (b'{"profile": "avatar",', 400),
    "invalid UTF-8": (b'{"profile": "\xff\xfe"}', 400),
    "array body": ([1, 2], 422),
    "string body": ("avatar", 422),
    "null body": (None, 422),
    "empty object": ({}, 422),
    "missing size": ({k: v for k, v in UPLOAD.items() if k != "size"}, 422),
    "size as string": ({**UPLOAD, "size": "100"}, 422),
    "size zero": ({**UPLOAD, "size": 0}, 422),
    "size negative": ({**UPLOAD, "size": -5}, 422),
    "size 10^20": ({**UPLOAD, "size": 10**20}, 422),
    "size float": ({**UPLOAD, "size": 1.5}, 422),
    "size over the profile": ({**UPLOAD, "size": 5 * 1024 * 1024 + 1}, 413),
    "type not allowed": ({**UPLOAD, "contentType": "text/html"}, 415),
    "type malformed": ({**UPLOAD, "contentType": "image png; drop"}, 422),
    "unknown profile": ({**UPLOAD, "profile": "nope"}, 422),
    "profile not a string": ({**UPLOAD, "profile": ["avatar"]}, 422),
    "empty filename": ({**UPLOAD, "filename": ""}, 422),
    "filename too long": ({**UPLOAD, "filename": "a" * 300 + ".png"}, 422),
    "unknown field": ({**UPLOAD, "bucket": "elsewhere"}, 422),
    "too much metadata": ({**UPLOAD, "metadata": {f"k{i}": "v" for i in range(11)}}, 422),
    "metadata bad key": ({**UPLOAD, "metadata": {"Bad Key!": "v"}}, 422),
    "metadata value too long": ({**UPLOAD, "metadata": {"k": "v" * 300}}, 422),
    "metadata control chars": ({**UPLOAD, "metadata": {"k": "a\u0000b"}}, 422),
    "metadata lone surrogate": (
        b'{"profile":"avatar","filename":"a.png","contentType":"image/png","size":5,"metadata":{"k":"\\ud800"}}',
        422,
    ),
    "filename lone surrogate": (
        b'{"profile":"avatar","filename":"\\ud800.png","contentType":"image/png","size":5}',
        422,
    ),
    "checksum not hex": ({**UPLOAD, "checksumSha256": "zz"}, 422),
    "oversized body": ({**UPLOAD, "metadata": {"k": "v" * 200}, "pad": "x" * 70_000}, 413),
    # 20,000 characters but 80 KB: the limit is in bytes
    "oversized in bytes, not characters": ({**UPLOAD, "pad": "\U0001f600" * 20_000}, 413),
    "JSON nested 5,000 deep": (b'{"profile":' + b"[" * 5000 + b"]" * 5000 + b"}", 400),
    "a 5,000-digit size": (
        b'{"profile":"avatar","filename":"a.png","contentType":"image/png","size":' + b"9" * 5000 + b"}",
        400,
    ),
    "metadata not ASCII": ({**UPLOAD, "metadata": {"k": "caf\u00e9"}}, 422),
    "metadata names the server's upload-id": ({**UPLOAD, "metadata": {"upload-id": "0" * 32}}, 422),
    "multipart metadata not ASCII": (
        {
            "profile": "video",
            "filename": "a.mp4",
            "contentType": "video/mp4",
            "size": 20 * 1024 * 1024,
            "metadata": {"k": "\u00e9"},
        },
        422,
    ),
}


@pytest.mark.parametrize("case", list(BAD_ISSUES))
def test_every_bad_issue_request_gets_a_problem(aws: Any, api: Api, case: str) -> None:
    body, expected = BAD_ISSUES[case]
    if isinstance(body, bytes):
        status, payload, headers = api.call("POST", "/uploads", raw=body)
    else:
        status, payload, headers = api.call("POST", "/uploads", body)
    assert_problem(status, payload, headers, expected)


def test_every_member_of_a_problem_is_one_the_openapi_document_names(aws: Any, api: Api) -> None:
    from handlers.api import openapi_document

    documented = set(json.loads(openapi_document())["components"]["schemas"]["Problem"]["properties"])
    seen: set[str] = set()
    for body, _ in BAD_ISSUES.values():
        sent = api.call("POST", "/uploads", raw=body) if isinstance(body, bytes) else api.call("POST", "/uploads", body)
        seen |= set(sent[1])
    seen |= set(api.call("POST", "/uploads", {**UPLOAD, "profile": "nope"})[1])  # known
    seen |= set(api.call("POST", "/uploads", {**UPLOAD, "contentType": "text/html"})[1])  # allowed
    assert {"maxSize", "known", "allowed", "errors"} <= seen <= documented, seen - documented


NOT_JSON_TYPES = [
    "text/plain;charset=UTF-8",  # what fetch() sends with a string body and no header
    "application/xml",
    "text/json",
    "*/*",
    "multipart/form-data",  # (without a boundary)
    "multipart/form-data; boundary=x",
    "application/x-www-form-urlencoded",
]
BODY_ROUTES = [
    "/uploads",
    "/uploads/" + "a" * 32 + "/parts",
    "/uploads/" + "a" * 32 + "/complete",
    "/s3/multipart",
    "/s3/multipart/" + "a" * 32 + "/complete",
]


@pytest.mark.parametrize("content_type", NOT_JSON_TYPES)
def test_a_body_that_is_not_sent_as_json_is_a_415_problem_on_every_route(aws: Any, api: Api, content_type: str) -> None:
    for path in BODY_ROUTES:
        for body in (json.dumps(UPLOAD).encode(), b""):
            status, payload, headers = api.call("POST", path, raw=body, headers={"content-type": content_type})
            assert_problem(status, payload, headers, 415)
            assert payload["type"].endswith(":not-json"), (path, payload)


def test_the_largest_part_lists_the_schema_admits_fit_in_the_body_limit(aws: Any, api: Api) -> None:
    checksum = "A" * 43 + "="
    upload_id = "a" * 32  # none: a body past the limit reaches the route, which answers 404
    signing = {"parts": [{"partNumber": 9000 + n, "checksumSha256": checksum} for n in range(1, 1001)]}
    etag = '"' + "0" * 32 + '"'
    completing = {"parts": [{"partNumber": n, "etag": etag, "checksumSha256": checksum} for n in range(1, 10_001)]}
    for path, body in [("parts", signing), ("complete", completing)]:
        status, payload, headers = api.call("POST", f"/uploads/{upload_id}/{path}", body)
        assert_problem(status, payload, headers, 404)
    over = {"parts": completing["parts"] * 2, "pad": "x" * 1024}
    assert_problem(*api.call("POST", f"/uploads/{upload_id}/complete", over), 413)
    assert_problem(*api.call("POST", "/uploads", {**UPLOAD, "pad": "x" * 70_000}), 413)  # (the others: 64 KiB)


@pytest.mark.parametrize(
    "content_type", ["Application/Json", "APPLICATION/JSON; charset=utf-8", "application/merge-patch+json"]
)
def test_json_is_json_whatever_the_case_of_its_media_type(aws: Any, api: Api, content_type: str) -> None:
    status, issued, _ = api.call("POST", "/uploads", UPLOAD, headers={"content-type": content_type})
    assert status == 201, issued
    assert issued["key"].startswith(f"incoming/{issued['uploadId']}/")


@pytest.mark.parametrize(
    ("sub", "usable"),
    [
        ("a" * 255, True),
        ("auth0|5f1c#team/x", True),  # printable ASCII: the keys hold it as it is
        ("a" * 256, False),  # over OpenID Connect's 255 (and, at 2 KiB, DynamoDB refuses the key)
        ("a" * 2100, False),
        ("alice smith", False),
        ("alice\nINFO forged log line", False),
        ("caf\u00e9", False),
        ("\U0001f600", False),
    ],
)
def test_a_token_subject_no_owner_key_can_hold_is_a_403_problem(jwt_env: Any, sub: str, usable: bool) -> None:
    api = Api(claims={"sub": sub})
    status, payload, headers = api.call("POST", "/uploads", UPLOAD)
    if usable:
        assert status == 201, payload
        status, listed, _ = api.call("GET", "/uploads")
        assert status == 200 and [item["uploadId"] for item in listed["items"]] == [payload["uploadId"]]
        return
    assert_problem(status, payload, headers, 403)
    assert payload["type"].endswith(":unusable-subject")
    for method, path in [("GET", "/uploads"), ("GET", "/uploads/" + "a" * 32), ("GET", "/s3/params?filename=a.png")]:
        assert_problem(*api.call(method, path), 403)


@pytest.mark.parametrize(
    ("filename", "key_suffix"),
    [
        ("../../../etc/passwd", "/passwd"),
        ("..\\..\\boot.ini", "/boot.ini"),
        ("a\x00b\x1b[31m.png", "/ab_31m.png"),
        ("\u202egnp.exe", "/gnp.exe"),
        ("   ", "/file"),
    ],
)
def test_hostile_filenames_are_sanitised_into_the_server_key(
    aws: Any, api: Api, filename: str, key_suffix: str
) -> None:
    status, issued, _ = api.call("POST", "/uploads", {**UPLOAD, "filename": filename})
    assert status == 201, issued
    assert issued["key"] == f"incoming/{issued['uploadId']}{key_suffix}"
    assert issued["fields"]["key"] == issued["key"]


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        ("GET", "/nope", None, 404),
        ("PUT", "/uploads", UPLOAD, 404),
        ("PATCH", "/uploads/" + "a" * 32, {}, 404),
        ("GET", "/uploads/" + "a" * 32, None, 404),
        ("GET", "/uploads/not-an-id", None, 422),
        ("GET", "/uploads/../../etc/passwd", None, 404),
        ("GET", "/uploads/" + "a" * 32 + "/parts", None, 404),
        ("POST", "/uploads/" + "a" * 32 + "/parts", {"partNumbers": []}, 422),
        ("POST", "/uploads/" + "a" * 32 + "/parts", {"partNumbers": [0, -1]}, 422),
        ("POST", "/uploads/" + "a" * 32 + "/parts", {"partNumbers": "1"}, 422),
        ("POST", "/uploads/" + "a" * 32 + "/parts", {"partNumbers": [10**20]}, 422),
        ("POST", "/uploads/" + "a" * 32 + "/complete", {"parts": "x"}, 422),
        ("POST", "/uploads/" + "a" * 32 + "/complete", {"parts": [{"partNumber": 1}]}, 422),
        ("POST", "/uploads/" + "a" * 32 + "/complete", b"{{", 400),
        ("DELETE", "/uploads/" + "a" * 32, None, 404),
    ],
)
def test_every_route_answers_bad_input_with_a_problem(
    aws: Any, api: Api, method: str, path: str, body: Any, expected: int
) -> None:
    reply = api.call(method, path, raw=body) if isinstance(body, bytes) else api.call(method, path, body)
    assert_problem(*reply, expected)


def test_a_pending_single_post_upload_cannot_be_treated_as_multipart(aws: Any, api: Api) -> None:
    _, issued, _ = api.call("POST", "/uploads", UPLOAD)
    reply = api.call("POST", f"/uploads/{issued['uploadId']}/parts", {"partNumbers": [1]})
    assert_problem(*reply, 409)


def test_a_malformed_quota_request_is_a_server_fault_not_a_429(aws: Any) -> None:
    """A ValidationException on an owner's item that has its slot map is a bug in the request
    (say, a broken expression): it must not read as "the quota changed too often" (429)."""
    api = Api()
    body = {"profile": "file", "filename": "a.txt", "contentType": "text/plain", "size": 5}
    assert api.call("POST", "/uploads", body)[0] == 201  # the owner's item, its slot map made
    left = fail_calls("dynamodb", "TransactWriteItems", 1, code="ValidationException", when=lambda p: ":room" in str(p))
    status, problem, _ = api.call("POST", "/uploads", body)
    assert left == [0]  # the one injected fault was the one that answered
    assert status == 500, problem
    assert problem["type"].endswith(":internal")
