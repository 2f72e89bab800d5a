"""The local stack runs each function as Lambda does: in a process of its own, with its own
environment, one invocation at a time, and stopped at its timeout."""

from __future__ import annotations

import os
import threading
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


def test_a_container_that_dies_with_a_forked_child_alive_is_reported_at_once(tmp_path: Path) -> None:
    function = host("fork_then_exit", timeout=20.0)
    forked = tmp_path / "forked.pid"
    try:
        started = time.monotonic()
        with pytest.raises(FunctionError) as died:
            function.invoke({"fork_into": str(forked)})
        assert died.value.error_type == "Runtime.ExitError"
        assert time.monotonic() - started < 10, "the death was noticed only at the timeout"
        assert not alive(int(forked.read_text())), "what the dead container forked outlived it"
    finally:
        function.stop()


def test_a_result_json_cannot_encode_is_a_marshal_error() -> None:
    function = host("unserialisable")
    try:
        with pytest.raises(FunctionError) as raised:
            function.invoke({})
        assert raised.value.error_type == "Runtime.MarshalError"
    finally:
        function.stop()


def test_stop_does_not_wait_for_a_running_invocation() -> None:
    function = host("sleep_for", timeout=30.0)
    function.invoke({})
    outcome: list[BaseException] = []

    def invoke() -> None:
        try:
            function.invoke({"seconds": 25})
        except BaseException as exc:
            outcome.append(exc)

    running = threading.Thread(target=invoke)
    running.start()
    time.sleep(0.5)
    started = time.monotonic()
    function.stop()
    assert time.monotonic() - started < 10, "stop() waited for the invocation"
    running.join(10)
    assert outcome and isinstance(outcome[0], FunctionError), outcome


def test_the_pipe_is_closed_when_the_process_cannot_start(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("no such interpreter")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    before = len(os.listdir("/proc/self/fd"))
    function = host("sleep_for")
    for _ in range(5):
        with pytest.raises(OSError):
            function.invoke({})
    assert len(os.listdir("/proc/self/fd")) == before
