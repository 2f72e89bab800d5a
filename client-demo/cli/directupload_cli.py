#!/usr/bin/env python3
"""directupload from the command line: upload a file through the API, straight to S3.

    python client-demo/cli/directupload_cli.py upload FILE --profile video
    python client-demo/cli/directupload_cli.py upload FILE --profile video --resume UPLOAD_ID
    python client-demo/cli/directupload_cli.py status UPLOAD_ID
    python client-demo/cli/directupload_cli.py download UPLOAD_ID [-o FILE] [--variant thumbnail]
    python client-demo/cli/directupload_cli.py list [--status PROCESSED] [--profile video] [--all]
    python client-demo/cli/directupload_cli.py delete UPLOAD_ID

The API's answer decides the transfer: one presigned POST, or multipart. Multipart parts go in
parallel (--concurrency), each read from the file only when a worker starts it, so at most
concurrency x part size bytes are in memory. Part URLs are signed in small batches just before
use and signed again when S3 answers 403 (expired). Failed parts are retried with backoff. An
interrupted upload resumes with --resume: the parts S3 already holds (right size) are skipped.
After completing, the command waits for processing and prints the outcome (--json: the record).

A download streams the processed file from its short-lived presigned URL into a temporary file
beside the target, hashing it on the way; only when the size and SHA-256 are the ones the API gave
is it renamed into place (an existing file only with --force). A variant has no SHA-256 from the
API: its size is checked. The default name is the one the API signed into the URL, reduced to a
bare file name.

The API is --api, else $DIRECTUPLOAD_API, else the local stack's .local/stack.json, else
client-demo/config.json. A token (--token or $DIRECTUPLOAD_TOKEN) goes as Authorization: Bearer;
against the local stack with auth on, the CLI signs in by itself as the demo page does.

Exit codes: 0 done (upload and status: processed), 1 still processing when --wait-timeout ran out,
2 usage (also: the download target exists), 3 the API (or S3) refused (e.g. 404 unknown upload or
variant, 409 not processed yet or deleted), 4 network, 5 processing REJECTED or FAILED (or the upload
was CANCELLED, EXPIRED or deleted), 6 the downloaded bytes are not the ones the API announced
(nothing is saved), 130 interrupted (the message says how to resume an upload).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mimetypes
import os
import queue
import random
import re
import shlex
import signal
import sys
import tempfile
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote, unquote, urlencode

import requests
import urllib3
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

ROOT = Path(__file__).resolve().parents[2]


def _script() -> str:
    """How to call this script again from here (for the messages that say how to resume)."""
    here = Path(__file__).resolve()
    return str(here.relative_to(Path.cwd())) if here.is_relative_to(Path.cwd()) else str(here)


SCRIPT = _script()

EXIT_OK, EXIT_PENDING, EXIT_USAGE, EXIT_REFUSED, EXIT_NETWORK, EXIT_OUTCOME = 0, 1, 2, 3, 4, 5
EXIT_MISMATCH, EXIT_INTERRUPTED = 6, 130
# The API's upload statuses (the Status enum of GET /openapi.json), as this CLI reads them. The API
# does not say which are final, so the grouping lives here, once; a test checks it covers the enum.
IN_PROGRESS = ("PENDING", "UPLOADED")
PROCESSING_OUTCOMES = ("PROCESSED", "REJECTED", "FAILED")
# never processed (cancelled, expired), or deleted by its owner
CLOSED = ("CANCELLED", "EXPIRED", "DELETING", "DELETED")
FINAL = (*PROCESSING_OUTCOMES, *CLOSED)
# A URL this close to its expiry is signed again rather than used.
URL_MARGIN = timedelta(seconds=60)
API_TIMEOUT = (5, 30)
S3_TIMEOUT = (10, 120)

console = Console(stderr=True, highlight=False, soft_wrap=True)


# --- failures, each with its exit code -------------------------------------------------------------


class CliError(Exception):
    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(CliError):
    exit_code = EXIT_USAGE


class RefusedError(CliError):
    """The API or S3 said no: a problem+json title and detail, or S3's error code."""

    exit_code = EXIT_REFUSED

    def __init__(
        self, message: str, status: int = 0, hint: str | None = None, problem: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, hint)
        self.status = status
        self.problem = problem or {}


class NetworkError(CliError):
    exit_code = EXIT_NETWORK


class OutcomeError(CliError):
    exit_code = EXIT_OUTCOME


class UploadGoneError(CliError):
    """S3 no longer has the multipart upload (aborted, completed, or lapsed)."""

    exit_code = EXIT_REFUSED


class PartFailedError(CliError):
    exit_code = EXIT_NETWORK

    def __init__(self, n: int, attempts: int, failure: str) -> None:
        super().__init__(f"part {n} failed {attempts} times, last: {failure}")


class MismatchError(CliError):
    """The downloaded bytes are not the ones the API announced (size or SHA-256)."""

    exit_code = EXIT_MISMATCH


class InterruptError(Exception):
    """Ctrl-C or SIGTERM."""


# --- where the API is --------------------------------------------------------------------------------


def discover_api(explicit: str | None) -> str:
    """--api, $DIRECTUPLOAD_API, the local stack's .local/stack.json, client-demo/config.json."""
    if explicit:
        return explicit.rstrip("/")
    if os.environ.get("DIRECTUPLOAD_API"):
        return os.environ["DIRECTUPLOAD_API"].rstrip("/")
    tried = ["--api", "$DIRECTUPLOAD_API"]
    candidates = [
        (Path.cwd() / ".local" / "stack.json", "apiUrl"),
        (ROOT / ".local" / "stack.json", "apiUrl"),
        (ROOT / "client-demo" / "config.json", "apiBaseUrl"),
    ]
    for path, name in dict.fromkeys(candidates):
        tried.append(str(path))
        try:
            url = json.loads(path.read_text()).get(name)
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(url, str) and url:
            return url.rstrip("/")
    raise UsageError(
        "cannot tell where the API is (tried " + ", ".join(tried) + ")",
        hint="start the local stack (make run), or pass --api URL",
    )


def local_token(base_url: str) -> str | None:
    """Against the local stack with auth on, a token from its /local/token, as the demo page signs in
    (user $DIRECTUPLOAD_USER, default the demo page's). Anything else: None."""
    try:
        config = requests.get(f"{base_url}/config.json", timeout=API_TIMEOUT).json()
        if not isinstance(config, dict) or config.get("stage") != "local" or config.get("auth") != "jwt":
            return None
        user = os.environ.get("DIRECTUPLOAD_USER", "demo-user")
        reply = requests.post(f"{base_url}/local/token", json={"user": user}, timeout=API_TIMEOUT)
        token = reply.json().get("token") if reply.ok else None
    except (requests.RequestException, ValueError):
        return None
    if isinstance(token, str) and token:
        console.print(f"local stack: signed in as {user}")
        return token
    return None


# --- the JSON API ------------------------------------------------------------------------------------


class Api:
    def __init__(self, base_url: str, token: str | None) -> None:
        self.base_url = base_url
        self.headers = {"Accept": "application/json", "User-Agent": "directupload-cli/1"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def call(self, method: str, path: str, body: Any = None, *, retries: int = 0) -> Any:
        """One API request; ``retries`` > 0 only for requests that are safe to repeat."""
        url = self.base_url + path
        for attempt in range(retries + 1):
            try:
                reply = self.session.request(method, url, json=body, headers=self.headers, timeout=API_TIMEOUT)
            except requests.RequestException as exc:
                if attempt < retries:
                    time.sleep(backoff(attempt))
                    continue
                raise NetworkError(
                    f"cannot reach the API at {self.base_url}: {describe_network_error(exc)}",
                    hint="is it running? --api, $DIRECTUPLOAD_API",
                ) from None
            if (reply.status_code >= 500 or reply.status_code == 429) and attempt < retries:
                time.sleep(retry_after(reply) or backoff(attempt))
                continue
            if reply.ok:
                try:
                    return reply.json() if reply.content else {}
                except ValueError:
                    raise RefusedError(
                        f"{method} {path}: the API answered {reply.status_code} without JSON", reply.status_code
                    ) from None
            raise api_refusal(method, path, reply)
        raise AssertionError("unreachable")

    # the routes
    def issue(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.call("POST", "/uploads", body))

    def get(self, upload_id: str) -> dict[str, Any]:
        return dict(self.call("GET", upload_path(upload_id), retries=3))

    def sign(self, upload_id: str, numbers: list[int]) -> list[dict[str, Any]]:
        return list(self.call("POST", f"{upload_path(upload_id)}/parts", {"partNumbers": numbers}, retries=3)["parts"])

    def parts(self, upload_id: str) -> list[dict[str, Any]]:
        return list(self.call("GET", f"{upload_path(upload_id)}/parts", retries=3)["parts"])

    def complete(self, upload_id: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
        # safe to repeat: completing again answers the same record
        return dict(self.call("POST", f"{upload_path(upload_id)}/complete", {"parts": parts}, retries=3))

    def download(self, upload_id: str, variant: str | None) -> dict[str, Any]:
        query = "?" + urlencode({"variant": variant}) if variant else ""
        return dict(self.call("GET", f"{upload_path(upload_id)}/download{query}", retries=3))

    def uploads(self, **query: str | int | None) -> dict[str, Any]:
        """One page of the caller's uploads, newest first."""
        given = {name: value for name, value in query.items() if value is not None}
        return dict(self.call("GET", "/uploads" + ("?" + urlencode(given) if given else ""), retries=3))

    def delete(self, upload_id: str) -> dict[str, Any]:
        # safe to repeat, the upload is gone either way: a deleted one answers the same, but a
        # cancelled one (what a pending upload becomes) is final, so a repeat deletes it
        return dict(self.call("DELETE", upload_path(upload_id), retries=3))


def upload_path(upload_id: str) -> str:
    """The route of one upload; the id is quoted, so whatever was typed stays one path segment."""
    return "/uploads/" + quote(upload_id, safe="")


def api_refusal(method: str, path: str, reply: requests.Response) -> RefusedError:
    try:
        problem = reply.json()
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    title = problem.get("title") or reply.reason or "refused"
    detail = problem.get("detail") or reply.text[:200].strip()
    message = f"the API refused {method} {path}: {reply.status_code} {title}" + (f": {detail}" if detail else "")
    hint = None
    if reply.status_code == 401:
        hint = "pass a bearer token: --token or $DIRECTUPLOAD_TOKEN"
    elif reply.status_code == 429 and retry_after(reply):
        hint = f"try again in {retry_after(reply):.0f} s"
    elif problem.get("known"):
        hint = "known profiles: " + ", ".join(map(str, problem["known"]))
    elif isinstance(problem.get("variants"), list):
        hint = "its variants: " + (", ".join(map(str, problem["variants"])) or "none")
    return RefusedError(message, reply.status_code, hint, problem)


def s3_error(reply: requests.Response) -> str:
    """S3's XML error, as `Code: Message`."""
    code = re.search(r"<Code>([^<]*)</Code>", reply.text or "")
    text = re.search(r"<Message>([^<]*)</Message>", reply.text or "")
    if code:
        return f"{code.group(1)}: {text.group(1) if text else ''}".rstrip(": ")
    return f"HTTP {reply.status_code} {reply.reason or ''}".strip()


def retry_after(reply: requests.Response) -> float | None:
    value = reply.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


def backoff(attempt: int) -> float:
    """0.5 s, 1 s, 2 s, ... up to 20 s, with jitter so parallel retries spread out."""
    return float(min(20.0, 0.5 * 2**attempt) * random.uniform(0.5, 1.5))


def describe_network_error(exc: BaseException) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    return type(exc).__name__


# --- bodies that report progress and respect a rate limit -----------------------------------------------


class RateLimit:
    """A shared token bucket (bytes per second) for every transfer of this run."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.lock = threading.Lock()
        self.allowance = 0.0
        self.last = time.monotonic()

    def take(self, n: int) -> None:
        if not self.rate:
            return
        with self.lock:
            now = time.monotonic()
            self.allowance = min(self.rate, self.allowance + (now - self.last) * self.rate) - n
            self.last = now
            wait = -self.allowance / self.rate if self.allowance < 0 else 0.0
        if wait > 0:
            time.sleep(wait)


class Body:
    """A request body from byte chunks with a known length: requests streams it with a
    Content-Length (S3 wants one), and every block read counts as sent."""

    block = 256 * 1024

    def __init__(
        self,
        pieces: list[bytes | Callable[[], Iterator[bytes]]],
        length: int,
        on_sent: Callable[[int], None],
        limit: RateLimit,
        stop: threading.Event,
    ) -> None:
        self.length = length
        self.on_sent = on_sent
        self.limit = limit
        self.stop = stop
        self.sent = 0
        self._chunks = self._iterate(pieces)
        self._current = memoryview(b"")

    def __len__(self) -> int:
        return self.length

    def _iterate(self, pieces: list[bytes | Callable[[], Iterator[bytes]]]) -> Iterator[bytes]:
        for piece in pieces:
            if isinstance(piece, bytes):
                for start in range(0, len(piece), self.block):
                    yield piece[start : start + self.block]
            else:
                yield from piece()

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes of the current chunk: every byte is copied once."""
        if self.stop.is_set():
            raise InterruptError()
        want = self.block if size is None or size < 0 else size
        while not self._current:
            chunk = next(self._chunks, None)
            if chunk is None:
                return b""
            self._current = memoryview(chunk)
        out, self._current = bytes(self._current[:want]), self._current[want:]
        self.limit.take(len(out))
        self.sent += len(out)
        self.on_sent(len(out))
        return out


# --- local state, so an interrupted upload can be resumed --------------------------------------------


def state_dir(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    if os.environ.get("DIRECTUPLOAD_STATE_DIR"):
        return Path(os.environ["DIRECTUPLOAD_STATE_DIR"])
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "directupload"


@dataclass
class StateFile:
    directory: Path

    def path(self, upload_id: str) -> Path:
        return self.directory / f"{upload_id}.json"

    def save(self, upload_id: str, data: dict[str, Any]) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = self.path(upload_id).with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=2))
            tmp.replace(self.path(upload_id))
        except OSError as exc:
            console.print(f"[yellow]warning:[/] cannot write the resume state in {self.directory}: {exc}")

    def remove(self, upload_id: str) -> None:
        self.path(upload_id).unlink(missing_ok=True)

    def unfinished(self, file: Path, size: int) -> list[dict[str, Any]]:
        """Earlier uploads of this very file that never finished."""
        found = []
        for path in sorted(self.directory.glob("*.json")) if self.directory.is_dir() else []:
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if data.get("file") == str(file) and data.get("size") == size:
                found.append(data)
        return found


# --- uploading -----------------------------------------------------------------------------------------


@dataclass
class Options:
    api: Api
    file: Path
    profile: str | None
    content_type: str | None
    concurrency: int
    retries: int
    resume: str | None
    checksum: bool
    wait: bool
    wait_timeout: float
    as_json: bool
    quiet: bool
    limit: RateLimit
    states: StateFile
    stop: threading.Event = field(default_factory=threading.Event)
    # the multipart upload under way, to say how to resume it when interrupted
    current: str | None = None


def resume_command(options: Options, upload_id: str) -> str:
    command = ["python", SCRIPT, "upload", str(options.file)]
    if options.profile:
        command += ["--profile", options.profile]
    command += ["--resume", upload_id, "--api", options.api.base_url]
    return shlex.join(command)


class ProgressView:
    """Progress for the whole file, shared by every part."""

    def __init__(self, quiet: bool, total: int, label: str) -> None:
        self.quiet = quiet
        self.lock = threading.Lock()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            disable=quiet or not console.is_terminal,
        )
        self.task = self.progress.add_task(label, total=total)

    def advance(self, n: int) -> None:
        self.progress.advance(self.task, n)

    def note(self, message: str) -> None:
        """A line for logs when there is no live progress bar."""
        if not self.quiet and self.progress.disable:
            console.print(message)

    def __enter__(self) -> ProgressView:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def upload(options: Options) -> dict[str, Any]:
    """Upload (or resume), complete, and wait: the final record."""
    path, api = options.file, options.api
    size = path.stat().st_size
    if options.resume:
        record = api.get(options.resume)
        if record["status"] != "PENDING":
            console.print(f"upload {options.resume} is already {record['status']}: nothing left to send")
            return finish(options, record["uploadId"])
        if "multipart" not in record:
            raise UsageError(f"upload {options.resume} is a single POST: it cannot be resumed, start again")
        if record["size"] != size:
            raise UsageError(
                f"{path} has {size} bytes, upload {options.resume} expects {record['size']}: not the same file?"
            )
        options.current = record["uploadId"]
        multipart(options, record["uploadId"], size, record["multipart"])
        return finish(options, record["uploadId"])

    if not options.profile:
        raise UsageError("--profile is required for a new upload")
    for earlier in options.states.unfinished(path, size):
        console.print(
            f"[yellow]note:[/] an earlier upload of this file was interrupted; resume it with "
            f"--resume {earlier['uploadId']}"
        )
    request: dict[str, Any] = {
        "profile": options.profile,
        "filename": path.name,
        "contentType": options.content_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream",
        "size": size,
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
            f"if interrupted, resume with:\n  {resume_command(options, upload_id)}"
        )
        multipart(options, upload_id, size, info)
    else:
        console.print(f"upload {upload_id}: one POST of {human(size)}")
        single_post(options, issued, size)
    return finish(options, upload_id)


def finish(options: Options, upload_id: str) -> dict[str, Any]:
    options.states.remove(upload_id)
    if not options.wait:
        return options.api.get(upload_id)
    return wait_for_outcome(options, upload_id)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


# one POST


def single_post(options: Options, issued: dict[str, Any], size: int) -> None:
    """The presigned POST as a streamed multipart/form-data body: every field, then the file."""
    boundary = uuid.uuid4().hex
    head = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in issued["fields"].items()
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="file"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def file_chunks() -> Iterator[bytes]:
        with options.file.open("rb") as handle:
            yield from iter(lambda: handle.read(Body.block), b"")

    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    length = len(head) + size + len(tail)  # the progress counts the form's few bytes around the file too
    with ProgressView(options.quiet, length, options.file.name) as transfer:
        for attempt in range(options.retries + 1):
            body = Body([head, file_chunks, tail], length, transfer.advance, options.limit, options.stop)
            try:
                reply = requests.post(issued["url"], data=body, headers=headers, timeout=S3_TIMEOUT)
            except requests.RequestException as exc:
                failure: str = describe_network_error(exc)
                network = True
            else:
                if reply.status_code in (200, 201, 204):
                    return
                failure, network = s3_error(reply), False
                if reply.status_code < 500:
                    raise RefusedError(f"S3 refused the upload: {failure}", reply.status_code)
            transfer.advance(-body.sent)
            if attempt == options.retries:
                if network:
                    raise NetworkError(f"cannot send the file to S3: {failure}")
                raise RefusedError(f"S3 failed the upload: {failure}")
            if options.stop.wait(backoff(attempt)):
                raise InterruptError()


# multipart


@dataclass
class SignedUrl:
    url: str
    expires_at: datetime

    def fresh(self) -> bool:
        return datetime.now(UTC) + URL_MARGIN < self.expires_at


class PartSigner:
    """Part URLs signed just in time, a few parts at a time, and again when they expire."""

    def __init__(self, api: Api, upload_id: str, order: list[int], batch: int) -> None:
        self.api = api
        self.upload_id = upload_id
        self.order = order
        self.batch = batch
        self.urls: dict[int, SignedUrl] = {}
        self.lock = threading.Lock()

    def url(self, number: int) -> str:
        with self.lock:
            signed = self.urls.get(number)
            if signed is None or not signed.fresh():
                index = self.order.index(number) if number in self.order else 0
                upcoming = [number] + [
                    n for n in self.order[index + 1 :] if n not in self.urls or not self.urls[n].fresh()
                ]
                for part in self.api.sign(self.upload_id, upcoming[: self.batch]):
                    expires = datetime.fromisoformat(part["expiresAt"].replace("Z", "+00:00"))
                    self.urls[int(part["partNumber"])] = SignedUrl(part["url"], expires)
                signed = self.urls[number]
            return signed.url

    def forget(self, number: int) -> None:
        with self.lock:
            self.urls.pop(number, None)


def multipart(options: Options, upload_id: str, size: int, info: dict[str, Any]) -> None:
    api = options.api
    part_size, part_count = int(info["partSize"]), int(info["partCount"])

    def span(n: int) -> tuple[int, int]:
        start = (n - 1) * part_size
        return start, min(part_size, size - start)

    etags: dict[int, str] = {}
    if options.resume:
        for part in api.parts(upload_id):
            n = int(part["partNumber"])
            if 1 <= n <= part_count and int(part["size"]) == span(n)[1]:
                etags[n] = str(part["etag"])
        console.print(f"resuming upload {upload_id}: {len(etags)} of {part_count} parts already in S3")
    todo = [n for n in range(1, part_count + 1) if n not in etags]
    done_bytes = sum(span(n)[1] for n in etags)
    signer = PartSigner(api, upload_id, todo, batch=min(1000, max(8, 2 * options.concurrency)))

    with ProgressView(options.quiet, size, options.file.name) as transfer:
        transfer.advance(done_bytes)
        work: queue.Queue[int] = queue.Queue()
        for n in todo:
            work.put(n)
        results: queue.Queue[tuple[int, str | None, BaseException | None]] = queue.Queue()

        def worker() -> None:
            while not options.stop.is_set():
                try:
                    n = work.get_nowait()
                except queue.Empty:
                    return
                try:
                    results.put((n, send_part(options, signer, transfer, upload_id, n, *span(n)), None))
                except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which decides
                    results.put((n, None, exc))
                    return

        threads = [
            threading.Thread(target=worker, name=f"part-worker-{i}", daemon=True)
            for i in range(min(options.concurrency, len(todo)))
        ]
        for thread in threads:
            thread.start()
        remaining = len(todo)
        while remaining:
            try:
                n, etag, error = results.get(timeout=0.2)
            except queue.Empty:
                if not any(t.is_alive() for t in threads) and results.empty():
                    raise CliError("the part workers stopped before every part was sent") from None
                continue
            if error is not None:
                options.stop.set()
                if isinstance(error, InterruptError):
                    raise InterruptError()
                raise explain_part_failure(options, upload_id, error)
            assert etag is not None
            etags[n] = etag
            remaining -= 1
            transfer.note(f"part {n} sent ({part_count - remaining}/{part_count} in S3)")

    parts = [{"partNumber": n, "etag": etags[n]} for n in range(1, part_count + 1)]
    try:
        api.complete(upload_id, parts)
    except RefusedError as refusal:
        if refusal.status != 409:
            raise
        record = api.get(upload_id)
        if record["status"] not in ("UPLOADED", *PROCESSING_OUTCOMES):
            raise
        # an earlier complete went through and its reply was lost: nothing left to do


def send_part(
    options: Options, signer: PartSigner, transfer: ProgressView, upload_id: str, n: int, start: int, length: int
) -> str:
    """PUT one part (read from the file now), retrying with backoff; its ETag."""
    with options.file.open("rb") as handle:
        handle.seek(start)
        data = handle.read(length)
    if len(data) != length:
        raise UsageError(f"{options.file} changed while uploading (part {n} is short)")
    session = options.api.session
    failure = ""
    for attempt in range(options.retries + 1):
        if options.stop.is_set():
            raise InterruptError()
        body = Body([data], length, transfer.advance, options.limit, options.stop)
        try:
            reply = session.put(signer.url(n), data=body, timeout=S3_TIMEOUT)
        except requests.RequestException as exc:
            failure = describe_network_error(exc)
        else:
            if reply.status_code == 200 and reply.headers.get("ETag"):
                return reply.headers["ETag"].strip().strip('"')
            failure = s3_error(reply)
            if reply.status_code == 403:
                signer.forget(n)  # expired, most likely: sign it again
            elif reply.status_code == 404:
                raise UploadGoneError(f"S3 no longer has upload {upload_id} ({failure})")
            elif 400 <= reply.status_code < 500 and reply.status_code not in (408, 429):
                raise RefusedError(f"S3 refused part {n}: {failure}", reply.status_code)
        transfer.advance(-body.sent)
        if attempt < options.retries and options.stop.wait(backoff(attempt)):
            raise InterruptError()
    raise PartFailedError(n, options.retries + 1, failure)


def explain_part_failure(options: Options, upload_id: str, error: BaseException) -> CliError:
    """The clearest message for a part that would not go: the upload's own state if it changed."""
    if not isinstance(error, CliError):
        return CliError(f"part upload failed: {type(error).__name__}: {error}")
    try:
        status = options.api.get(upload_id)["status"]
    except CliError:
        status = "PENDING"
    if status != "PENDING":
        return RefusedError(f"upload {upload_id} is {status}: {error.message}")
    if isinstance(error, PartFailedError | UploadGoneError | NetworkError):
        error.hint = f"resume with: {resume_command(options, upload_id)}"
    return error


# waiting for processing


def wait_for_outcome(options: Options, upload_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + options.wait_timeout
    delay = 0.1
    spinner = console.status("processing...") if console.is_terminal and not options.quiet else nullcontext()
    with spinner:
        while True:
            record = options.api.get(upload_id)
            if record["status"] in FINAL:
                return record
            if time.monotonic() >= deadline:
                return record
            if options.stop.wait(delay):
                raise InterruptError()
            delay = min(2.0, delay * 1.5)


def report(record: dict[str, Any], as_json: bool) -> int:
    status = record["status"]
    if as_json:
        print(json.dumps(record, indent=2))
    if status == "PROCESSED":
        if not as_json:
            result = record.get("result") or {}
            console.print(
                f"[green]PROCESSED[/] {record['uploadId']}: {human(record['size'])}, "
                f"{result.get('contentType', record['contentType'])}, sha256 {record.get('sha256')}"
            )
        return EXIT_OK
    if status in FINAL:
        error = record.get("error") or {}
        console.print(
            f"[red]{status}[/] {record['uploadId']}: {error.get('code', '')} {error.get('message', '')}".rstrip()
        )
        return EXIT_OUTCOME
    console.print(
        f"[yellow]{status}[/] {record['uploadId']}: still processing; check later with: "
        f"{SCRIPT} status {record['uploadId']}"
    )
    return EXIT_PENDING


# --- reading: download, list, delete --------------------------------------------------------------------


def download(
    api: Api, upload_id: str, *, variant: str | None, output: Path | None, force: bool, quiet: bool
) -> dict[str, Any]:
    """Save a processed upload's file (or a variant) verified: the result object."""
    link = api.download(upload_id, variant)
    size, sha256 = int(link["size"]), link.get("sha256")
    try:
        # the presigned URL is its own credential: no API header goes to S3
        reply = requests.get(link["url"], stream=True, timeout=S3_TIMEOUT)
    except requests.RequestException as exc:
        raise NetworkError(f"cannot fetch upload {upload_id} from S3: {describe_network_error(exc)}") from None
    with reply:
        if reply.status_code != 200:
            raise RefusedError(f"S3 refused the download: {s3_error(reply)}", reply.status_code)
        # the name the API signed into the URL (S3 answers it as Content-Disposition)
        served = served_filename(reply.headers.get("Content-Disposition", ""))
        if served is None and variant is None:
            served = api.get(upload_id)["filename"]
        target = download_target(output, served, force=force)
        try:
            with ProgressView(quiet, size, target.name) as transfer:
                actual = save_verified(
                    body_chunks(reply), target, size=size, sha256=sha256, force=force, advance=transfer.advance
                )
        except OSError as exc:
            raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
    return {
        "uploadId": upload_id,
        "variant": variant,
        "path": str(target),
        "size": size,
        "sha256": actual,
        "contentType": link["contentType"],
        "checked": ["size", "sha256"] if sha256 else ["size"],
    }


def body_chunks(reply: requests.Response) -> Iterator[bytes]:
    """The body as S3 holds it: a Content-Encoding is not undone (the SHA-256 is of the stored
    bytes, and nothing is inflated on the way)."""
    try:
        yield from reply.raw.stream(Body.block, decode_content=False)
    except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
        raise NetworkError(f"the download broke off: {type(exc).__name__}") from None


def served_filename(disposition: str) -> str | None:
    """The file name of a Content-Disposition (RFC 6266): the UTF-8 ``filename*``, else ``filename``."""
    extended = re.search(r"filename\*\s*=\s*UTF-8''([^;\s]+)", disposition, re.IGNORECASE)
    if extended:
        return unquote(extended.group(1), errors="replace")
    plain = re.search(r'filename\s*=\s*"([^"]*)"', disposition, re.IGNORECASE)
    return plain.group(1) if plain else None


def printable(text: str, replacement: str = "?") -> str:
    """Text from the server, safe to show: no control, format (bidi) or unassigned characters."""
    return "".join(replacement if unicodedata.category(c).startswith("C") else c for c in text)


def bare_name(name: str) -> str | None:
    """An untrusted file name reduced to its last path segment (either slash); None if nothing is left."""
    base = printable(re.split(r"[/\\]", name)[-1], "_").strip()
    return None if base in ("", ".", "..") else base


def download_target(output: Path | None, served: str | None, *, force: bool) -> Path:
    """-o FILE as given; else the served name, bare, in -o DIRECTORY or here."""
    if output is not None and not output.is_dir():
        target = output
    else:
        name = bare_name(served or "")
        if name is None:
            raise UsageError("the API named no usable file name for this download", hint="pass -o FILE")
        target = (output or Path.cwd()) / name
    if not target.parent.is_dir():
        raise UsageError(f"{target.parent}: no such directory")
    if os.path.lexists(target) and not force:
        raise UsageError(f"{target} exists", hint="pass --force to overwrite it")
    return target


def save_verified(
    chunks: Iterable[bytes],
    target: Path,
    *,
    size: int,
    sha256: str | None,
    force: bool,
    advance: Callable[[int], None] = lambda n: None,
) -> str:
    """Write the chunks to a temporary file beside ``target``, hashing them as they come, and rename
    it into place only when the byte count (and the SHA-256, if given) are the announced ones.
    Whatever goes wrong, no partial file is left. The SHA-256 of what was saved."""
    digest = hashlib.sha256()
    received = 0
    descriptor, name = tempfile.mkstemp(dir=target.parent, prefix=".directupload-", suffix=".part")
    partial = Path(name)
    nothing_saved = "nothing was saved; try again, and report it if it happens again"
    try:
        with os.fdopen(descriptor, "wb") as handle:
            for chunk in chunks:
                received += len(chunk)
                if received > size:
                    raise MismatchError(f"S3 sent more than the {size} bytes the API announced", nothing_saved)
                digest.update(chunk)
                handle.write(chunk)
                advance(len(chunk))
        actual = digest.hexdigest()
        if received != size:
            raise MismatchError(f"S3 sent {received} bytes, the API announced {size}", nothing_saved)
        if sha256 is not None and actual != sha256:
            raise MismatchError(
                f"the downloaded bytes are not the verified file: SHA-256 {actual}, the API announced {sha256}",
                nothing_saved,
            )
        partial.chmod(0o666 & ~current_umask())  # as any new file, not the temporary file's 0600
        place(partial, target, force=force)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return actual


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def place(partial: Path, target: Path, *, force: bool) -> None:
    """Rename the finished file into place; without ``force`` never over a file, not even one that
    appeared while downloading (a hard link fails where a rename would replace)."""
    if force:
        os.replace(partial, target)
        return
    try:
        os.link(partial, target)
    except FileExistsError:
        raise UsageError(f"{target} exists", hint="pass --force to overwrite it") from None
    except OSError:  # a file system without hard links
        if os.path.lexists(target):
            raise UsageError(f"{target} exists", hint="pass --force to overwrite it") from None
        os.replace(partial, target)
        return
    partial.unlink()


def report_download(result: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        checked = (
            "SHA-256 verified"
            if "sha256" in result["checked"]
            else "size checked (the API gives no SHA-256 for a variant)"
        )
        console.print(
            f"[green]saved[/] {escape(printable(result['path']))}: {human(result['size'])}, "
            f"{escape(printable(result['contentType']))}, {checked}"
        )
    return EXIT_OK


def list_uploads(
    api: Api, *, status: str | None, profile: str | None, limit: int | None, cursor: str | None, follow: bool
) -> dict[str, Any]:
    """A page of the caller's uploads (every page with ``follow``): ``{items, nextCursor?}``."""
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    while True:
        page = api.uploads(status=status, profile=profile, limit=limit, cursor=cursor)
        items += page.get("items", [])
        cursor = page.get("nextCursor")
        if not follow or not cursor:
            break
        if cursor in seen:
            raise RefusedError("the API handed out the same nextCursor twice; stopped paging")
        seen.add(cursor)
    return {"items": items, "nextCursor": cursor} if cursor else {"items": items}


LIST_COLUMNS = ("id", "status", "profile", "size", "created (UTC)", "filename")


def upload_table(items: list[dict[str, Any]]) -> str:
    """The uploads as aligned plain-text columns (the last one, the file name, unpadded)."""
    rows = [LIST_COLUMNS] + [
        tuple(
            printable(cell)
            for cell in (
                item["uploadId"],
                item["status"],
                item["profile"],
                human(item["size"]),
                datetime.fromisoformat(item["createdAt"]).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                item["filename"],
            )
        )
        for item in items
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(LIST_COLUMNS) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]]) for row in rows
    )


def report_list(listing: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(listing, indent=2))
    elif listing["items"]:
        print(upload_table(listing["items"]))
    else:
        console.print("no uploads")
    if not as_json and listing.get("nextCursor"):
        console.print(f"more uploads: --all, or --cursor {listing['nextCursor']}")
    return EXIT_OK


def report_deleted(record: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(record, indent=2))
    else:
        done = {"CANCELLED": "nothing more can be sent", "DELETED": "its files are gone"}
        status = record["status"]
        console.print(f"{status} {record['uploadId']}" + (f": {done[status]}" if status in done else ""))
    return EXIT_OK


# --- command line --------------------------------------------------------------------------------------


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def rate(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kKmMgG]?)i?[bB]?", text.strip())
    if not match:
        raise argparse.ArgumentTypeError("a rate like 500K, 20M (bytes per second)")
    return float(match.group(1)) * float(1024 ** " kmg".index(match.group(2).lower() or " "))


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--api", help="API base URL (default: $DIRECTUPLOAD_API, .local/stack.json, client-demo/config.json)"
    )
    common.add_argument(
        "--token", default=os.environ.get("DIRECTUPLOAD_TOKEN"), help="bearer token (default: $DIRECTUPLOAD_TOKEN)"
    )
    common.add_argument(
        "--json", dest="as_json", action="store_true", help="print the result as JSON (an upload's: its record)"
    )
    main = argparse.ArgumentParser(prog=SCRIPT, description="Upload and fetch files through the directupload API.")
    commands = main.add_subparsers(dest="command", required=True)

    up = commands.add_parser("upload", parents=[common], help="upload a file, wait for processing, print the outcome")
    up.add_argument("file", type=Path)
    up.add_argument("--profile", "-p", help="upload profile (required unless --resume)")
    up.add_argument("--content-type", help="default: guessed from the file name")
    up.add_argument("--concurrency", "-c", type=positive_int, default=4, help="parts in flight (default 4)")
    up.add_argument("--retries", type=int, default=5, help="attempts per part after the first (default 5)")
    up.add_argument("--resume", metavar="UPLOAD_ID", help="continue an interrupted multipart upload")
    up.add_argument("--checksum", action="store_true", help="send the file's SHA-256 for the server to verify")
    up.add_argument("--limit-rate", type=rate, help="at most this many bytes per second, e.g. 20M")
    up.add_argument("--no-wait", dest="wait", action="store_false", help="do not wait for processing")
    up.add_argument("--wait-timeout", type=float, default=600, help="seconds to wait for processing (default 600)")
    up.add_argument(
        "--state-dir",
        help="where interrupted uploads are remembered "
        "(default: $DIRECTUPLOAD_STATE_DIR or ~/.local/state/directupload)",
    )
    up.add_argument("--quiet", "-q", action="store_true", help="no progress output")

    status = commands.add_parser("status", parents=[common], help="print an upload's record")
    status.add_argument("upload_id")

    down = commands.add_parser(
        "download", parents=[common], help="save a processed upload's file (or a variant), verified"
    )
    down.add_argument("upload_id")
    down.add_argument(
        "--output", "-o", type=Path, help="the file to write, or a directory for it (default: the served name, here)"
    )
    down.add_argument("--variant", help="a derived file instead of the original, e.g. thumbnail")
    down.add_argument("--force", "-f", action="store_true", help="overwrite an existing file")
    down.add_argument("--quiet", "-q", action="store_true", help="no progress output")

    listing = commands.add_parser("list", parents=[common], help="list your uploads, newest first")
    listing.add_argument("--status", type=str.upper, help="only uploads in this status, e.g. PROCESSED")
    listing.add_argument("--profile", "-p", help="only uploads of this profile")
    listing.add_argument("--limit", type=positive_int, help="uploads per page (default and maximum: the API's)")
    listing.add_argument("--cursor", help="start from a page's nextCursor")
    listing.add_argument("--all", dest="follow", action="store_true", help="follow nextCursor to the last page")

    delete = commands.add_parser(
        "delete", parents=[common], help="cancel a pending upload, or delete a finished one with its files"
    )
    delete.add_argument("upload_id")
    return main


def _raise_interrupt(*_: object) -> NoReturn:
    raise InterruptError()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    options: Options | None = None
    try:
        base_url = discover_api(args.api)
        api = Api(base_url, args.token or local_token(base_url))
        if args.command == "status":
            return report(api.get(args.upload_id), args.as_json)
        if args.command == "download":
            output = args.output.expanduser() if args.output else None
            saved = download(
                api, args.upload_id, variant=args.variant, output=output, force=args.force, quiet=args.quiet
            )
            return report_download(saved, args.as_json)
        if args.command == "list":
            listing = list_uploads(
                api, status=args.status, profile=args.profile, limit=args.limit, cursor=args.cursor, follow=args.follow
            )
            return report_list(listing, args.as_json)
        if args.command == "delete":
            return report_deleted(api.delete(args.upload_id), args.as_json)
        file = args.file.expanduser().resolve()
        if not file.is_file():
            raise UsageError(f"{args.file}: no such file")
        if file.stat().st_size == 0:
            raise UsageError(f"{args.file} is empty")
        options = Options(
            api=api,
            file=file,
            profile=args.profile,
            content_type=args.content_type,
            concurrency=args.concurrency,
            retries=max(0, args.retries),
            resume=args.resume,
            checksum=args.checksum,
            wait=args.wait,
            wait_timeout=args.wait_timeout,
            as_json=args.as_json,
            quiet=args.quiet,
            limit=RateLimit(args.limit_rate),
            states=StateFile(state_dir(args.state_dir)),
        )
        return report(upload(options), args.as_json)
    except (InterruptError, KeyboardInterrupt):
        if options is not None:
            options.stop.set()
            if options.current:
                console.print(f"\ninterrupted; resume with:\n  {resume_command(options, options.current)}")
                return EXIT_INTERRUPTED
        console.print("\ninterrupted")
        return EXIT_INTERRUPTED
    except CliError as error:
        console.print(f"[red]error:[/] {escape(printable(error.message))}")
        if error.hint:
            console.print(f"  {escape(printable(error.hint))}")
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
