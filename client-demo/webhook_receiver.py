"""A sample receiver of directupload's signed webhook (Standard Webhooks), stdlib HTTP server.

    WEBHOOK_SECRET=whsec_... python client-demo/webhook_receiver.py --port 8787

It answers each POST with
- 401 when the signature does not verify, a header is missing or malformed, or the timestamp
  is more than 5 minutes away from now (a replay of an old delivery, or a forged time);
- 200 ``{"accepted": true}`` for a verified delivery it had not seen, which it then handles
  (here: prints the event and keeps it in memory);
- 200 ``{"accepted": true, "duplicate": true}`` for a ``webhook-id`` it already handled: the
  sender retries until it gets a 2xx, so a receiver must answer a repeat with success and do
  nothing twice (the id is stable across retries: ``{uploadId}-processed`` and so on);
- 413 for a body over 1 MiB, 400 for a verified body that is not a JSON object.

Verification is the ``standardwebhooks`` library's ``Webhook.verify``: HMAC-SHA256 of
``"{webhook-id}.{webhook-timestamp}.{raw body}"`` with the base64 key after ``whsec_``, compared
in constant time with each ``v1,`` entry of ``webhook-signature``, and the timestamp within
5 minutes. The raw body is what is signed: verify before parsing it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections import OrderedDict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

MAX_BODY = 1024 * 1024
REMEMBERED_IDS = 10_000  # ids kept for deduplication (a real receiver keeps them in its database)


class Receiver:
    """Verification and deduplication, apart from HTTP so it reads in a few lines."""

    def __init__(self, secret: str) -> None:
        self.webhook = Webhook(secret)  # accepts "whsec_<base64>" or the bare base64
        self.seen: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.lock = threading.Lock()

    def receive(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            self.webhook.verify(body, headers, json_parse=False)  # raises unless signed, and signed recently
        except WebhookVerificationError as exc:
            return HTTPStatus.UNAUTHORIZED, {"error": str(exc)}
        except ValueError:  # a malformed signature header or body (bad base64, no comma, not UTF-8)
            return HTTPStatus.UNAUTHORIZED, {"error": "malformed signature headers or body"}
        try:
            event = json.loads(body)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            return HTTPStatus.BAD_REQUEST, {"error": "the body is not a JSON object"}
        webhook_id = {k.lower(): v for k, v in headers.items()}["webhook-id"]
        with self.lock:
            if webhook_id in self.seen:
                return HTTPStatus.OK, {"accepted": True, "duplicate": True}
            self.seen[webhook_id] = event
            while len(self.seen) > REMEMBERED_IDS:
                self.seen.popitem(last=False)
        self.handle(webhook_id, event)
        return HTTPStatus.OK, {"accepted": True}

    def handle(self, webhook_id: str, event: dict[str, Any]) -> None:
        """What your product does with an event (index the file, notify someone...)."""
        detail = event.get("detail") or {}
        print(f"{webhook_id}: {event.get('detail-type')} upload {detail.get('uploadId')}", flush=True)


def server(receiver: Receiver, host: str = "127.0.0.1", port: int = 8787) -> ThreadingHTTPServer:
    """An HTTP server that hands every POST to ``receiver`` (port 0: any free port)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            try:
                length = int(self.headers.get("content-length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY:
                self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"the body must be 0 to {MAX_BODY} bytes"})
                return
            body = self.rfile.read(length)
            status, reply = receiver.receive(dict(self.headers.items()), body)
            self._reply(status, reply)

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
            return  # no access log: the events are printed by Receiver.handle

    return ThreadingHTTPServer((host, port), Handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Sample receiver of directupload's signed webhook.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    args = parser.parse_args(argv)
    secret = os.environ.get("WEBHOOK_SECRET", "")
    if not secret:
        print("set WEBHOOK_SECRET to the stack's signing secret (whsec_...)", file=sys.stderr)
        return 2
    try:
        receiver = Receiver(secret)
    except ValueError:
        print("WEBHOOK_SECRET is not whsec_ followed by base64", file=sys.stderr)
        return 2
    httpd = server(receiver, args.host, args.port)
    print(f"listening on http://{args.host}:{httpd.server_address[1]}/", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
