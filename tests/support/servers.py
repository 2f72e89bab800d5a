"""HTTP servers that tests stand up in process (a webhook endpoint, a fake S3 for the CLI)."""

from __future__ import annotations

import sys
from http.server import ThreadingHTTPServer
from typing import Any


class QuietHTTPServer(ThreadingHTTPServer):
    """A test's server: a client that hangs up on it (a reset, a broken pipe, as a client that
    gave up does) prints no traceback into the test run; the client's side is what tests assert."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionResetError | BrokenPipeError):
            return
        super().handle_error(request, client_address)
