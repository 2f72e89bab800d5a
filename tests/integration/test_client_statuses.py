"""The clients' status lists are generated from the API's OpenAPI document (x-final on the Status
enum), never kept by hand: a committed copy that differs from what the API publishes fails here.
The stack's environment (``aws``) is what the handler validates at import."""

from __future__ import annotations

import json
from typing import Any

from directupload.models import FINAL_FOR_CLIENTS, Status
from scripts import client_statuses
from scripts.openapi import document


def test_the_api_publishes_which_statuses_are_final(aws: Any) -> None:
    every, final = client_statuses.statuses(json.loads(document()))
    assert every == [status.value for status in Status]
    assert set(final) == FINAL_FOR_CLIENTS


def test_the_cli_and_js_status_lists_match_the_api(aws: Any) -> None:
    stale = [str(path.relative_to(client_statuses.ROOT)) for path in client_statuses.stale()]
    assert not stale, f"stale generated status lists {stale}: run make client-statuses"


def test_the_cli_reads_the_generated_lists() -> None:
    from directupload_cli import statuses

    assert set(statuses.FINAL) == FINAL_FOR_CLIENTS
    assert set(statuses.FINAL) | set(statuses.IN_PROGRESS) == set(statuses.STATUSES)
