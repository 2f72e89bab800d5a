"""Fuzz the running local stack (auth on, as `make run`) from its own OpenAPI document:
every generated request, valid or not, gets a documented status and body, never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import Stack, start_stack, stop_stack
from tests.support.auth import local_token

pytestmark = pytest.mark.slow

EXAMPLES_PER_MODE = 100
MIN_REQUESTS = 1000


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("fuzz"), auth="jwt")
    yield stack
    stop_stack(stack)


@pytest.fixture(scope="module")
def token(fuzz_stack: Stack) -> str:
    return local_token(fuzz_stack.url, "fuzzer")


@pytest.fixture(scope="module")
def api_schema(fuzz_stack: Stack) -> Any:
    return schemathesis.openapi.from_url(f"{fuzz_stack.url}/openapi.json")


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def fuzz(operation: Any, mode: GenerationMode, headers: dict[str, str]) -> int:
    """Send EXAMPLES_PER_MODE generated requests for one operation; check each response."""
    sent = 0

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES_PER_MODE, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        nonlocal sent
        response = case.call(headers=headers)
        sent += 1
        case.validate_response(response, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:
        # an operation that takes no input (GET /profiles) has no invalid request to generate
        if mode is not GenerationMode.NEGATIVE:
            raise
    return sent


# every operation of the document in one test (the trusted-backend routes too): more than the
# default 300 s on a machine shared with other test runs
@pytest.mark.timeout(600)
def test_no_server_errors_and_responses_match_the_document(api_schema: Any, token: str) -> None:
    """Valid and invalid requests for every operation; each response is checked against the document."""
    headers = {"Authorization": f"Bearer {token}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert operations, "the OpenAPI document lists no operations"
    sent = {
        f"{op.method.upper()} {op.path}": sum(fuzz(op, mode, headers) for mode in GenerationMode) for op in operations
    }
    assert all(count > 0 for count in sent.values()), f"never fuzzed: {[r for r, c in sent.items() if not c]}"
    assert sum(sent.values()) >= MIN_REQUESTS, f"only {sum(sent.values())} requests were generated: {sent}"
