"""The CLI (the client-demo/cli package, run from source) as a person runs it, against the local
stack as `make run` starts it (auth on): a multipart upload killed half way, resumed, and
processed; a processed file downloaded and verified, listed, deleted."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from directupload_cli.download import bare_name
from tests.cli import CLI, cli_env
from tests.conftest import ROOT, Stack, emulator_client, start_stack, stop_stack
from tests.support.auth import bearer
from tests.support.samples import png
from tests.support.waiting import eventually

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
    return bearer(stack.url, user)


def cli(stack: Stack, *args: str, state_dir: Path) -> list[str]:
    return [*CLI, "upload", *args, "--api", stack.url, "--state-dir", str(state_dir)]


def run(
    command: list[str], timeout: float = 120, cwd: Path = ROOT, user: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = cli_env()
    if user:
        env["DIRECTUPLOAD_USER"] = user  # whom the CLI signs in as on the local stack
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def command(stack: Stack, *args: str) -> list[str]:
    return [*CLI, *args, "--api", stack.url]


def killed_half_way(stack: Stack, video: Path, state_dir: Path) -> tuple[str, list[dict[str, Any]], Path, str]:
    """The CLI uploading ``video`` killed (SIGKILL: no chance to clean up) once some parts landed
    in S3: the upload id, the parts S3 held then, the state file, what the CLI had said."""
    auth = token(stack)
    first = subprocess.Popen(
        cli(stack, str(video), "--profile", "video", "--concurrency", "1", "--limit-rate", "24M", state_dir=state_dir),
        cwd=ROOT,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        state = eventually(lambda: next(state_dir.glob("*.json"), None), "the CLI's state file", 20, interval=0.02)
        upload_id = json.loads(state.read_text())["uploadId"]

        def landed() -> list[dict[str, Any]]:
            reply = requests.get(f"{stack.url}/uploads/{upload_id}/parts", headers=auth, timeout=10)
            return list(reply.json().get("parts", [])) if reply.ok else []

        eventually(landed, "a first part in S3", 20, interval=0.02)
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        _, first_err = first.communicate(timeout=10)
    assert first.returncode == -signal.SIGKILL
    return upload_id, landed(), state, first_err.decode()


def test_a_killed_multipart_upload_resumes_and_is_processed(stack: Stack, tmp_path: Path) -> None:
    # Given a 64 MiB video: four 16 MiB parts for the `video` profile
    video = tmp_path / "holiday.mp4"
    data = FTYP + os.urandom(64 * MiB - len(FTYP))
    video.write_bytes(data)
    state_dir = tmp_path / "state"

    # When the CLI is killed after some parts landed in S3
    upload_id, before, state, first_err = killed_half_way(stack, video, state_dir)
    assert 1 <= len(before) < 4, before
    # the state file survives the kill; the CLI said how to resume before it sent anything
    assert state.exists()
    assert f"--resume {upload_id}" in first_err

    # Then --resume sends only the missing parts, completes, and waits for processing
    second = run(cli(stack, str(video), "--profile", "video", "--resume", upload_id, "--json", state_dir=state_dir))
    assert second.returncode == 0, second.stderr
    # (a part whose bytes were all sent before the kill may land a moment after ``before`` was listed)
    resumed = re.search(rf"resuming upload {upload_id}: (\d) of 4 parts already in S3", second.stderr)
    assert resumed is not None, second.stderr
    assert len(before) <= int(resumed.group(1)) < 4, second.stderr
    record = json.loads(second.stdout)
    assert record["uploadId"] == upload_id and record["status"] == "PROCESSED", record
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    assert record["size"] == len(data) and record["result"]["contentType"] == "video/mp4"
    assert record["multipart"] == {"partSize": 16 * MiB, "partCount": 4, "checksumAlgorithm": "SHA256"}
    assert not state.exists()  # done: nothing left to resume


def test_a_resume_with_other_bytes_of_the_same_size_sends_every_part_of_them(stack: Stack, tmp_path: Path) -> None:
    # Given an upload killed half way, and its file then replaced by another of the same size
    video = tmp_path / "holiday.mp4"
    video.write_bytes(FTYP + os.urandom(64 * MiB - len(FTYP)))
    state_dir = tmp_path / "state"
    upload_id, before, _, _ = killed_half_way(stack, video, state_dir)
    assert before
    other = FTYP + os.urandom(64 * MiB - len(FTYP))
    video.write_bytes(other)

    # When it is resumed
    second = run(cli(stack, str(video), "--profile", "video", "--resume", upload_id, "--json", state_dir=state_dir))

    # Then no part of the first bytes is kept: what is processed is the file as it is now
    assert second.returncode == 0, second.stderr
    assert f"resuming upload {upload_id}: 0 of 4 parts already in S3" in second.stderr
    record = json.loads(second.stdout)
    assert record["status"] == "PROCESSED" and record["sha256"] == hashlib.sha256(other).hexdigest()


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
        # what the API's GET /profiles says it would refuse is refused before any request, exit 3 as
        # the server's refusal
        ("text", ["--profile", "nope"], 3, "refused before sending anything: the API has no profile named 'nope'"),
        (
            "text",
            ["--profile", "avatar"],
            3,
            "refused before sending anything: profile 'avatar' does not take text/plain",
        ),
        # what passes the CLI's checks the server still checks, and its problem reaches the user
        (
            "text",
            ["--profile", "file", "--content-type", "image/svg+xml"],
            3,
            "refused POST /uploads: 415 Content type not allowed: profile 'file' does not accept 'image/svg+xml'",
        ),
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


def test_a_file_over_its_profiles_limit_is_refused_before_any_request(stack: Stack, tmp_path: Path) -> None:
    # Given a file one byte over what the API's profiles say `avatar` takes
    profiles = requests.get(f"{stack.url}/profiles", timeout=10).json()["profiles"]
    limit = next(p["maxSize"] for p in profiles if p["name"] == "avatar")
    path = tmp_path / "huge.png"
    with path.open("wb") as handle:
        handle.truncate(limit + 1)

    # When it is uploaded, the CLI refuses it itself, with the exit code of the API's 413
    done = run(cli(stack, str(path), "--profile", "avatar", state_dir=tmp_path / "state"))

    assert done.returncode == 3, done.stderr
    assert f"refused before sending anything: {limit + 1} bytes" in done.stderr
    assert f"over the 'avatar' limit of {limit} bytes" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unreachable_api_is_a_network_failure(tmp_path: Path) -> None:
    path = tmp_path / "file.txt"
    path.write_text("x")
    done = run([*CLI, "upload", str(path), "--profile", "file", "--api", "http://127.0.0.1:9"])
    assert done.returncode == 4
    assert "cannot reach the API at http://127.0.0.1:9" in done.stderr


# --- the read side: download, list, delete ------------------------------------------------------------


def uploaded(stack: Stack, path: Path, data: bytes, profile: str, user: str | None = None) -> dict[str, Any]:
    """``path`` with ``data`` in it, uploaded with the CLI and processed: the record."""
    path.write_bytes(data)
    done = run(command(stack, "upload", str(path), "--profile", profile, "--json", "--quiet"), user=user)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "PROCESSED", record
    return dict(record)


def test_a_processed_upload_downloads_byte_for_byte_and_verified(stack: Stack, tmp_path: Path) -> None:
    # Given a processed upload
    data = os.urandom(300 * 1024)
    record = uploaded(stack, tmp_path / "field notes.bin", data, "file")
    here = tmp_path / "downloads"
    here.mkdir()

    # When it is downloaded with no -o: under its own name, in the current directory
    done = run(command(stack, "download", record["uploadId"], "--json"), cwd=here)

    # Then the bytes are the original's, checked against the API's SHA-256, and no temporary file stays
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    saved = here / "field notes.bin"
    # (the result first: if the file is not where it should be, the result says where it went)
    assert result == {
        "uploadId": record["uploadId"],
        "variant": None,
        "path": str(saved),
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "contentType": "application/octet-stream",
        "checked": ["size", "sha256"],
    }, (done.stdout, done.stderr, record.get("filename"))
    assert saved.read_bytes() == data
    assert sorted(p.name for p in here.iterdir()) == ["field notes.bin"]

    # an existing file is kept unless --force
    saved.write_bytes(b"mine")
    again = run(command(stack, "download", record["uploadId"]), cwd=here)
    assert again.returncode == 2 and "exists" in again.stderr and "--force" in again.stderr
    assert saved.read_bytes() == b"mine"
    forced = run(command(stack, "download", record["uploadId"], "--force"), cwd=here)
    assert forced.returncode == 0, forced.stderr
    assert saved.read_bytes() == data and "SHA-256 verified" in forced.stderr

    # -o names the file exactly
    other = run(command(stack, "download", record["uploadId"], "-o", str(tmp_path / "copy.dat")))
    assert other.returncode == 0, other.stderr
    assert (tmp_path / "copy.dat").read_bytes() == data


def test_the_thumbnail_of_a_png_downloads_as_webp(stack: Stack, tmp_path: Path) -> None:
    record = uploaded(stack, tmp_path / "sunset.png", png(160, 90), "avatar")
    assert record["variants"] == ["thumbnail"]

    done = run(command(stack, "download", record["uploadId"], "--variant", "thumbnail", "-o", str(tmp_path), "--json"))

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    thumbnail = tmp_path / "sunset-thumbnail.webp"  # the name the API signed into the URL
    assert result["path"] == str(thumbnail) and result["contentType"] == "image/webp"
    data = thumbnail.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    assert result["checked"] == ["size", "sha256"]  # a variant has its own SHA-256 too
    assert result["sha256"] == hashlib.sha256(data).hexdigest()

    unknown = run(command(stack, "download", record["uploadId"], "--variant", "poster", "-o", str(tmp_path)))
    assert unknown.returncode == 3, unknown.stderr
    assert "404 Not found: the upload has no variant 'poster'" in unknown.stderr
    assert "its variants: thumbnail" in unknown.stderr


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda data: bytes([data[0] ^ 1]) + data[1:], "the downloaded bytes are not the verified file: SHA-256"),
        (lambda data: data + b"!", "S3 sent more than the 4096 bytes the API announced"),
        (lambda data: data[:-1], "S3 sent 4095 bytes, the API announced 4096"),
    ],
    ids=["same-size", "longer", "shorter"],
)
def test_bytes_changed_in_s3_are_caught_and_nothing_is_saved(
    stack: Stack, tmp_path: Path, tamper: Any, message: str
) -> None:
    # Given a processed upload whose stored object then changed behind the API's back
    data = os.urandom(4096)
    record = uploaded(stack, tmp_path / "ledger.bin", data, "file")
    s3 = emulator_client(stack)
    s3.put_object(Bucket=stack.info["bucket"], Key=record["key"], Body=tamper(data))
    here = tmp_path / "downloads"
    here.mkdir()

    # When it is downloaded
    done = run(command(stack, "download", record["uploadId"]), cwd=here)

    # Then the CLI says so, exits 6, and leaves nothing behind (no file, no temporary file)
    assert done.returncode == 6, done.stderr
    assert message in done.stderr and "nothing was saved" in done.stderr
    assert list(here.iterdir()) == []


def test_list_shows_uploads_and_delete_removes_them(stack: Stack, tmp_path: Path) -> None:
    # Given two processed uploads of a user of their own (so the listing holds only these)
    user = f"lister-{os.getpid()}-{time.monotonic_ns()}"
    first = uploaded(stack, tmp_path / "first.txt", b"first\n", "file", user=user)
    second = uploaded(stack, tmp_path / "second.png", png(8, 8), "avatar", user=user)

    def listing(*args: str) -> dict[str, Any]:
        done = run(command(stack, "list", "--json", *args), user=user)
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    def ids(page: dict[str, Any]) -> list[str]:
        return [item["uploadId"] for item in page["items"]]

    # the listing: newest first, filtered, paged
    assert ids(listing()) == [second["uploadId"], first["uploadId"]]
    assert ids(listing("--profile", "file")) == [first["uploadId"]]
    assert ids(listing("--status", "processed", "--profile", "avatar")) == [second["uploadId"]]
    one = listing("--limit", "1")
    assert ids(one) == [second["uploadId"]] and one["nextCursor"]
    assert ids(listing("--limit", "1", "--cursor", one["nextCursor"])) == [first["uploadId"]]
    every = listing("--limit", "1", "--all")
    assert ids(every) == [second["uploadId"], first["uploadId"]] and "nextCursor" not in every

    table = run(command(stack, "list"), user=user)
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["id", "status", "profile", "size", "created", "(UTC)", "filename"]
    assert rows[1].split()[:4] == [first["uploadId"], "PROCESSED", "file", "6"] and rows[1].endswith("first.txt")

    bad = run(command(stack, "list", "--status", "DONE"), user=user)
    assert bad.returncode == 3 and "422" in bad.stderr and "PROCESSED" in bad.stderr

    # When the first is deleted
    deleted = run(command(stack, "delete", first["uploadId"]), user=user)
    assert deleted.returncode == 0, deleted.stderr
    assert f"DELETED {first['uploadId']}" in deleted.stderr

    # Then it is no longer listed, no longer downloadable (409: the API-error code), and deleting
    # again answers the same
    assert ids(listing("--all")) == [second["uploadId"]]
    gone = run(command(stack, "download", first["uploadId"], "-o", str(tmp_path / "gone.txt")), user=user)
    assert gone.returncode == 3, gone.stderr
    assert "409" in gone.stderr and "DELETED" in gone.stderr
    assert not (tmp_path / "gone.txt").exists()
    repeated = run(command(stack, "delete", first["uploadId"], "--json"), user=user)
    assert repeated.returncode == 0, repeated.stderr
    assert json.loads(repeated.stdout)["status"] == "DELETED"
    # its status is final and not a success
    status = run(command(stack, "status", first["uploadId"]), user=user)
    assert status.returncode == 5 and "DELETED" in status.stderr


def test_a_pending_upload_is_cancelled_by_delete(stack: Stack) -> None:
    # Given an upload issued (as the demo user, whom the CLI signs in as) and never sent
    reply = requests.post(
        f"{stack.url}/uploads",
        json={"profile": "file", "filename": "later.txt", "contentType": "text/plain", "size": 6},
        headers=token(stack),
        timeout=10,
    )
    reply.raise_for_status()
    upload_id = reply.json()["uploadId"]

    # When it is deleted, it is cancelled
    done = run(command(stack, "delete", upload_id))
    assert done.returncode == 0, done.stderr
    assert f"CANCELLED {upload_id}: nothing more can be sent" in done.stderr
    status = run(command(stack, "status", upload_id, "--json"))
    assert status.returncode == 5 and json.loads(status.stdout)["status"] == "CANCELLED"


@pytest.mark.parametrize(
    ("served", "bare"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("/abs/path/x.txt", "x.txt"),
        ("evil\x1b[2Jname\u202etxt.exe", "evil_[2Jname_txt.exe"),
        ("..", None),
        ("dir/", None),
        ("", None),
    ],
)
def test_a_served_file_name_is_reduced_to_a_bare_name(served: str, bare: str | None) -> None:
    assert bare_name(served) == bare
