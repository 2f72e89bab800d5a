"""checkov over template.yaml: no failed check, and every skipped one says why."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from local.cfn import ROOT, TEMPLATE
from tests.infra.tools import CHECKOV, clean_env, require


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    checkov = require(CHECKOV)
    # --skip-download: no Prisma Cloud calls (guidelines, severities); the checks are all local.
    result = subprocess.run(
        [str(checkov), "--file", str(TEMPLATE), "--framework", "cloudformation", "--output", "json", "--skip-download"],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr[-4000:]
    return json.loads(result.stdout)


def test_checkov_finds_no_failed_check(report: dict[str, Any]) -> None:
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in report["results"]["failed_checks"]]

    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 0
    assert failed == []


def test_every_skipped_check_has_a_written_reason(report: dict[str, Any]) -> None:
    for check in report["results"]["skipped_checks"]:
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason) > 20 and reason != "No comment provided", (check["check_id"], check["resource"])
