"""cfn-lint over template.yaml, and over what SAM makes of it, with no error and no warning."""

from __future__ import annotations

import json
import re

import pytest
from cfnlint.api import ManualArgs, lint, lint_file

from local.cfn import TEMPLATE, translate

# Lambda arm64, HTTP APIs and SSE-SQS exist in all of them; checking a few catches a resource
# type or property that one region lacks.
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]

PROD_EVERYTHING_ON = {
    "Stage": "prod",
    "JwtIssuer": "https://issuer.example.com",
    "JwtAudience": "client-id",
    "WebhookUrl": "https://hooks.example.com/uploads",
    "AlarmEmail": "ops@example.com",
}


def _describe(matches: list) -> str:
    return "\n".join(str(m) for m in matches)


def test_template_has_no_cfn_lint_error_or_warning() -> None:
    # When
    matches = lint_file(TEMPLATE, config=ManualArgs(regions=REGIONS))

    # Then
    assert matches == [], _describe(matches)


# buckets the stack does not own, several of them (their EventBridge path, grants scoped to them)
EXISTING_BUCKETS = {**PROD_EVERYTHING_ON, "ExistingBuckets": "acme-uploads,acme-reports"}


@pytest.mark.parametrize(
    "overrides",
    [{"AuthMode": "none"}, PROD_EVERYTHING_ON, EXISTING_BUCKETS],
    ids=["dev-open", "prod-everything-on", "existing-buckets"],
)
def test_translated_template_has_no_cfn_lint_error_or_warning(overrides: dict[str, str]) -> None:
    """cfn-lint checks a SAM template against SAM's own schema; the IAM statements, routes and
    alarms SAM generates are only checked in its output (this once caught a made-up IAM action)."""
    # Given
    translated = json.dumps(translate(overrides))

    # When
    matches = lint(translated, config=ManualArgs(regions=REGIONS))

    # Then
    assert matches == [], _describe(matches)


def test_every_cfn_lint_suppression_says_why() -> None:
    lines = TEMPLATE.read_text().splitlines()
    suppressions = [i for i, line in enumerate(lines) if re.match(r"\s*ignore_checks:", line)]

    for i in suppressions:
        assert lines[i - 1].strip().startswith("#"), f"line {i + 1}: ignore_checks without a reason above it"
