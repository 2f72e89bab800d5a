"""Test helpers of the webhook: an event as the WebhookQueue carries it, and the sample receiver
(client-demo/webhook_receiver.py, a script rather than a package, loaded from its file)."""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Callable
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any

from tests.conftest import ROOT
from tests.support.servers import QuietHTTPServer

UPLOAD_ID = "3f1c2a9e8b7d4c6a9e0f1a2b3c4d5e6f"


def bus_event(detail_type: str = "Upload Processed", upload_id: str = UPLOAD_ID) -> dict[str, Any]:
    """An EventBridge event of the bus, with the parts the webhook reads."""
    return {
        "version": "0",
        "id": "7b0f4c7e-1d3b-4e0e-9a0c-2b1a6c9f2d11",
        "detail-type": detail_type,
        "source": "directupload",
        "time": "2026-11-22T10:15:03Z",
        "detail": {"uploadId": upload_id, "profile": "avatar"},
    }


@cache
def receiver_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("webhook_receiver", ROOT / "client-demo" / "webhook_receiver.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


Answer = Callable[[dict[str, str], bytes], tuple[int, dict[str, Any]]]


def serve(answer: Answer) -> ThreadingHTTPServer:
    """A real HTTP receiver on a free port: each POST's headers and body, answered by ``answer``."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            status, reply = answer(dict(self.headers.items()), body)
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

    httpd = QuietHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd
