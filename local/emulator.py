"""The AWS emulator (moto's server) in its own process.

In its own process it has its own interpreter lock: the functions' handlers and the emulator
each get a core of a 2-core machine instead of sharing one. The child binds the port itself
(port 0: any free one) and reports it on its first line of output, so two stacks started at
once can never race for the same port.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import sys
import threading
from typing import Any

from local import ROOT


def _die_with_parent() -> None:
    """Linux: this process gets SIGTERM when its parent dies, even by SIGKILL."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Emulator:
    """The emulator in a child process on HOST:PORT (0: any free port), from ``start()`` (or
    entering it) until ``stop()``; the child dies with this process."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "local.emulator", self.host, str(self.port)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        if self.process.stdout is None:
            raise RuntimeError("the emulator was started without a pipe for its port")
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline().strip() if ready else ""
        if not line.isdigit():
            self.stop()
            raise RuntimeError(f"the emulator did not start on {self.host}:{self.port or 'any port'} (in use?)")
        self.port = int(line)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def serve(host: str, port: int) -> Any:
    """moto's server on HOST:PORT (0: any free port) behind the IAM gate and the request counter
    (``/_local/requests``), serving in a thread;
    ``server.server_address`` is the bound address, ``server.shutdown()`` stops it.

    The one place that reaches into moto's server internals (its werkzeug app and request
    handler, what ``ThreadedMotoServer`` wraps and keeps in its private ``_server``): the gate,
    the SigV4 verifier and the request counter must sit in front of moto's app, which
    ``ThreadedMotoServer`` offers no way to do. Everything else starts the emulator through here
    (``local/harness.py``)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    from local import moto_fixes
    from local.iam_gate import IamGate
    from local.request_log import RequestLog
    from local.sigv4 import VerifyingApp

    moto_fixes.apply()
    # IAM's own AWS managed policies (SAM attaches some to the functions' roles), as IAM has them
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # in front: the HTTP API's IAM authorization asks here (local/sigv4.py), not an AWS request;
    # then every request counted by who made it (local/request_log.py) and checked by its role's policies
    app = VerifyingApp(RequestLog(IamGate(DomainDispatcherApplication(create_backend_app))))
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    threading.Thread(target=server.serve_forever, name="emulator", daemon=True).start()
    return server


def main() -> None:
    """The child: serve moto on HOST PORT, print the bound port, run until SIGTERM."""
    host, port = sys.argv[1], int(sys.argv[2])
    if sys.platform == "linux":
        _die_with_parent()
    server = serve(host, port)
    print(server.server_address[1], flush=True)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    stopping.wait()
    server.shutdown()


if __name__ == "__main__":
    main()
