"""The CLI (client-demo/cli/directupload_cli.py) as a person runs it, against the local stack as
`make run` starts it (auth on): a multipart upload killed half way, resumed, and processed."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import ROOT, Stack, start_stack, stop_stack

CLI = ROOT / "client-demo" / "cli" / "directupload_cli.py"
MiB = 1024 * 1024
# An ISO BMFF `ftyp` box: what makes the sniffer see video/mp4.
FTYP = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("stack"), auth="jwt")
    yield stack
    stop_stack(stack)


def token(stack: Stack, user: str = "demo-user") -> dict[str, str]:
    """The local stack's sign-in, as the CLI does it for itself."""
    reply = requests.post(f"{stack.url}/local/token", json={"user": user}, timeout=10)
    reply.raise_for_status()
    return {"Authorization": f"Bearer {reply.json()['token']}"}


def cli(stack: Stack, *args: str, state_dir: Path) -> list[str]:
    return [sys.executable, str(CLI), "upload", *args, "--api", stack.url, "--state-dir", str(state_dir)]


def run(command: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIRECTUPLOAD_")}
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def wait_until(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout}s: {what}")


def test_a_killed_multipart_upload_resumes_and_is_processed(stack: Stack, tmp_path: Path) -> None:
    # Given a 64 MiB video: four 16 MiB parts for the `video` profile
    video = tmp_path / "holiday.mp4"
    data = FTYP + os.urandom(64 * MiB - len(FTYP))
    video.write_bytes(data)
    state_dir = tmp_path / "state"
    auth = token(stack)

    # When the CLI is killed (SIGKILL: no chance to clean up) after some parts landed in S3
    first = subprocess.Popen(
        cli(stack, str(video), "--profile", "video", "--concurrency", "1", "--limit-rate", "24M", state_dir=state_dir),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        state = wait_until(lambda: next(state_dir.glob("*.json"), None), 20, "the CLI's state file")
        upload_id = json.loads(state.read_text())["uploadId"]

        def landed() -> list[dict[str, Any]]:
            reply = requests.get(f"{stack.url}/uploads/{upload_id}/parts", headers=auth, timeout=10)
            return list(reply.json().get("parts", [])) if reply.ok else []

        wait_until(landed, 20, "a first part in S3")
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        _, first_err = first.communicate(timeout=10)
    assert first.returncode == -signal.SIGKILL
    before = landed()
    assert 1 <= len(before) < 4, before
    # the state file survives the kill; the CLI said how to resume before it sent anything
    assert state.exists()
    assert f"--resume {upload_id}" in first_err.decode()

    # Then --resume sends only the missing parts, completes, and waits for processing
    second = run(cli(stack, str(video), "--profile", "video", "--resume", upload_id, "--json", state_dir=state_dir))
    assert second.returncode == 0, second.stderr
    assert f"resuming upload {upload_id}: {len(before)} of 4 parts already in S3" in second.stderr
    record = json.loads(second.stdout)
    assert record["uploadId"] == upload_id and record["status"] == "PROCESSED", record
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    assert record["size"] == len(data) and record["result"]["contentType"] == "video/mp4"
    assert record["multipart"] == {"partSize": 16 * MiB, "partCount": 4}
    assert not state.exists()  # done: nothing left to resume


def test_a_small_file_goes_as_one_post_and_prints_the_outcome(stack: Stack, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("one line\n")
    done = run(cli(stack, str(notes), "--profile", "file", "--json", state_dir=tmp_path / "state"))
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "PROCESSED" and record["sha256"] == hashlib.sha256(b"one line\n").hexdigest()
    assert "one POST" in done.stderr and "multipart" not in record


@pytest.mark.parametrize(
    ("setup", "args", "code", "message"),
    [
        ("text", ["--profile", "nope"], 3, "422 Unknown upload profile: no profile named 'nope'"),
        ("text", ["--profile", "avatar"], 3, "415 Content type not allowed"),
        ("text", ["--profile", "video", "--content-type", "video/mp4"], 5, "REJECTED"),
        ("missing", ["--profile", "file"], 2, "no such file"),
        ("text", [], 2, "--profile is required"),
        ("text", ["--profile", "file", "--resume", "0" * 32], 3, "404 Not found"),
    ],
)
def test_failures_say_what_went_wrong_and_exit_with_their_code(
    stack: Stack, tmp_path: Path, setup: str, args: list[str], code: int, message: str
) -> None:
    path = tmp_path / "file.txt"
    if setup == "text":
        path.write_text("plain text\n")
    done = run(cli(stack, str(path), *args, state_dir=tmp_path / "state"))
    assert done.returncode == code, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unreachable_api_is_a_network_failure(tmp_path: Path) -> None:
    path = tmp_path / "file.txt"
    path.write_text("x")
    done = run([sys.executable, str(CLI), "upload", str(path), "--profile", "file", "--api", "http://127.0.0.1:9"])
    assert done.returncode == 4
    assert "cannot reach the API at http://127.0.0.1:9" in done.stderr
