"""Every problem body comes from one table (directupload/problems.py): the OpenAPI document
describes each error status by the titles of the kinds the API answers with it."""

from __future__ import annotations

import json
from typing import Any

from tests.integration.conftest import Api


def test_openapi_error_descriptions_are_the_problem_titles(aws: Any) -> None:
    from directupload import problems
    from handlers import api

    document = json.loads(api.openapi_document())
    described = {
        int(status): answer["description"]
        for path in document["paths"].values()
        for operation in path.values()
        for status, answer in operation["responses"].items()
        if int(status) >= 400
    }
    assert described, "no error responses documented"
    for status, description in described.items():
        assert description == problems.titles(status), status
    assert "Conflict with the upload's state" in described[409]


def test_a_domain_error_answers_with_its_kind(aws: Any, api: Api) -> None:
    from directupload import problems

    status, body, _ = api.call("GET", "/uploads/" + "0" * 32)
    assert status == 404
    assert {k: body[k] for k in ("type", "title", "status")} == {
        "type": problems.NOT_FOUND.type,
        "title": problems.NOT_FOUND.title,
        "status": 404,
    }
