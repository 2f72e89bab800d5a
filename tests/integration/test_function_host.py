"""The local stack runs each function as Lambda does: in a process of its own, with its own
environment, one invocation at a time, and stopped at its timeout."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from local.function_host import FunctionError, FunctionProcess, FunctionTimeout
from tests.conftest import ROOT


def host(handler: str, timeout: float = 3.0, **env: str) -> FunctionProcess:
    return FunctionProcess(
        "TestFunction", f"tests.function_handlers:{handler}", {**os.environ, **env}, timeout, cwd=str(ROOT)
    )


def alive(pid: int, grace: float = 10.0) -> bool:
    """Whether ``pid`` still runs once a SIGKILL sent to it has had ``grace`` seconds to land."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                state = stat.read().rsplit(")", 1)[-1].split()[0]
        except FileNotFoundError:
            return False
        if state in ("Z", "X"):  # killed, not yet reaped: gone for every purpose here
            return False
        time.sleep(0.05)
    return True


def test_a_function_runs_in_its_own_process_with_its_own_environment() -> None:
    function = host("sleep_for", AWS_ACCESS_KEY_ID="ASIA-the-functions-own-role")
    try:
        first = function.invoke({"seconds": 0})
        assert first["pid"] != os.getpid()
        assert first["role"] == "ASIA-the-functions-own-role"
        assert 0 < first["remainingMillis"] <= 3000
        assert function.invoke({})["pid"] == first["pid"], "a warm container serves the next invocation"
    finally:
        function.stop()


def test_an_invocation_past_the_timeout_is_stopped_with_what_it_forked(tmp_path: Path) -> None:
    function = host("sleep_for", timeout=1.0)
    try:
        warm = function.invoke({})["pid"]
        forked = tmp_path / "forked.pid"
        started = time.monotonic()
        with pytest.raises(FunctionTimeout, match=r"Task timed out after 1\.00 seconds"):
            function.invoke({"seconds": 30, "fork_into": str(forked)})
        assert time.monotonic() - started < 25, "the caller was not made to wait for the handler"
        assert not alive(warm)
        assert not alive(int(forked.read_text())), "a process the handler forked outlived the timeout"
        # the next invocation gets a fresh container (a cold start), as after a timeout on Lambda
        assert function.invoke({})["pid"] != warm
        assert function.timeouts == 1
    finally:
        function.stop()


def test_a_handler_error_and_a_dead_container_reach_the_caller_as_lambda_reports_them() -> None:
    failing, exiting = host("fail"), host("exit_now")
    try:
        with pytest.raises(FunctionError, match="ValueError: bad bytes") as raised:
            failing.invoke({"message": "bad bytes"})
        assert raised.value.error_type == "ValueError"
        with pytest.raises(FunctionError) as died:
            exiting.invoke({})
        assert died.value.error_type == "Runtime.ExitError"
    finally:
        failing.stop()
        exiting.stop()
