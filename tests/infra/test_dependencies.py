"""pip-audit over the pinned dependencies: nothing known to be vulnerable ships."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PIN_FILES = ["functions/requirements.txt", "requirements-dev.txt"]


def test_pinned_dependencies_have_no_known_vulnerabilities() -> None:
    pip_audit = shutil.which("pip-audit", path=str(Path(sys.executable).parent))
    assert pip_audit, "pip-audit is not installed (requirements-dev.txt pins it)"
    args = [pip_audit, "--disable-pip", "--no-deps", "--progress-spinner", "off", "-f", "json"]
    for pins in PIN_FILES:
        args += ["-r", str(ROOT / pins)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=ROOT)
    report = json.loads(result.stdout or "{}")
    audited = [d for d in report.get("dependencies", []) if "skip_reason" not in d]
    if not audited:
        reasons = {d.get("skip_reason", "") for d in report.get("dependencies", [])}
        pytest.skip(
            "pip-audit could audit nothing: its vulnerability service (PyPI's per-release JSON) "
            f"does not answer from this machine ({sorted(reasons)[:1]})"
        )
    vulnerable = {d["name"]: [v["id"] for v in d["vulns"]] for d in audited if d.get("vulns")}
    assert not vulnerable, f"known vulnerabilities in pinned dependencies: {vulnerable}"
