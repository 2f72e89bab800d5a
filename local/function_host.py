"""A function's 'container' in a process of its own, as Lambda runs each function in its own sandbox.

- Its own environment: the function's variables from the template and the credentials of its
  own role (local/roles.py), so one function's calls are allowed or denied by its policy alone.
- One invocation at a time, with Lambda's timeout: an invocation still running when the
  function's ``Timeout`` is up is killed with its process (and any process it forked), the
  caller gets ``FunctionTimeout`` ("Task timed out after N seconds"), and the next invocation
  starts a fresh process: a cold start, as after a timeout on Lambda.
- A handler that raises gives ``FunctionError`` with Lambda's errorType and errorMessage; a
  result JSON cannot encode gives "Runtime.MarshalError"; a process that dies (out of memory,
  os._exit) gives "Runtime.ExitError" at once, even when a process it forked still runs (the
  child is polled while an invocation waits; forked processes do not inherit the reply pipe),
  and what it forked is killed with it.
- ``stop()`` kills the process first, so it never waits for a running invocation.

The parent writes one JSON line per invocation to the child's stdin; the child answers on a
pipe of its own, so whatever the handler prints (its logs) still reaches the console.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
from typing import IO, Any

# Lambda gives a function's initialisation 10 seconds; a local cold start imports from a
# cold disk cache on a loaded machine, so the local allowance is more generous.
INIT_SECONDS = 60.0
# how often a waiting invocation checks that the child still runs
POLL_SECONDS = 0.2


class FunctionTimeout(Exception):
    """The invocation ran past the function's timeout and was stopped, as Lambda stops it."""


class FunctionError(Exception):
    """The function failed the invocation: the handler raised, or its process died."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type


class FunctionProcess:
    """``invoke(event)`` runs ``handler`` ("module:function") in a child process with ``env``."""

    def __init__(
        self,
        name: str,
        handler: str,
        env: dict[str, str],
        timeout: float,
        memory_mb: int = 1024,
        cwd: str = ".",
        inject_faults: bool = False,
    ) -> None:
        self.name = name
        self.inject_faults = inject_faults
        self.handler = handler
        self.env = env
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.cwd = cwd
        self.timeouts = 0
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._replies: IO[bytes] | None = None

    def invoke(self, event: dict[str, Any]) -> Any:
        with self._lock:
            process, replies = self._started()
            if process.stdin is None:
                raise FunctionError("Runtime.NoPipe", "the function's process has no pipe for its events")
            try:
                process.stdin.write(json.dumps(event).encode() + b"\n")
                process.stdin.flush()
            except BrokenPipeError:
                self._stop()
                raise FunctionError("Runtime.ExitError", f"{self.name} exited before the invocation") from None
            line = self._read_line(replies, time.monotonic() + self.timeout, process)
            if line is None:
                self._stop()
                self.timeouts += 1
                raise FunctionTimeout(f"{self.name}: Task timed out after {self.timeout:.2f} seconds")
            if not line:
                code = self._stop()
                raise FunctionError("Runtime.ExitError", f"{self.name} exited during the invocation (status {code})")
            try:
                reply = json.loads(line)
            except ValueError:
                self._stop()
                raise FunctionError("Runtime.ExitError", f"{self.name} answered garbage: {line[:80]!r}") from None
            if "error" in reply:
                raise FunctionError(reply["error"]["errorType"], reply["error"]["errorMessage"])
            return reply["result"]

    def stop(self) -> None:
        """Stop the container, even in the middle of an invocation: kill first (that invocation
        then ends as an ExitError), then take the lock to clean up."""
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        with self._lock:
            self._stop()

    def _started(self) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
        if self._process is not None and self._process.poll() is None and self._replies is not None:
            return self._process, self._replies
        self._stop()
        read_end, write_end = os.pipe()
        try:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "local.function_host",
                    self.handler,
                    "--name",
                    self.name,
                    "--timeout",
                    str(self.timeout),
                    "--memory",
                    str(self.memory_mb),
                    "--reply-fd",
                    str(write_end),
                    *(["--inject-faults"] if self.inject_faults else []),
                ],
                stdin=subprocess.PIPE,
                env=self.env,
                cwd=self.cwd,
                pass_fds=(write_end,),
                start_new_session=True,  # its own process group: a timeout stops what it forked too
            )
        except BaseException:
            os.close(read_end)
            os.close(write_end)
            raise
        os.close(write_end)
        self._replies = os.fdopen(read_end, "rb")
        ready = self._read_line(self._replies, time.monotonic() + INIT_SECONDS, self._process)
        if not ready:
            self._stop()
            raise FunctionError("Runtime.InitError", f"{self.name} did not initialise")
        return self._process, self._replies

    @staticmethod
    def _read_line(stream: IO[bytes], deadline: float, process: subprocess.Popen[bytes] | None = None) -> bytes | None:
        """One reply line; b"" when the child is gone, None when the deadline passed first. The
        child is watched too: a process it forked may hold the reply pipe open after it died."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([stream], [], [], min(left, POLL_SECONDS))
            if ready:
                return stream.readline()
            if process is not None and process.poll() is not None:
                ready, _, _ = select.select([stream], [], [], 0)  # its last words, if any
                return stream.readline() if ready else b""

    def _stop(self) -> int | None:
        process, self._process = self._process, None
        if self._replies is not None:
            self._replies.close()
            self._replies = None
        if process is None:
            return None
        # the whole group, even when the child is gone: what it forked may still run
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        return process.wait()


def _serve(handler: Any, name: str, timeout: float, memory_mb: int, replies: IO[bytes], inject: bool) -> None:
    from local.faults import Faults
    from local.lambda_runtime import LocalContext

    # LOCAL_FAULT_* (local/faults.py): throttle this function's own AWS calls while it runs
    faults = Faults.from_env() if inject else None
    if faults is not None:
        from directupload import aws  # the very clients the function's code uses

        faults.install({service: aws.client(service) for service in ("s3", "dynamodb", "events")})
    replies.write(b"ready\n")
    replies.flush()
    for line in sys.stdin.buffer:
        event = json.loads(line)
        context = LocalContext(name, memory_limit_in_mb=memory_mb, timeout_seconds=timeout)
        try:
            with faults.armed() if faults is not None else contextlib.nullcontext():
                reply: dict[str, Any] = {"result": handler(event, context)}
        except Exception as exc:  # noqa: BLE001 - Lambda reports any handler error to the caller
            traceback.print_exc()
            reply = {"error": {"errorType": type(exc).__name__, "errorMessage": str(exc)}}
        try:
            encoded = json.dumps(reply)
        except (TypeError, ValueError) as exc:  # Lambda cannot serialise such a result either
            message = f"Unable to marshal response: {exc}"
            encoded = json.dumps({"error": {"errorType": "Runtime.MarshalError", "errorMessage": message}})
        replies.write(encoded.encode() + b"\n")
        replies.flush()


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one local Lambda 'container' (started by FunctionProcess)")
    parser.add_argument("handler", help="module:function")
    parser.add_argument("--name", required=True)
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--memory", type=int, default=1024)
    parser.add_argument("--reply-fd", type=int, required=True)
    parser.add_argument("--inject-faults", action="store_true", help="LOCAL_FAULT_* apply to this function")
    args = parser.parse_args(argv)
    # No PR_SET_PDEATHSIG here: it fires when the *thread* that started this process ends (a
    # gateway request thread), not the parent. When the parent dies, stdin ends and so does this.
    import warnings

    # metrics are off locally; powertools still warns on every flush that there were none
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    module, function = args.handler.split(":")
    handler = getattr(importlib.import_module(module), function)
    # a process the handler forks (the processor's decoding budget does) must not hold the reply
    # pipe open: its parent's death would then go unnoticed until the timeout
    os.register_at_fork(after_in_child=lambda: _close_quietly(args.reply_fd))
    with os.fdopen(args.reply_fd, "wb") as replies:
        _serve(handler, args.name, args.timeout, args.memory, replies, args.inject_faults)
    return 0


if __name__ == "__main__":
    sys.exit(main())
