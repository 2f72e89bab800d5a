"""The emulator's request log (local/request_log.py) as a WSGI middleware: counts, and the bodies
it captures on request for the by-hand baseline's replay."""

from __future__ import annotations

import io
import json
from typing import Any

from local.request_log import CAPTURE_LIMIT, PATH, RequestLog

SIGNED = "AWS4-HMAC-SHA256 Credential=AKIDBYHAND/20261202/us-east-1/dynamodb/aws4_request, SignedHeaders=host"


class Echo:
    """The app behind the log: answers with the body it was given."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        self.bodies.append(body)
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]


def call(app: Any, method: str, path: str, body: bytes = b"", query: str = "", **headers: str) -> bytes:
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        **{f"HTTP_{name.upper()}": value for name, value in headers.items()},
    }
    return b"".join(app(environ, lambda status, headers: None))


def put_item(app: Any, body: bytes) -> bytes:
    return call(app, "POST", "/", body, X_AMZ_TARGET="DynamoDB_20120810.PutItem", AUTHORIZATION=SIGNED)


def logged(app: Any) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(call(app, "GET", PATH))
    return result


def test_bodies_are_kept_only_while_capturing_and_the_app_still_gets_each_whole() -> None:
    echo = Echo()
    log = RequestLog(echo)
    first = json.dumps({"TableName": "t", "Item": {"pk": {"S": "before"}}}).encode()
    assert put_item(log, first) == first
    assert logged(log)["bodies"] == []  # not capturing: counted only

    call(log, "DELETE", PATH, query="capture=1")
    wanted = json.dumps({"TableName": "t", "Item": {"pk": {"S": "during"}}}).encode()
    too_long = json.dumps({"TableName": "t", "Item": {"pk": {"S": "x" * 70000}}}).encode()
    assert put_item(log, wanted) == wanted and put_item(log, too_long) == too_long
    got = logged(log)
    assert got["bodies"] == [
        {"principal": "AKIDBYHAND", "service": "dynamodb", "operation": "PutItem", "body": wanted.decode()}
    ]  # a body over the limit is not kept in part
    assert got["requests"] == [{"principal": "AKIDBYHAND", "service": "dynamodb", "operation": "PutItem", "count": 2}]

    call(log, "DELETE", PATH)  # a plain reset stops capturing
    put_item(log, wanted)
    assert logged(log)["bodies"] == []
    assert echo.bodies == [first, wanted, too_long, wanted]


def test_a_capture_keeps_at_most_its_limit() -> None:
    log = RequestLog(Echo())
    call(log, "DELETE", PATH, query="capture=1")
    for n in range(CAPTURE_LIMIT + 5):
        put_item(log, json.dumps({"n": n}).encode())
    bodies = logged(log)["bodies"]
    assert len(bodies) == CAPTURE_LIMIT and json.loads(bodies[-1]["body"]) == {"n": CAPTURE_LIMIT - 1}
