"""One upload from start to outcome: check it against the API's profiles, issue it, send the
bytes (or resume the parts S3 lacks), complete, and wait for processing."""

from __future__ import annotations

import hashlib
import mimetypes
import shlex
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from directupload_cli.errors import InterruptError, UsageError
from directupload_cli.output import console, human, program, shown
from directupload_cli.profiles import check_upload, fetch_profiles
from directupload_cli.state import StateFile
from directupload_cli.statuses import FINAL
from directupload_cli.transfer import Transfer, multipart, single_post


@dataclass
class Options:
    transfer: Transfer
    profile: str | None
    content_type: str | None
    resume: str | None
    checksum: bool
    wait: bool
    wait_timeout: float
    states: StateFile
    # the multipart upload under way, to say how to resume it when interrupted
    current: str | None = None


def resume_command(file: Path, profile: str | None, base_url: str, upload_id: str) -> str:
    command = [*program(), "upload", str(file)]
    if profile:
        command += ["--profile", profile]
    command += ["--resume", upload_id, "--api", base_url]
    return shlex.join(command)


def upload(options: Options) -> dict[str, Any]:
    """Upload (or resume), complete, and wait: the final record."""
    transfer = options.transfer
    path, api = transfer.file, transfer.api
    size = path.stat().st_size
    if options.resume:
        record = api.get(options.resume)
        if record["status"] != "PENDING":
            console.print(f"upload {shown(options.resume)} is already {shown(record['status'])}: nothing left to send")
            return finish(options, record["uploadId"])
        if "multipart" not in record:
            raise UsageError(f"upload {options.resume} is a single POST: it cannot be resumed, start again")
        if record["size"] != size:
            raise UsageError(
                f"{path} has {size} bytes, upload {options.resume} expects {record['size']}: not the same file?"
            )
        options.current = record["uploadId"]
        completed = multipart(transfer, record["uploadId"], size, record["multipart"], resuming=True)
        return finish(options, record["uploadId"], completed)

    if not options.profile:
        raise UsageError("--profile is required for a new upload")
    content_type = options.content_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    check_upload(fetch_profiles(api), options.profile, content_type, size)
    for earlier in options.states.unfinished(path, size):
        console.print(
            f"[yellow]note:[/] an earlier upload of this file was interrupted; resume it with "
            f"--resume {earlier['uploadId']}"
        )
    request: dict[str, Any] = {
        "profile": options.profile,
        "filename": path.name,
        "contentType": content_type,
        "size": size,
        "partChecksums": True,  # multipart: S3 checks each part's SHA-256 (we hash the parts as we read them)
    }
    if options.checksum:
        request["checksumSha256"] = sha256_of(path)
    issued = api.issue(request)
    upload_id = issued["uploadId"]
    if "multipart" in issued:
        options.current = upload_id
        options.states.save(
            upload_id,
            {
                "uploadId": upload_id,
                "api": api.base_url,
                "file": str(path),
                "size": size,
                "profile": options.profile,
                "startedAt": datetime.now(UTC).isoformat(),
            },
        )
        info = issued["multipart"]
        console.print(
            f"upload {upload_id}: multipart, {info['partCount']} parts of {human(info['partSize'])}; "
            f"if interrupted, resume with:\n  {transfer.resume_hint(upload_id)}"
        )
        return finish(options, upload_id, multipart(transfer, upload_id, size, info, resuming=False))
    console.print(f"upload {upload_id}: one POST of {human(size)}")
    single_post(transfer, issued, size)
    return finish(options, upload_id)


def finish(options: Options, upload_id: str, completed: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record to report: with --no-wait the one completing answered (else asked for), or the
    outcome once processing is done."""
    options.states.remove(upload_id)
    if not options.wait:
        return completed if completed is not None else options.transfer.api.get(upload_id)
    return wait_for_outcome(options, upload_id)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def wait_for_outcome(options: Options, upload_id: str) -> dict[str, Any]:
    transfer = options.transfer
    deadline = time.monotonic() + options.wait_timeout
    delay = 0.1
    spinner = console.status("processing...") if console.is_terminal and not transfer.quiet else nullcontext()
    with spinner:
        while True:
            record = transfer.api.get(upload_id)
            if record["status"] in FINAL:
                return record
            if time.monotonic() >= deadline:
                return record
            if transfer.stop.wait(delay):
                raise InterruptError()
            delay = min(2.0, delay * 1.5)
