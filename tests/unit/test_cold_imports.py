"""What a cold start imports: each function's handler module, in a fresh interpreter with the
environment Lambda gives it (template variables, Lambda's own, tracing off), loads nothing its
first request does not need. The heavy modules listed here cost a cold start tens of
milliseconds each (docs/performance.md); each one is loaded by the code that uses it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, cast

import pytest

from local import FUNCTIONS
from local.template import LocalTemplate, load

# Never on a cold start of either function: decoders of the steps that need them, the X-Ray SDK
# with tracing off, the OpenAPI document's models (only GET /openapi.json builds them).
NEITHER = (
    "PIL",
    "pypdf",
    "jsonschema",
    "aws_xray_sdk",
    "aws_lambda_powertools.event_handler.openapi.models",
    "directupload.cdn",  # CloudFront signing: only with a download domain
    "directupload.webhooks",
)
NOT_ON = {
    # the API never loads the processing pipeline, nor the SQS and idempotency utilities
    "ApiFunction": (
        "handlers.api",
        (
            *NEITHER,
            "directupload.processing.pipeline",
            "directupload.sniff",
            "aws_lambda_powertools.utilities.batch",
            "aws_lambda_powertools.utilities.idempotency",
        ),
    ),
    # the processor never loads the HTTP resolver, nor the batch utility's pydantic record
    # models (powertools imports them only when pydantic was imported before the batch utility)
    "ProcessFunction": (
        "handlers.processor",
        (*NEITHER, "aws_lambda_powertools.event_handler", "aws_lambda_powertools.utilities.parser"),
    ),
}


# what the template's parameters fill in for a function that is off by default
WHAT_A_DEPLOYMENT_SETS = {
    "WebhookFunction": {
        "WEBHOOK_URL": "https://hooks.example.com/directupload",
        "WEBHOOK_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:hook",
        "WEBHOOK_DEAD_LETTER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/hook-dlq",
    }
}


def after_import(function: str, module: str, report: str, *, on_lambda: bool = True) -> object:
    """Import ``module`` in a fresh interpreter with ``function``'s environment; the JSON of
    the expression ``report`` evaluated after it (``frozen_before``: the collector's frozen
    count before it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "PYDANTIC_", "LAMBDA_"))}
    env.update(LocalTemplate(load(), region="us-east-1", prefix="cold").function_environment(function))
    env.update(
        {
            "PYTHONPATH": str(FUNCTIONS),
            "AUTH_MODE": "none",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "unit-test-signing-key",
            "LAMBDA_TASK_ROOT": str(FUNCTIONS),
            "AWS_LAMBDA_FUNCTION_NAME": function,
        }
    )
    env.update(WHAT_A_DEPLOYMENT_SETS.get(function, {}))
    if not on_lambda:
        del env["LAMBDA_TASK_ROOT"]
    code = f"import gc, json, sys\nfrozen_before = gc.get_freeze_count()\nimport {module}\nprint(json.dumps({report}))"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def loaded_by_import(function: str, module: str) -> set[str]:
    return set(cast(list[str], after_import(function, module, "sorted(sys.modules)")))


@pytest.mark.parametrize("function", sorted(NOT_ON))
def test_a_cold_start_loads_only_what_the_first_request_needs(function: str) -> None:
    module, avoided = NOT_ON[function]

    loaded = loaded_by_import(function, module)

    assert module in loaded and "boto3" in loaded  # the import did run
    unexpected = sorted(m for m in loaded if any(m == a or m.startswith(a + ".") for a in avoided))
    assert unexpected == []


ENTRY_POINTS = {
    logical_id: resource["Properties"]["Handler"].rsplit(".", 1)[0]
    for logical_id, resource in load()["Resources"].items()
    if resource["Type"] == "AWS::Serverless::Function"
}


@pytest.mark.parametrize("function", sorted(ENTRY_POINTS))
def test_every_function_resumes_garbage_collection_once_set_up(function: str) -> None:
    """The collector is paused while a function starts on Lambda (handlers/__init__.py): each
    entry module must resume it, with what it set up frozen out of later passes."""
    report = "[gc.isenabled(), gc.get_freeze_count() - frozen_before]"

    enabled, frozen = cast(list[Any], after_import(function, ENTRY_POINTS[function], report))
    assert enabled is True
    assert frozen > 10_000  # the modules, clients and models made while starting

    enabled, frozen = cast(list[Any], after_import(function, ENTRY_POINTS[function], report, on_lambda=False))
    assert (enabled, frozen) == (True, 0)  # tests and tools importing a handler: nothing changes


def test_a_helper_module_alone_leaves_the_collector_alone_off_lambda() -> None:
    enabled = after_import("ApiFunction", "handlers.contract", "gc.isenabled()", on_lambda=False)
    assert enabled is True
