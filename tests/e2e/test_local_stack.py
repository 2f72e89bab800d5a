"""The local stack exactly as a user runs it: real HTTP to the gateway, real uploads to the emulator."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from local.stack import main
from tests.conftest import ROOT, Stack, emulator_client, start_stack, stop_stack, wait_for_status
from tests.support.auth import bearer
from tests.support.samples import png
from tests.support.waiting import eventually


def upload(
    stack: Stack,
    data: bytes,
    filename: str,
    content_type: str,
    profile: str = "avatar",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    reply = requests.post(
        f"{stack.url}/uploads",
        json={"profile": profile, "filename": filename, "contentType": content_type, "size": len(data)},
        headers=headers,
        timeout=10,
    )
    assert reply.status_code == 201, reply.text
    issued = reply.json()
    s3 = requests.post(issued["url"], data=issued["fields"], files={"file": (filename, data, content_type)}, timeout=30)
    assert s3.status_code == 204, s3.text
    return dict(issued)


def test_a_real_png_goes_from_post_to_processed(local_stack: Stack) -> None:
    data = png(120, 80)
    issued = upload(local_stack, data, "sunset at sea.png", "image/png")
    record = wait_for_status(local_stack.url, issued["uploadId"])

    assert record["status"] == "PROCESSED", record
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    assert (record["result"]["width"], record["result"]["height"]) == (120, 80)
    assert record["result"]["contentType"] == "image/png"
    s3 = emulator_client(local_stack)
    thumb = s3.get_object(Bucket=local_stack.info["bucket"], Key=record["result"]["thumbnail"]["key"])["Body"].read()
    assert thumb[:4] == b"RIFF" and thumb[8:12] == b"WEBP"

    events = [e for e in _wait_for_events(local_stack, issued["uploadId"])]
    assert [e["detail-type"] for e in events] == ["Upload Processed"]
    assert events[0]["detail"]["sha256"] == record["sha256"]


def test_a_spoofed_file_is_rejected(local_stack: Stack) -> None:
    elf = b"\x7fELF\x02\x01\x01" + b"\x00" * 1000
    issued = upload(local_stack, elf, "kitten.png", "image/png")
    record = wait_for_status(local_stack.url, issued["uploadId"])
    assert record["status"] == "REJECTED"
    assert record["error"]["code"] == "type-mismatch"
    assert "executable" in record["error"]["message"]


def test_the_demo_config_is_discovered_not_hard_coded(local_stack: Stack) -> None:
    config = requests.get(f"{local_stack.url}/config.json", timeout=5).json()
    assert config["apiBaseUrl"] == local_stack.url
    assert requests.get(f"{local_stack.url}/openapi.json", timeout=5).json()["info"]["title"] == "directupload"


def _wait_for_events(stack: Stack, upload_id: str, timeout: float = 10) -> list[dict[str, Any]]:
    return eventually(
        lambda: [e for e in stack.events() if e["detail"].get("uploadId") == upload_id],
        f"an event for {upload_id} in {stack.state_dir / 'events.jsonl'}",
        timeout,
        interval=0.05,
    )


# --- auth on, as `make run` starts it -------------------------------------------------------------


@pytest.fixture(scope="module")
def secured_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("secured"), auth="jwt")
    yield stack
    stop_stack(stack)


def token(stack: Stack, user: str) -> dict[str, str]:
    return bearer(stack.url, user)


def test_without_a_token_the_gateway_answers_401_like_the_authorizer(secured_stack: Stack) -> None:
    body: dict[str, Any] = {"profile": "avatar", "filename": "a.png", "contentType": "image/png", "size": 10}
    for headers in ({}, {"Authorization": "Bearer not-a-jwt"}, {"Authorization": "Basic YWxpY2U6eA=="}):
        reply = requests.post(f"{secured_stack.url}/uploads", json=body, headers=headers, timeout=5)
        assert reply.status_code == 401
        assert reply.headers["Content-Type"] == "application/problem+json"
    assert requests.get(f"{secured_stack.url}/openapi.json", timeout=5).status_code == 200  # public


def test_tokens_from_make_token_and_the_local_endpoint_both_work(secured_stack: Stack) -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "local.auth", "erin", "--state-dir", str(secured_stack.state_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    data = png(8, 8)
    issued = upload(secured_stack, data, "a.png", "image/png", headers={"Authorization": f"Bearer {printed}"})
    assert (
        wait_for_status(secured_stack.url, issued["uploadId"], headers={"Authorization": f"Bearer {printed}"})["status"]
        == "PROCESSED"
    )


def test_one_user_cannot_see_anothers_upload(secured_stack: Stack) -> None:
    alice, bob = token(secured_stack, "alice"), token(secured_stack, "bob")
    issued = upload(secured_stack, png(4, 4), "a.png", "image/png", headers=alice)
    mine = requests.get(f"{secured_stack.url}/uploads/{issued['uploadId']}", headers=alice, timeout=5)
    theirs = requests.get(f"{secured_stack.url}/uploads/{issued['uploadId']}", headers=bob, timeout=5)
    missing = requests.get(f"{secured_stack.url}/uploads/{'0' * 32}", headers=bob, timeout=5)
    assert mine.status_code == 200
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["title"] == missing.json()["title"]
    assert (
        requests.delete(f"{secured_stack.url}/uploads/{issued['uploadId']}", headers=bob, timeout=5).status_code == 404
    )


def test_the_local_token_route_answers_only_the_stacks_own_pages(secured_stack: Stack) -> None:
    own = secured_stack.url
    for origin, readable in [(own, True), ("https://evil.example", False), ("null", False)]:
        reply = requests.post(f"{own}/local/token", json={"user": "mallory"}, headers={"Origin": origin}, timeout=5)
        assert (reply.headers.get("Access-Control-Allow-Origin") in ("*", origin)) is readable, origin


def raw_exchange(stack: Stack, request: bytes) -> bytes:
    """One connection to the gateway: ``request`` as sent, and everything the gateway answers
    until it closes the connection."""
    host, port = stack.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        answered = b""
        while chunk := connection.recv(65536):
            answered += chunk
    return answered


def problems_in(answered: bytes) -> list[tuple[int, dict[str, Any]]]:
    """The status and problem body of each response in ``answered``."""
    found = []
    for status, body in re.findall(rb"HTTP/1\.1 (\d{3}) [^\r]*\r\n.*?\r\n\r\n(\{.*?\})(?=HTTP/|$)", answered, re.S):
        found.append((int(status), json.loads(body)))
    return found


def test_what_the_gateway_refuses_before_any_route_is_a_problem_with_a_status_line(local_stack: Stack) -> None:
    host = local_stack.url.removeprefix("http://").encode()
    smuggled = b"GET /uploads/" + b"f" * 32 + b" HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"
    cases = {
        # a Content-Length that is no number: read as 0, the body would be the next request
        "length +N": b"POST /uploads HTTP/1.1\r\nHost: %b\r\nContent-Type: application/json\r\n"
        b"Content-Length: +%d\r\n\r\n%b" % (host, len(smuggled), smuggled),
        "a method no route has": b"FOO /uploads HTTP/1.1\r\nHost: %b\r\n\r\n" % host,
        "a request line it cannot parse": b"GET /a b c d\r\n\r\n",
    }
    for name, request in cases.items():
        answered = raw_exchange(local_stack, request + b"GET /profiles HTTP/1.1\r\nHost: %b\r\n\r\n" % host)
        replies = problems_in(answered)
        # one answer, a problem, then the connection closed: nothing after it is read as a request
        assert [status for status, _ in replies] == [400], (name, answered[:300])
        assert replies[0][1]["type"].endswith(":malformed-http") and b"application/problem+json" in answered, name


def test_a_path_too_long_for_a_file_name_is_a_404_problem(local_stack: Stack) -> None:
    for path in ("/" + "a" * 300, "/backend/uploads/" + "a" * 10_000 + "?owner=alice"):
        reply = requests.get(f"{local_stack.url}{path}", timeout=10)
        assert reply.status_code in (403, 404), reply.text  # (the backend route's signature is checked first)
        assert reply.headers["Content-Type"] == "application/problem+json"


def test_the_local_routes_answer_problems_as_problem_json(secured_stack: Stack) -> None:
    own = secured_stack.url
    for route, body in (("/local/token", {"user": "no spaces allowed"}), ("/local/ttl-sweep", {"at": "later"})):
        reply = requests.post(f"{own}{route}", json=body, headers={"Origin": own}, timeout=5)
        assert reply.status_code == 400, reply.text
        assert reply.headers["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("which", ["--port", "--emulator-port"])
def test_a_port_in_use_is_named_before_anything_starts(
    which: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            other = free.getsockname()[1]  # (closed again before the stack would bind it)
        ports = {"--port": other, "--emulator-port": other} | {which: port}
        argv = [arg for name, value in ports.items() for arg in (name, str(value))]
        assert main([*argv, "--state-dir", str(tmp_path)]) == 2
    said = capsys.readouterr().err
    assert f"127.0.0.1:{port} already in use" in said and "make run PORT=" in said
    assert not (tmp_path / "stack.json").exists()
