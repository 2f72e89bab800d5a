"""What a cold start imports: each function's handler module, in a fresh interpreter with the
environment Lambda gives it (template variables, Lambda's own, tracing off), loads nothing its
first request does not need. The heavy modules listed here cost a cold start tens of
milliseconds each (docs/performance.md); each one is loaded by the code that uses it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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


def loaded_by_import(function: str, module: str) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "PYDANTIC_"))}
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
    code = f"import json, sys\nimport {module}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return set(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize("function", sorted(NOT_ON))
def test_a_cold_start_loads_only_what_the_first_request_needs(function: str) -> None:
    module, avoided = NOT_ON[function]

    loaded = loaded_by_import(function, module)

    assert module in loaded and "boto3" in loaded  # the import did run
    unexpected = sorted(m for m in loaded if any(m == a or m.startswith(a + ".") for a in avoided))
    assert unexpected == []
