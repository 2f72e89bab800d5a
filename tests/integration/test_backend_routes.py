"""The trusted-backend routes through the real handler: events as API Gateway sends them after IAM
authorization (``requestContext.authorizer.iam``), the allow-list, the owner named, what is recorded."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Api, delivered_events, png, post_to_s3
from tests.integration.test_security import assert_problem
from tests.support.processing import process

ISSUER = "arn:aws:iam::123456789012:role/backends/report-job"
SESSION = "arn:aws:sts::123456789012:assumed-role/report-job/run-42"
FOREIGN = "arn:aws:sts::123456789012:assumed-role/some-other-role/run-1"
UPLOAD = {"profile": "avatar", "filename": "a.png", "contentType": "image/png", "size": 100}


def iam(user_arn: str) -> dict[str, Any]:
    """``authorizer.iam`` of payload 2.0 for a role session."""
    return {
        "accessKey": "ASIAEXAMPLE",
        "accountId": user_arn.split(":")[4],
        "callerId": "AROAEXAMPLE:session",
        "cognitoIdentity": None,
        "principalOrgId": None,
        "userArn": user_arn,
        "userId": "AROAEXAMPLE:session",
    }


class Backend(Api):
    def __init__(self, user_arn: str | None) -> None:
        super().__init__(claims=None)
        self.iam = iam(user_arn) if user_arn else None

    def call(
        self, method: str, path: str, body: Any = None, **kwargs: Any
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        return super().call(method, path, body, iam=self.iam, **kwargs)


@pytest.fixture
def trusted(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Auth on (users hold JWTs) and one trusted backend role."""
    from directupload import wiring

    monkeypatch.setenv("AUTH_MODE", "jwt")
    monkeypatch.setenv("TRUSTED_ISSUER_ROLE_ARNS", f"arn:aws:iam::123456789012:role/unrelated,{ISSUER}")
    wiring.reset()
    return aws


def test_a_backend_issues_for_an_owner_who_then_sees_it_with_their_token(trusted: Any) -> None:
    data = png(20, 20)
    backend, alice, bob = Backend(SESSION), Api(claims={"sub": "alice"}), Api(claims={"sub": "bob"})

    status, issued, _ = backend.call("POST", "/backend/uploads", {**UPLOAD, "size": len(data), "owner": "alice"})
    assert status == 201, issued
    assert issued["method"] == "POST" and issued["fields"]
    upload_id = issued["uploadId"]
    assert post_to_s3(issued, data).status_code == 204
    assert process(trusted, issued["key"], len(data)) == {"batchItemFailures": []}

    # the owner sees it as their own, and who issued it
    page = alice.call("GET", "/uploads")[1]
    assert [(u["uploadId"], u["status"], u["issuedBy"]) for u in page["items"]] == [(upload_id, "PROCESSED", ISSUER)]
    assert alice.call("GET", f"/uploads/{upload_id}/download")[0] == 200
    assert bob.call("GET", f"/uploads/{upload_id}")[0] == 404
    # the backend reads it for that owner only
    status, view, _ = backend.call("GET", f"/backend/uploads/{upload_id}?owner=alice")
    assert (status, view["status"], view["issuedBy"]) == (200, "PROCESSED", ISSUER)
    assert_problem(*backend.call("GET", f"/backend/uploads/{upload_id}?owner=bob"), 404)
    # consumers learn both
    [event] = delivered_events(trusted)
    assert (event["detail"]["owner"], event["detail"]["issuedBy"]) == ("alice", ISSUER)

    # and the backend deletes it for the owner
    status, deleted, _ = backend.call("DELETE", f"/backend/uploads/{upload_id}?owner=alice")
    assert status == 200 and deleted["status"] in ("DELETING", "DELETED")
    assert [e["detail"].get("issuedBy") for e in delivered_events(trusted)] == [ISSUER]
    assert alice.call("GET", "/uploads")[1]["items"] == []


def test_an_upload_of_the_owners_own_has_no_issuer(trusted: Any) -> None:
    status, issued, _ = Api(claims={"sub": "alice"}).call("POST", "/uploads", UPLOAD)
    assert status == 201
    status, view, _ = Backend(SESSION).call("GET", f"/backend/uploads/{issued['uploadId']}?owner=alice")
    assert status == 200 and "issuedBy" not in view


def test_a_pending_upload_is_cancelled_by_the_backend_and_frees_the_owners_quota(
    trusted: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from directupload import wiring

    monkeypatch.setenv("QUOTA_MAX_PENDING", "1")
    wiring.reset()
    backend = Backend(SESSION)
    first = backend.call("POST", "/backend/uploads", {**UPLOAD, "owner": "alice"})[1]
    # quotas are the named owner's: alice is full, whoever asks for her
    assert_problem(*backend.call("POST", "/backend/uploads", {**UPLOAD, "owner": "alice"}), 429)
    assert_problem(*Api(claims={"sub": "alice"}).call("POST", "/uploads", UPLOAD), 429)
    assert backend.call("POST", "/backend/uploads", {**UPLOAD, "owner": "bob"})[0] == 201

    status, cancelled, _ = backend.call("DELETE", f"/backend/uploads/{first['uploadId']}?owner=alice")
    assert (status, cancelled["status"]) == (200, "CANCELLED")
    assert backend.call("POST", "/backend/uploads", {**UPLOAD, "owner": "alice"})[0] == 201


@pytest.mark.parametrize(
    ("caller", "detail"),
    [
        (None, "IAM (SigV4) authorization"),
        (FOREIGN, "not a trusted backend"),
        ("arn:aws:iam::123456789012:user/alice", "IAM role's session"),
        ("arn:aws:sts::999999999999:assumed-role/report-job/run-42", "not a trusted backend"),
    ],
)
def test_every_backend_route_refuses_anyone_but_a_trusted_role_with_403_before_reading_the_request(
    trusted: Any, caller: str | None, detail: str
) -> None:
    backend = Backend(caller)
    for method, path, body in [
        ("POST", "/backend/uploads", {**UPLOAD, "owner": "alice"}),
        ("POST", "/backend/uploads", {"not": "even valid"}),  # 403, not 422: it never reads the body
        ("GET", f"/backend/uploads/{'a' * 32}?owner=alice", None),
        ("DELETE", f"/backend/uploads/{'a' * 32}?owner=alice", None),
        ("GET", "/backend/uploads", None),  # no such route, still behind the same door
    ]:
        status, problem, headers = backend.call(method, path, body)
        assert_problem(status, problem, headers, 403)
        assert detail in problem["detail"]


def test_a_users_token_does_not_open_the_backend_routes(trusted: Any) -> None:
    alice = Api(claims={"sub": "alice"})
    assert_problem(*alice.call("POST", "/backend/uploads", {**UPLOAD, "owner": "bob"}), 403)


def test_with_no_trusted_backend_configured_every_caller_gets_403(aws: Any) -> None:
    status, problem, headers = Backend(SESSION).call("POST", "/backend/uploads", {**UPLOAD, "owner": "alice"})
    assert_problem(status, problem, headers, 403)
    assert "TrustedIssuerRoleArns is empty" in problem["detail"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/backend/uploads", UPLOAD),  # no owner
        ("POST", "/backend/uploads", {**UPLOAD, "owner": ""}),
        ("POST", "/backend/uploads", {**UPLOAD, "owner": "owner#alice"}),
        ("POST", "/backend/uploads", {**UPLOAD, "owner": "a/b"}),
        ("POST", "/backend/uploads", {**UPLOAD, "owner": "x" * 129}),
        ("POST", "/backend/uploads", {**UPLOAD, "owner": 42}),
        ("POST", "/backend/uploads", {**UPLOAD, "owner": "alice", "partChecksums": True}),
        ("GET", f"/backend/uploads/{'a' * 32}", None),
        ("GET", f"/backend/uploads/{'a' * 32}?owner=", None),
        ("GET", f"/backend/uploads/{'a' * 32}?owner=two%20words", None),
        ("DELETE", f"/backend/uploads/{'a' * 32}", None),
        ("DELETE", f"/backend/uploads/{'a' * 32}?owner=%0Aalice", None),
    ],
)
def test_a_missing_or_unholdable_owner_is_refused_with_422(trusted: Any, method: str, path: str, body: Any) -> None:
    assert_problem(*Backend(SESSION).call(method, path, body), 422)


def test_a_backend_issued_upload_is_one_post_even_over_the_multipart_threshold(trusted: Any) -> None:
    from directupload.profiles import BUILTIN_PROFILES

    video = BUILTIN_PROFILES["video"]
    assert video.multipart_threshold is not None
    size = video.multipart_threshold + 1
    body = {"profile": "video", "filename": "v.mp4", "contentType": "video/mp4", "size": size, "owner": "alice"}
    status, issued, _ = Backend(SESSION).call("POST", "/backend/uploads", body)
    assert status == 201 and issued["method"] == "POST" and "multipart" not in issued
