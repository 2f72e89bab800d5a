"""The CLI's part transfers against a scripted API + S3 over real HTTP: parts in parallel but never
more than --concurrency, URLs signed in small batches ahead of the senders (each part once, with
its SHA-256 when the upload takes part checksums) and again after S3's 403,
failed parts retried, SIGTERM answered with how to resume; the API's profiles checked before any
request."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from tests.cli import CLI, cli_env
from tests.support.servers import QuietHTTPServer

UPLOAD_ID = "a" * 32
PART = 1024 * 1024


def b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


class Script:
    """What the fake API and S3 saw, and how S3 misbehaves."""

    def __init__(self, part_count: int, fail: dict[int, list[int]], stall: float = 0.0) -> None:
        self.part_count = part_count
        # what GET /profiles answers (not the real stack's profiles: the CLI must learn these)
        self.profiles: dict[str, Any] | None = {
            "profiles": [{"name": "video", "contentTypes": ["video/*"], "minSize": 1, "maxSize": 64 * PART}]
        }
        self.requests: list[str] = []
        self.fail = fail  # part number -> statuses its first PUTs get
        self.stall = stall
        self.lock = threading.Lock()
        self.signed: list[list[int]] = []
        self.puts: list[int] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.completed: list[dict[str, Any]] | None = None
        self.body = b""
        # S3 checks part checksums (an upload opened with partChecksums), as S3 does
        self.part_checksums = False
        self.issue_request: dict[str, Any] = {}
        self.signed_checksums: dict[int, list[str]] = {}
        self.damaged: set[int] = set()  # parts whose first PUT arrives damaged (S3: BadDigest)
        self.sign_failures = 0  # how many parts calls answer 503 before the API recovers
        # PUTs are held (up to 5 s) until this many were in flight at once: the overlap does not
        # depend on how fast the machine starts the CLI's threads
        self.meet = 0
        self.upload_id = UPLOAD_ID  # what the API answers as the new upload's id


def handler(script: Script) -> type[BaseHTTPRequestHandler]:  # noqa: C901 - a fake S3, a branch per scripted fault
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def reply(self, status: int, body: Any = None, content_type: str = "application/json") -> None:
            data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            if status == 200 and self.command == "PUT":
                self.send_header("ETag", f'"{hashlib.md5(self.data).hexdigest()}"')
            self.end_headers()
            self.wfile.write(data)

        def read(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def record(self, status: str) -> dict[str, Any]:
            return {
                "uploadId": script.upload_id,
                "status": status,
                "profile": "video",
                "filename": "f.mp4",
                "key": f"incoming/{UPLOAD_ID}/f.mp4",
                "contentType": "video/mp4",
                "size": len(script.body),
                "sha256": hashlib.sha256(script.body).hexdigest(),
                "multipart": self.plan(),
            }

        def plan(self) -> dict[str, Any]:
            plan: dict[str, Any] = {"partSize": PART, "partCount": script.part_count}
            if script.part_checksums:
                plan["checksumAlgorithm"] = "SHA256"
            return plan

        def do_POST(self) -> None:
            script.requests.append(f"POST {self.path}")
            body = json.loads(self.read() or b"{}")
            if self.path == "/uploads":
                script.issue_request = body
                self.reply(
                    201,
                    {
                        "uploadId": script.upload_id,
                        "key": f"incoming/{UPLOAD_ID}/f.mp4",
                        "expiresAt": "2099-01-01T00:00:00Z",
                        "multipart": self.plan(),
                    },
                )
            elif self.path.endswith("/parts"):
                with script.lock:
                    failing = script.sign_failures > 0
                    script.sign_failures -= failing
                if failing:
                    self.reply(503, {"title": "Service Unavailable", "status": 503, "detail": "try again"})
                    return
                numbers = body.get("partNumbers") or [p["partNumber"] for p in body["parts"]]
                with script.lock:
                    script.signed.append(numbers)
                    version = len(script.signed)
                    for part in body.get("parts", []):
                        script.signed_checksums.setdefault(part["partNumber"], []).append(part["checksumSha256"])
                expires = (datetime.now(UTC) + timedelta(minutes=15)).isoformat()
                host = f"http://127.0.0.1:{self.server.server_address[1]}"  # type: ignore[index]  # AF_INET
                self.reply(
                    200,
                    {
                        "parts": [
                            {"partNumber": n, "url": f"{host}/s3/{n}?v={version}", "expiresAt": expires}
                            for n in numbers
                        ]
                    },
                )
            elif self.path.endswith("/complete"):
                script.completed = body["parts"]
                self.reply(200, self.record("PENDING"))
            else:
                self.reply(404, {"title": "Not found", "status": 404, "detail": self.path})

        def do_GET(self) -> None:
            script.requests.append(f"GET {self.path}")
            if self.path == "/profiles" and script.profiles is not None:
                self.reply(200, script.profiles)
            elif self.path in ("/config.json", "/profiles"):
                self.reply(404, {"title": "Not found", "status": 404, "detail": "no config"})
            else:
                self.reply(200, self.record("PROCESSED" if script.completed else "PENDING"))

        def do_PUT(self) -> None:
            n = int(re.match(r"/s3/(\d+)", self.path).group(1))  # type: ignore[union-attr]
            with script.lock:
                script.in_flight += 1
                script.max_in_flight = max(script.max_in_flight, script.in_flight)
                script.puts.append(n)
                failures = script.fail.get(n, [])
                status = failures.pop(0) if failures else 200
            try:
                self.data = self.read()
                deadline = time.monotonic() + 5
                while script.max_in_flight < script.meet and time.monotonic() < deadline:
                    time.sleep(0.005)
                time.sleep(script.stall or 0.02)  # long enough for the workers to overlap
                if script.part_checksums:
                    with script.lock:
                        damaged = n in script.damaged
                        script.damaged.discard(n)
                    data = self.data[:-1] + bytes([self.data[-1] ^ 1]) if damaged else self.data
                    sent = self.headers.get("x-amz-checksum-sha256")
                    # the URL signed the checksum: S3 takes only that header value, and only bytes matching it
                    if sent != script.signed_checksums.get(n, [None])[-1] or sent != b64_sha256(data):
                        status = 400
                if status == 400:
                    self.reply(
                        400,
                        b"<Error><Code>BadDigest</Code><Message>The SHA256 you specified did not match the "
                        b"calculated checksum.</Message></Error>",
                        "application/xml",
                    )
                elif status == 403:
                    self.reply(
                        403,
                        b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                        "application/xml",
                    )
                elif status != 200:
                    self.reply(
                        status,
                        b"<Error><Code>InternalError</Code><Message>try again</Message></Error>",
                        "application/xml",
                    )
                else:
                    self.reply(200)
            finally:
                with script.lock:
                    script.in_flight -= 1

    return Handler


def command(url: str, path: Path, *extra: str) -> list[str]:
    state = str(path.parent / "state")
    return [
        *CLI,
        "upload",
        str(path),
        "--profile",
        "video",
        "--api",
        url,
        "--state-dir",
        state,
        *extra,
    ]


@pytest.fixture
def fake() -> Iterator[tuple[Script, str]]:
    script = Script(part_count=12, fail={2: [403], 3: [500, 503]})
    server = QuietHTTPServer(("127.0.0.1", 0), handler(script))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield script, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_parts_go_in_parallel_within_the_limit_signed_just_in_time_and_retried(
    fake: tuple[Script, str], tmp_path: Path
) -> None:
    script, url = fake
    script.meet = 3
    data = bytes(range(256)) * (12 * PART // 256 - 10)  # the last part is short
    script.body = data
    path = tmp_path / "f.mp4"
    path.write_bytes(data)

    done = subprocess.run(
        command(url, path, "--concurrency", "3", "--json"), capture_output=True, text=True, timeout=60, env=cli_env()
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "PROCESSED"
    # every part once in the completion, with the ETag S3 gave for its bytes
    assert script.completed == [
        {"partNumber": n, "etag": hashlib.md5(data[(n - 1) * PART : n * PART]).hexdigest()} for n in range(1, 13)
    ]
    # parallel, never beyond --concurrency
    assert script.max_in_flight == 3
    # signed a few at a time, not all up front; part 2 signed again after S3's 403
    assert len(script.signed[0]) < 12 and all(len(batch) <= 8 for batch in script.signed)
    assert sum(batch.count(2) for batch in script.signed) == 2
    assert all(sum(batch.count(n) for batch in script.signed) == 1 for n in range(1, 13) if n != 2)
    # the 500 and the 503 retried: part 3 went three times, the others once (part 2 twice)
    assert script.puts.count(3) == 3 and script.puts.count(2) == 2
    assert all(script.puts.count(n) == 1 for n in range(4, 13))


def test_part_checksums_are_signed_sent_and_a_damaged_part_is_sent_again(
    fake: tuple[Script, str], tmp_path: Path
) -> None:
    # Given an API that opened the upload for part checksums, and a part damaged on its way once
    script, url = fake
    script.part_checksums, script.fail, script.part_count = True, {}, 4
    script.damaged = {3}
    data = bytes(range(256)) * (4 * PART // 256 - 3)
    script.body = data
    path = tmp_path / "f.mp4"
    path.write_bytes(data)

    done = subprocess.run(command(url, path, "--json"), capture_output=True, text=True, timeout=60, env=cli_env())

    # Then the CLI asked for them, signed each part with its SHA-256, and sent part 3 again
    assert done.returncode == 0, done.stderr
    assert script.issue_request["partChecksums"] is True
    pieces = {n: data[(n - 1) * PART : n * PART] for n in range(1, 5)}
    assert {n: set(sums) for n, sums in script.signed_checksums.items()} == {
        n: {b64_sha256(piece)} for n, piece in pieces.items()
    }
    assert script.puts.count(3) == 2 and all(script.puts.count(n) == 1 for n in (1, 2, 4))
    assert [p["partNumber"] for p in script.completed or []] == [1, 2, 3, 4]


def test_checksummed_parts_are_hashed_and_signed_once_each_ahead_in_batches(
    fake: tuple[Script, str], tmp_path: Path
) -> None:
    # Given an upload opened for part checksums, 12 parts, 2 in flight
    script, url = fake
    script.part_checksums, script.fail, script.part_count = True, {}, 12
    data = bytes(range(256)) * (12 * PART // 256 - 5)
    script.body = data
    path = tmp_path / "f.mp4"
    path.write_bytes(data)

    done = subprocess.run(
        command(url, path, "--concurrency", "2", "--no-wait", "--json"),
        capture_output=True,
        text=True,
        timeout=60,
        env=cli_env(),
    )

    # Then every part was signed once, with its own SHA-256: the first batch what the parts in
    # flight need, the next ones a few at a time
    assert done.returncode == 1, done.stderr  # sent and completed, not processed yet (--no-wait)
    assert sorted(n for batch in script.signed for n in batch) == list(range(1, 13))
    assert script.signed_checksums == {n: [b64_sha256(data[(n - 1) * PART : n * PART])] for n in range(1, 13)}
    assert len(script.signed[0]) == 2 and all(len(batch) <= 8 for batch in script.signed)
    assert [p["partNumber"] for p in script.completed or []] == list(range(1, 13))
    # and the record printed is the one completing answered: nothing asked after it
    assert json.loads(done.stdout)["uploadId"] == UPLOAD_ID
    assert script.requests[-1] == f"POST /uploads/{UPLOAD_ID}/complete"


def test_parts_still_go_when_signing_ahead_keeps_failing(fake: tuple[Script, str], tmp_path: Path) -> None:
    # Given an API whose first parts calls fail (503), more times than one request is retried
    script, url = fake
    script.part_checksums, script.fail, script.part_count = True, {}, 3
    script.sign_failures = 4
    data = b"z" * (3 * PART - 7)
    script.body = data
    path = tmp_path / "f.mp4"
    path.write_bytes(data)

    done = subprocess.run(command(url, path, "--json"), capture_output=True, text=True, timeout=60, env=cli_env())

    # Then the senders signed the parts themselves once the API recovered, and the upload completed
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "PROCESSED"
    assert script.requests.count(f"POST /uploads/{UPLOAD_ID}/parts") == 4 + len(script.signed)
    assert sorted(n for batch in script.signed for n in batch) == [1, 2, 3]
    assert [p["partNumber"] for p in script.completed or []] == [1, 2, 3]


def test_a_part_that_keeps_failing_ends_with_its_reason_and_how_to_resume(
    fake: tuple[Script, str], tmp_path: Path
) -> None:
    script, url = fake
    script.part_count = 2
    script.fail = {2: [500] * 10}
    path = tmp_path / "f.mp4"
    path.write_bytes(b"x" * (PART + 10))

    done = subprocess.run(
        command(url, path, "--retries", "1"), capture_output=True, text=True, timeout=60, env=cli_env()
    )

    assert done.returncode == 4, done.stderr
    assert "part 2 failed 2 times, last: InternalError: try again" in done.stderr
    assert f"--resume {UPLOAD_ID}" in done.stderr
    assert script.completed is None


def test_sigterm_stops_the_upload_and_says_how_to_resume(fake: tuple[Script, str], tmp_path: Path) -> None:
    script, url = fake
    script.stall = 30  # S3 is slow: the parts are still in flight
    path = tmp_path / "f.mp4"
    path.write_bytes(b"x" * 12 * PART)
    process = subprocess.Popen(
        command(url, path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env()
    )
    try:
        deadline = time.monotonic() + 20
        while not script.puts and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "interrupted; resume with:" in err and f"--resume {UPLOAD_ID}" in err
    assert (tmp_path / "state" / f"{UPLOAD_ID}.json").exists()


def test_the_profiles_limits_are_the_apis_checked_before_any_request(fake: tuple[Script, str], tmp_path: Path) -> None:
    # Given an API whose `video` profile takes at most 2 MiB (the real one takes GiBs: the CLI
    # knows only what GET /profiles says)
    script, url = fake
    script.profiles = {"profiles": [{"name": "video", "contentTypes": ["video/*"], "minSize": 1, "maxSize": 2 * PART}]}
    path = tmp_path / "f.mp4"
    path.write_bytes(b"x" * (2 * PART + 1))

    # When a file one byte over it is uploaded
    done = subprocess.run(command(url, path), capture_output=True, text=True, timeout=60, env=cli_env())

    # Then the CLI refuses it with the exit code of the API's refusal, and asked nothing but the profiles
    assert done.returncode == 3, done.stderr
    assert f"refused before sending anything: {2 * PART + 1} bytes" in done.stderr
    assert f"over the 'video' limit of {2 * PART} bytes" in done.stderr
    assert [r for r in script.requests if r != "GET /config.json"] == ["GET /profiles"]


def test_an_api_without_profiles_leaves_the_checks_to_the_server(fake: tuple[Script, str], tmp_path: Path) -> None:
    # Given an API that has no GET /profiles (it answers 404)
    script, url = fake
    script.profiles = None
    script.part_count = 2
    data = b"y" * (PART + 10)
    script.body = data
    path = tmp_path / "f.mp4"
    path.write_bytes(data)

    # Then the upload goes as before: the server decides
    done = subprocess.run(command(url, path, "--json"), capture_output=True, text=True, timeout=60, env=cli_env())

    assert done.returncode == 0, done.stderr
    assert "POST /uploads" in script.requests and script.completed is not None


@pytest.mark.parametrize("answered", ["../victim", "{tmp}/victim", "A" * 32, ""])
def test_an_upload_id_that_is_not_one_is_refused_before_anything_is_written(
    fake: tuple[Script, str], tmp_path: Path, answered: str
) -> None:
    # Given an API that answers a new upload with an id that is a path (or no id at all)
    script, url = fake
    script.part_count = 2
    script.upload_id = answered.format(tmp=tmp_path)  # ../victim: the state file would be tmp/victim.json
    victim = tmp_path / "victim.json"
    victim.write_text('{"kept": true}')
    path = tmp_path / "f.mp4"
    path.write_bytes(b"v" * (PART + 10))

    done = subprocess.run(command(url, path), capture_output=True, text=True, timeout=60, env=cli_env())

    # Then the CLI stops with the API's refusal, sends no bytes and touches no file of the user's
    assert done.returncode == 3, done.stderr
    assert "upload id that is not one" in done.stderr
    assert victim.read_text() == '{"kept": true}'
    assert not (tmp_path / "state").exists() or list((tmp_path / "state").iterdir()) == []
    assert script.puts == [] and not any(r.endswith(("/parts", "/complete")) for r in script.requests)
