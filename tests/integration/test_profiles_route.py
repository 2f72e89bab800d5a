"""GET /profiles: what each configured profile accepts, from the validated configuration."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.conftest import Api
from tests.support.template import default_template


def test_profiles_describe_the_built_in_set_with_their_limits_and_plans(aws: Any, api: Api) -> None:
    from directupload.profiles import BUILTIN_PROFILES

    status, body, _ = api.call("GET", "/profiles")

    assert status == 200
    by_name = {p["name"]: p for p in body["profiles"]}
    assert set(by_name) == set(BUILTIN_PROFILES)
    avatar = by_name["avatar"]
    assert avatar["contentTypes"] == ["image/jpeg", "image/png", "image/webp", "image/gif"]
    assert (avatar["minSize"], avatar["maxSize"]) == (1, 5 * 1024 * 1024)
    assert avatar["steps"] == ["verify", "image"] and avatar["downloadTtlSeconds"] == 300
    assert "multipartThreshold" not in avatar and "partSize" not in avatar
    video = by_name["video"]
    assert (video["multipartThreshold"], video["partSize"]) == (16 * 1024 * 1024, 16 * 1024 * 1024)


def test_a_deployments_own_profiles_are_what_it_lists(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from directupload import wiring

    mine = {"scan": {"contentTypes": ["application/pdf"], "maxSize": 1000, "retainDays": 7, "steps": ["verify"]}}
    monkeypatch.setenv("PROFILES_JSON", json.dumps(mine))
    wiring.reset()

    status, body, _ = Api().call("GET", "/profiles")

    assert status == 200
    assert body["profiles"] == [
        {
            "name": "scan",
            "contentTypes": ["application/pdf"],
            "minSize": 1,
            "maxSize": 1000,
            "urlTtlSeconds": 900,
            "downloadTtlSeconds": 300,
            "retainDays": 7,
            "allowActiveContent": False,
            "steps": ["verify"],
            "scan": "required",
        }
    ]


def test_a_profile_for_mobile_apps_signs_part_urls_that_outlive_a_suspended_app(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from urllib.parse import parse_qs, urlsplit

    from directupload import wiring

    mine = {
        "phone-video": {
            "contentTypes": ["video/mp4"],
            "maxSize": 1024**3,
            "multipartThreshold": 5 * 1024**2,
            "partSize": 5 * 1024**2,
            "urlTtlSeconds": 900,
            "partUrlTtlSeconds": 4 * 3600,
            "scan": "off",
        }
    }
    monkeypatch.setenv("PROFILES_JSON", json.dumps(mine))
    wiring.reset()
    api = Api()

    [view] = api.call("GET", "/profiles")[1]["profiles"]
    assert (view["urlTtlSeconds"], view["partUrlTtlSeconds"], view["scan"]) == (900, 4 * 3600, "off")
    status, issued, _ = api.call(
        "POST",
        "/uploads",
        {"profile": "phone-video", "filename": "clip.mp4", "contentType": "video/mp4", "size": 12 * 1024**2},
    )
    assert status == 201, issued
    status, signed, _ = api.call("POST", f"/uploads/{issued['uploadId']}/parts", {"partNumbers": [1, 2, 3]})
    assert status == 200, signed
    for part in signed["parts"]:
        assert parse_qs(urlsplit(part["url"]).query)["X-Amz-Expires"] == [str(4 * 3600)]


def test_profiles_need_no_token_and_are_in_the_openapi_document(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from directupload import wiring

    monkeypatch.setenv("AUTH_MODE", "jwt")
    wiring.reset()
    anonymous = Api(claims=None)

    assert anonymous.call("GET", "/profiles")[0] == 200
    assert anonymous.call("GET", "/uploads")[0] == 401
    document = anonymous.call("GET", "/openapi.json")[1]
    assert "/profiles" in document["paths"] and "ProfileView" in document["components"]["schemas"]


def test_the_openapi_document_says_how_each_route_is_authorized(aws: Any) -> None:
    """A bearer JWT everywhere, but SigV4 on the trusted backends' routes and nothing on the
    routes template.yaml leaves without an authorizer."""
    from handlers import api

    document = json.loads(api.openapi_document())
    assert document["security"] == [{"bearer": []}]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    body = default_template().properties("UploadsApi")["DefinitionBody"]["paths"]
    public = {(path, method) for path, ops in body.items() if path != "/{proxy+}" for method in ops}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            expected: list[dict[str, list[str]]] | None = (
                []
                if (path, method) in public
                else [{"sigv4": []}]
                if path.startswith("/backend/")
                else None  # the document's own: bearer
            )
            assert operation.get("security") == expected, (method, path)
    assert ("/profiles", "get") in public
