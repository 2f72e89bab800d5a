"""Start and stop the local stack as a user does (`python -m local.stack`, a subprocess), on
free ports. The end-to-end tests and the benchmarks both run the stack through this."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from local import ROOT


@dataclass
class Stack:
    info: dict[str, Any]
    process: subprocess.Popen[bytes]
    state_dir: Path
    log_path: Path

    @property
    def url(self) -> str:
        return str(self.info["apiUrl"])

    def events(self) -> list[dict[str, Any]]:
        """Every event the bus delivered so far (the event tap's JSON Lines file)."""
        path = self.state_dir / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_stack(
    state_dir: Path, *extra: str, env: dict[str, str] | None = None, timeout: float = 60, auth: str = "none"
) -> Stack:
    """Start the stack and wait until its API answers. Auth is off unless asked for."""
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / "stack.log"
    command = [sys.executable, "-m", "local.stack", "--port", "0", "--emulator-port", "0",
               "--state-dir", str(state_dir), "--quiet", "--auth", auth, *extra]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env if env is not None else dict(os.environ)
        )
    info_path = state_dir / "stack.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"local stack exited {process.returncode}:\n{log_path.read_text()}")
        if info_path.exists():
            try:
                info = json.loads(info_path.read_text())
                if requests.get(info["apiUrl"] + "/openapi.json", timeout=5).status_code == 200:
                    return Stack(info, process, state_dir, log_path)
            except (ValueError, requests.RequestException):
                pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"local stack not ready in {timeout}s:\n{log_path.read_text()}")


def stop_stack(stack: Stack) -> None:
    stack.process.terminate()
    try:
        stack.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        stack.process.kill()
        stack.process.wait()
