"""A small HTTP gateway: each request becomes an API Gateway HTTP API (payload v2) event for
the very same ApiFunction handler; the demo page and its config are served beside it."""

from __future__ import annotations

import base64
import json
import mimetypes
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from directupload import problems
from directupload.problems import PROBLEM_JSON, Kind
from local.function_host import FunctionError, FunctionTimeout
from local.lambda_runtime import Function

# API Gateway's own payload limit; larger requests never reach the function.
MAX_REQUEST_BYTES = 10 * 1024 * 1024
# A local-only route: (headers, body) -> (status, JSON payload). Never part of the deployed API.
LocalRoute = Callable[[dict[str, str], bytes], tuple[int, dict[str, Any]]]
# IAM authorization: (method, url, headers, body) -> the caller's authorizer.iam, or PermissionError
IamVerifier = Callable[[str, str, dict[str, str], bytes], dict[str, Any]]
TEXT_TYPES = ("application/json", "application/problem+json", "text/", "application/x-www-form-urlencoded")


def api_gateway_event(
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes,
    source_ip: str,
    claims: dict[str, Any] | None,
    iam: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The event API Gateway's HTTP API sends a Lambda integration (payload format 2.0); ``claims``
    from a JWT authorizer, ``iam`` (the caller) from IAM authorization."""
    url = urlsplit(target)
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        lowered[key] = f"{lowered[key]},{value}" if key in lowered else value
    query: dict[str, str] = {}
    for name, value in parse_qsl(url.query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": url.path,
        "rawQueryString": url.query,
        "headers": lowered,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": lowered.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": url.path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if "cookie" in lowered:
        event["cookies"] = [c.strip() for c in lowered["cookie"].split(";")]
    if query:
        event["queryStringParameters"] = query
    if claims is not None:
        event["requestContext"]["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    if iam is not None:
        event["requestContext"]["authorizer"] = {"iam": iam}
    if body:
        content_type = lowered.get("content-type", "")
        try:
            if not content_type.startswith(TEXT_TYPES) and content_type:
                raise UnicodeDecodeError("utf-8", b"", 0, 1, "binary content type")
            event["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    return event


def _route_pattern(route: str) -> re.Pattern[str]:
    """A route key with path parameters ("GET /backend/uploads/{uploadId}") as a pattern."""
    parts = re.split(r"(\{[^}]+\})", route)
    return re.compile(
        "".join((".+" if p.endswith("+}") else "[^/]+") if p.startswith("{") else re.escape(p) for p in parts)
    )


class Gateway(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # the listen backlog: socketserver's default of 5 resets connections once a few more clients
    # (a page's parallel uploads, the benchmark's 16) connect at the same moment
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        api: Function,
        static_dir: Path,
        config: Callable[[], dict[str, Any]],
        authenticate: Callable[[dict[str, str]], dict[str, Any] | None] | None = None,
        local_routes: dict[str, LocalRoute] | None = None,
        public_routes: frozenset[str] = frozenset(),
        allowed_origins: list[str] | None = None,
        iam_routes: frozenset[str] = frozenset(),
        verify_iam: IamVerifier | None = None,
    ) -> None:
        super().__init__(address, _Handler)
        self.api = api
        self.static_dir = static_dir.resolve()
        self.config = config
        self.authenticate = authenticate
        self.local_routes = local_routes or {}
        self.public_routes = public_routes
        self.allowed_origins = allowed_origins or ["*"]
        # routes with IAM authorization ("POST /backend/uploads", "GET /backend/uploads/{uploadId}")
        self.iam_routes = [_route_pattern(route) for route in sorted(iam_routes)]
        self.verify_iam = verify_iam


class _Handler(BaseHTTPRequestHandler):
    server: Gateway
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    # plumbing
    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self._cors()
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _cors(self) -> None:
        headers = getattr(self, "headers", None)  # (none yet for a request line http.server refused)
        origin = headers.get("Origin") if headers is not None else None
        if not origin:
            return
        if urlsplit(self.path).path.startswith("/local/") and origin != f"http://{self.headers.get('Host')}":
            return  # local-only routes (a token for anyone) answer the stack's own pages alone
        allowed = self.server.allowed_origins
        if "*" in allowed or origin in allowed:
            self.send_header("Access-Control-Allow-Origin", "*" if "*" in allowed else origin)
            self.send_header("Access-Control-Expose-Headers", "Retry-After, Location")

    def _json(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        self._send(status, json.dumps(payload).encode(), {"Content-Type": content_type})

    def _problem(self, kind: Kind, detail: str) -> None:
        self._send(kind.status, kind.body(detail).encode(), {"Content-Type": PROBLEM_JSON})

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """What http.server refuses before a route sees the request (a request line it cannot
        parse, a method no route has): a problem+json reply too, with a status line, and the
        connection closed."""
        if self.request_version == "HTTP/0.9":  # (not parsed yet: it would send no status line)
            self.request_version = "HTTP/1.1"
        self.close_connection = True
        phrase = self.responses.get(code, ("",))[0]
        self._problem(problems.MALFORMED_HTTP, f"{code} {phrase}: {message or phrase}"[:200])

    def _read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self._problem(problems.LENGTH_REQUIRED, "send a Content-Length")
            return None
        if length is not None and not (length.isascii() and length.isdigit()):
            # (a length read as 0 would leave the body on the connection as the next request)
            self._problem(problems.MALFORMED_HTTP, "Content-Length must be a number of bytes")
            self.close_connection = True
            return None
        size = int(length) if length else 0
        if size > MAX_REQUEST_BYTES:
            self._problem(problems.REQUEST_TOO_LARGE, f"API requests are limited to {MAX_REQUEST_BYTES} bytes")
            self.close_connection = True
            return None
        return self.rfile.read(size) if size else b""

    # verbs
    def do_OPTIONS(self) -> None:
        self.send_response(204)
        self._cors()
        self.send_header("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "authorization, content-type")
        self.send_header("Access-Control-Max-Age", "600")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        body = self._read_body()
        if body is None:
            return
        path = urlsplit(self.path).path
        if self.command in ("GET", "HEAD"):
            if path == "/config.json":
                return self._json(200, self.server.config())
            if self._static(path):
                return None
        route = self.server.local_routes.get(f"{self.command} {path}")
        if route is not None:
            status, payload = route(dict(self.headers.items()), body)
            return self._json(status, payload, PROBLEM_JSON if status >= 400 else "application/json")
        self._invoke(body)
        return None

    def _static(self, path: str) -> bool:
        relative = "index.html" if path == "/" else path.lstrip("/")
        if not relative or relative.startswith(("uploads", "s3/", "openapi")):
            return False
        try:
            target = (self.server.static_dir / relative).resolve()
            if not target.is_file() or self.server.static_dir not in target.parents:
                return False
        except (OSError, ValueError):  # a name too long for the file system, or no file name at all
            return False
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        self._send(200, target.read_bytes(), {"Content-Type": content_type, "Cache-Control": "no-cache"})
        return True

    def _invoke(self, body: bytes) -> None:
        headers = dict(self.headers.items())
        claims = iam = None
        route = f"{self.command} {urlsplit(self.path).path}"
        public = route in self.server.public_routes
        if any(pattern.fullmatch(route) for pattern in self.server.iam_routes):
            # as API Gateway's IAM authorization: a SigV4 signature instead of a token, checked before
            # the function is called; a caller it refuses never reaches the function
            try:
                if self.server.verify_iam is None:
                    raise PermissionError("IAM authorization is not available on this gateway")
                iam = self.server.verify_iam(
                    self.command, f"http://{self.headers.get('Host', '')}{self.path}", headers, body
                )
            except PermissionError as exc:
                return self._problem(problems.FORBIDDEN, str(exc))
        elif self.server.authenticate is not None and not public:
            try:
                claims = self.server.authenticate(headers)
            except PermissionError as exc:
                # as API Gateway's JWT authorizer: the function is never called
                return self._problem(problems.UNAUTHORIZED, str(exc))
        event = api_gateway_event(self.command, self.path, headers, body, self.client_address[0], claims, iam)
        started = time.perf_counter()
        try:
            reply = self.server.api.invoke(event)
        except FunctionTimeout:
            # what API Gateway's HTTP API answers when the function timed out
            return self._problem(problems.FUNCTION_TIMEOUT, "the function timed out (API Gateway answers 503)")
        except FunctionError:
            return self._problem(problems.FUNCTION_ERROR, "the function failed (API Gateway answers 500)")
        status = int(reply.get("statusCode", 200))
        out_headers = {k: str(v) for k, v in (reply.get("headers") or {}).items()}
        for name, values in (reply.get("multiValueHeaders") or {}).items():
            out_headers[name] = ", ".join(values)
        payload = reply.get("body") or ""
        data = base64.b64decode(payload) if reply.get("isBase64Encoded") else payload.encode()
        out_headers.setdefault("Content-Type", "application/json")
        out_headers["X-Local-Duration-Ms"] = f"{(time.perf_counter() - started) * 1000:.1f}"
        self._send(status, data, out_headers)
        return None
