"""Every AWS request the emulator serves, counted by who made it and which API operation it was.

A WSGI middleware in front of the IAM gate (local/emulator.py). Each request is counted under
(principal, service, operation): the principal is the function whose role's credentials the
request carries (the STS session name the local stack gives each role: ``ApiFunction``,
``ProcessFunction``, ...), wherever it carries them (signed header, presigned URL, presigned POST
form, so a browser's POST with the API's grant counts as the API's); any other key counts under
its access key id (``local`` for the harness). The operation is the API operation AWS bills
(``PutObject``, ``CopyObject``, ``UploadPart``, ``PostObject`` ...), not the IAM action.

A long poll that returns nothing counts apart (``ReceiveMessage (empty)``): on AWS an event
source mapping polls all the time whatever the traffic, so it is no request of an upload.

Counts, not a log: memory stays flat however long the stack runs. Read and reset them at
``/_local/requests`` (GET: the counts as JSON; DELETE: start again from zero), which the request
count benchmark (bench/request_counts.py) and its tests use.

``DELETE /_local/requests?capture=1`` also keeps the bodies of the JSON-protocol requests
(DynamoDB, EventBridge: the ones named by ``X-Amz-Target``) from then on, at most
``CAPTURE_LIMIT`` of them and each whole or not at all, until the next plain DELETE; GET lists
them under ``bodies`` in the order served. The end-to-end benchmark's by-hand baseline replays
the product's own requests from them (bench/end_to_end.py).
"""

from __future__ import annotations

import io
import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

PATH = "/_local/requests"
_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/[^/]+/([^/]+)/aws4_request")
_QUERY_SCOPE = re.compile(r"^([^/]+)/\d{8}/[^/]+/([^/]+)/aws4_request$")
_FORM_CREDENTIAL = re.compile(rb'name="x-amz-credential"\r\n\r\n([^/\r]+)/\d{8}/[^/]+/([^/]+)/aws4_request', re.I)
EMPTY_RECEIVE = "ReceiveMessage (empty)"
CAPTURE_LIMIT = 256  # request bodies kept while capturing
_BODY_LIMIT = 65536  # bytes of one body kept (a longer one is not)


def _sessions() -> dict[str, str]:
    """Access key id -> session name of every role assumed through the emulator's STS."""
    from moto.sts.models import sts_backends

    from local.iam_gate import ACCOUNT

    return {assumed.access_key_id: assumed.session_name for assumed in sts_backends[ACCOUNT]["aws"].assumed_roles}


def _bucket_operation(method: str, query: dict[str, list[str]], form: bool) -> str:
    if method == "POST":
        return "DeleteObjects" if "delete" in query else "PostObject" if form else "PostBucket"
    if method == "HEAD":
        return "HeadBucket"
    if method == "GET":
        if query.get("list-type") == ["2"]:
            return "ListObjectsV2"
        for sub, name in (("uploads", "ListMultipartUploads"), ("versions", "ListObjectVersions")):
            if sub in query:
                return name
        sub = next((name for name in query if not name.startswith(("prefix", "max-", "encoding", "delimiter"))), "")
        return f"GetBucket{sub.title()}" if sub else "ListObjects"
    sub = next(iter(query), "")
    return {"PUT": "CreateBucket" if not sub else f"PutBucket{sub.title()}", "DELETE": "DeleteBucket"}.get(
        method, f"{method}Bucket"
    )


def _object_operation(method: str, query: dict[str, list[str]], copy: bool) -> str:
    if "tagging" in query:
        return {"GET": "GetObjectTagging", "PUT": "PutObjectTagging", "DELETE": "DeleteObjectTagging"}[method]
    if method in ("GET", "HEAD"):
        if "uploadId" in query:
            return "ListParts"
        return "HeadObject" if method == "HEAD" else "GetObject"
    if method == "PUT":
        if "partNumber" in query:
            return "UploadPartCopy" if copy else "UploadPart"
        return "CopyObject" if copy else "PutObject"
    if method == "POST":
        return "CreateMultipartUpload" if "uploads" in query else "CompleteMultipartUpload"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    return f"{method}Object"


def describe(environ: dict[str, Any], body: bytes) -> tuple[str | None, str, str]:
    """(access key id or None, service, operation) of one request."""
    method = str(environ["REQUEST_METHOD"]).upper()
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    authorization = str(environ.get("HTTP_AUTHORIZATION", ""))
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    key: str | None = None
    service = ""
    found = _SCOPE.search(authorization)
    if found:
        key, service = found.group(1), found.group(2)
    else:
        credential = (query.get("X-Amz-Credential") or query.get("x-amz-credential") or [""])[0]
        scoped = _QUERY_SCOPE.match(credential)
        if scoped:
            key, service = scoped.group(1), scoped.group(2)
    content_type = str(environ.get("CONTENT_TYPE", "")).lower()
    form = method == "POST" and content_type.startswith("multipart/form-data")
    if key is None and form:
        posted = _FORM_CREDENTIAL.search(body[:65536])
        if posted:
            key, service = posted.group(1).decode(), posted.group(2).decode()
    if target:
        return key, service or "dynamodb", target.rsplit(".", 1)[-1]
    if service and service != "s3":
        action = (query.get("Action") or parse_qs(body.decode("utf-8", "replace")).get("Action") or [""])[0]
        return key, service, action or method
    if method == "OPTIONS":
        return key, "s3", "OPTIONS (preflight)"
    bucket, _, object_key = str(environ.get("PATH_INFO", "/")).lstrip("/").partition("/")
    if not bucket:
        return key, "s3", "ListBuckets"
    if not object_key:
        return key, "s3", _bucket_operation(method, query, form)
    return key, "s3", _object_operation(method, query, bool(environ.get("HTTP_X_AMZ_COPY_SOURCE")))


class RequestLog:
    """Counts the requests that pass through to ``app``; serves the counts at ``PATH``."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self.lock = threading.Lock()
        self.bodies: list[dict[str, Any]] | None = None  # a list while capturing

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            items = sorted(self.counts.items())
        return [
            {"principal": principal, "service": service, "operation": operation, "count": count}
            for (principal, service, operation), count in items
        ]

    def reset(self, *, capture: bool = False) -> None:
        with self.lock:
            self.counts.clear()
            self.bodies = [] if capture else None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == PATH:
            return self._serve(environ, start_response)
        body = b""
        if str(environ.get("CONTENT_TYPE", "")).lower().startswith("multipart/form-data"):
            body = self._peek(environ)
        elif environ.get("HTTP_X_AMZ_TARGET") is None and str(environ.get("REQUEST_METHOD")).upper() == "POST":
            body = self._peek(environ)  # a query-protocol request names its Action in the body
        elif self.bodies is not None and environ.get("HTTP_X_AMZ_TARGET"):
            body = self._peek(environ, _BODY_LIMIT + 1)  # captured below
        try:
            key, service, operation = describe(environ, body)
        except Exception:  # noqa: BLE001 - counting must never break a request
            key, service, operation = None, "unknown", "unknown"
        principal = _sessions().get(key or "", key or "anonymous")
        if self.bodies is not None and environ.get("HTTP_X_AMZ_TARGET") and len(body) <= _BODY_LIMIT:
            self._keep(principal, service, operation, body)
        if operation != "ReceiveMessage":
            self._count(principal, service, operation)
            return self.app(environ, start_response)
        # a receive counts apart when it brought nothing: read its (small) answer
        reply = b"".join(self.app(environ, start_response))
        self._count(principal, service, operation if b'"MessageId"' in reply else EMPTY_RECEIVE)
        return [reply]

    def _keep(self, principal: str, service: str, operation: str, body: bytes) -> None:
        entry = {"principal": principal, "service": service, "operation": operation}
        with self.lock:
            if self.bodies is not None and len(self.bodies) < CAPTURE_LIMIT:
                self.bodies.append({**entry, "body": body.decode("utf-8", "replace")})

    def _count(self, principal: str, service: str, operation: str) -> None:
        with self.lock:
            self.counts[(principal, service, operation)] += 1

    @staticmethod
    def _peek(environ: dict[str, Any], limit: int = 65536) -> bytes:
        """The first ``limit`` bytes of the request body, put back for the app (a form's fields come
        before its file, so they are in there; the file itself is never read into memory)."""
        raw = environ.get("CONTENT_LENGTH")
        try:
            length = int(str(raw)) if raw not in (None, "") else 0
        except ValueError:
            return b""
        if length <= 0:
            return b""
        stream = environ["wsgi.input"]
        head: bytes = stream.read(min(length, limit))
        environ["wsgi.input"] = io.BufferedReader(_Rejoined(head, stream, length - len(head)))
        return head

    def _serve(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD")).upper()
        if method == "DELETE":
            query = parse_qs(environ.get("QUERY_STRING", ""))
            self.reset(capture=query.get("capture") == ["1"])
        elif method != "GET":
            start_response("405 Method Not Allowed", [("Content-Length", "0")])
            return [b""]
        with self.lock:
            bodies = list(self.bodies or [])
        data = json.dumps({"requests": self.snapshot(), "bodies": bodies}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]


class _Rejoined(io.RawIOBase):
    """The bytes already read from a stream, then the ``left`` bytes after them (never more: the
    stream is a kept-alive socket, and reading past the body would wait for the next request)."""

    def __init__(self, head: bytes, rest: Any, left: int) -> None:
        self.head = memoryview(head)
        self.rest = rest
        self.left = left

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.head:
            n = min(len(buffer), len(self.head))
            buffer[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        if self.left <= 0:
            return 0
        data = self.rest.read(min(len(buffer), self.left))
        self.left -= len(data)
        buffer[: len(data)] = data
        return len(data)
