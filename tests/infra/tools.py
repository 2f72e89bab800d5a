"""The infra tools that live in their own venvs (`make infra-venv`): checkov and the SAM CLI pin
dependencies that clash with each other and with the main venv."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from local.cfn import ROOT

CHECKOV = ROOT / ".venv-infra" / "bin" / "checkov"
SAM = ROOT / ".venv-sam" / "bin" / "sam"


def require(tool: Path) -> Path:
    """The tool, or a skip that says how to get it; in CI (CI=true) a missing tool fails."""
    if tool.exists():
        return tool
    message = f"{tool.relative_to(ROOT)} is missing: run `make infra-venv`"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def python312_dirs() -> list[str]:
    """Where a python3.12 lives, for `sam build` (Lambda's runtime; the pyenv shim does not switch)."""
    found = sorted(Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"))
    return [str(found[-1].parent)] if found else []


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a tool subprocess: no AWS endpoint or credentials another fixture set,
    no telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(SAM_CLI_TELEMETRY="0", **extra)
    return env
