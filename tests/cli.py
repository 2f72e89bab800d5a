"""The CLI package (client-demo/cli) from source, as the e2e tests run it: ``python -m
directupload_cli`` with its ``src`` on PYTHONPATH, no install (tests/e2e/test_cli_package.py
installs it)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI_PACKAGE = ROOT / "client-demo" / "cli"
CLI_SRC = CLI_PACKAGE / "src"
CLI = [sys.executable, "-m", "directupload_cli"]


def cli_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) without the CLI's own variables, with the
    package's source first on PYTHONPATH."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("DIRECTUPLOAD_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(CLI_SRC), env.get("PYTHONPATH")) if p)
    return env
