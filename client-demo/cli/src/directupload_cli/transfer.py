"""Sending the bytes to S3, as the API's answer says: one presigned POST (streamed), or multipart
parts in parallel, each streamed from the file as it is sent (``os.pread`` blocks handed to the
socket as they are read: a block per part in flight in memory, never a whole part, no copies),
over one connection pool sized to the concurrency. Part URLs are signed a batch at a time by a
thread that stays ahead of the senders, and again when S3 answers 403; failed parts are retried
with backoff. For an upload opened with part checksums, that thread computes a batch's SHA-256s
(a read of those parts) while earlier parts are sent, each URL signing its part's checksum, so
S3 refuses the part if other bytes arrive."""

from __future__ import annotations

import base64
import hashlib
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

import requests
from requests.adapters import HTTPAdapter

from directupload_cli.api import S3_TIMEOUT, Api, backoff, describe_network_error, s3_error
from directupload_cli.errors import (
    CliError,
    InterruptError,
    NetworkError,
    PartFailedError,
    RefusedError,
    UploadGoneError,
    UsageError,
)
from directupload_cli.output import console
from directupload_cli.progress import ProgressView

# The statuses only an assembled object reaches (processing took it): after a 409 from complete,
# one of them means an earlier complete went through and its reply was lost.
ASSEMBLED = ("UPLOADED", "SCANNING", "PROCESSED", "REJECTED", "FAILED")
# A URL this close to its expiry is signed again rather than used.
URL_MARGIN = timedelta(seconds=60)


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


@dataclass
class Transfer:
    """What sending one file needs: where from, how, and how to say it can be resumed."""

    api: Api
    file: Path
    concurrency: int
    retries: int
    quiet: bool
    limit: RateLimit
    resume_hint: Callable[[str], str]  # upload id -> the command that resumes it
    stop: threading.Event = field(default_factory=threading.Event)
    _s3: requests.Session | None = field(default=None, init=False, repr=False)
    _s3_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def s3(self) -> requests.Session:
        """One session for every PUT to S3: its pool keeps a connection per part in flight (made
        once, under a lock: the part workers ask for it at the same moment)."""
        with self._s3_lock:
            if self._s3 is None:
                session = requests.Session()
                adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(1, self.concurrency))
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                self._s3 = session
            return self._s3


# Parts are read and sent in blocks of this size (os.pread): one block per part in flight in memory.
PART_BLOCK = 1024 * 1024


def file_range(path: Path, start: int, length: int) -> Iterator[bytes]:
    """Bytes ``start`` to ``start + length`` of the file, in blocks, read as they are consumed;
    UsageError when the file is shorter (it changed while uploading)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        position, end = start, start + length
        while position < end:
            block = os.pread(fd, min(PART_BLOCK, end - position), position)
            if not block:
                raise UsageError(f"{path} changed while uploading (it is shorter than it was)")
            position += len(block)
            yield block
    finally:
        os.close(fd)


def holds_these_bytes(path: Path, span: tuple[int, int], part: dict[str, Any]) -> bool:
    """Whether the part S3 holds is this part of the file, by its SHA-256 (an upload that takes
    part checksums) or else its ETag (the MD5 of its bytes; a bucket whose ETags are not, under
    SSE-KMS, gets every part sent again): a file changed since, or another file of the same
    size, is never completed with the parts of the one before."""
    checksum = part.get("checksumSha256")
    if isinstance(checksum, str):
        return checksum == range_sha256(path, *span)
    digest = hashlib.md5(usedforsecurity=False)
    for block in file_range(path, *span):
        digest.update(block)
    return str(part.get("etag", "")).strip('" ') == digest.hexdigest()


def range_sha256(path: Path, start: int, length: int) -> str:
    """The base64 SHA-256 of a part of the file (what S3 takes in x-amz-checksum-sha256)."""
    digest = hashlib.sha256()
    for block in file_range(path, start, length):
        digest.update(block)  # 1 MiB at a time: hashlib releases the GIL, senders run meanwhile
    return base64.b64encode(digest.digest()).decode()


class Body:
    """A request body from byte chunks with a known length: requests streams it with a
    Content-Length (S3 wants one), each chunk handed to the socket's ``sendall`` as it is (no
    copy, 1 MiB at a time: it has no ``read``, which would make urllib3 pull 16 KiB per call), and
    every chunk sent counts as progress."""

    block = PART_BLOCK
    limited_slice = 64 * 1024

    def __init__(
        self,
        pieces: list[bytes | Callable[[], Iterator[bytes]]],
        length: int,
        on_sent: Callable[[int], None],
        limit: RateLimit,
        stop: threading.Event,
    ) -> None:
        self.pieces = pieces
        self.length = length
        self.on_sent = on_sent
        self.limit = limit
        self.stop = stop
        self.sent = 0

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._slices():
            if self.stop.is_set():
                raise InterruptError()
            self.limit.take(len(chunk))
            self.sent += len(chunk)
            self.on_sent(len(chunk))
            yield chunk

    def _slices(self) -> Iterator[bytes]:
        """The pieces' chunks; under --limit-rate cut smaller, so the bucket's waits stay short."""
        step = self.limited_slice if self.limit.rate else self.block
        for piece in self.pieces:
            for chunk in (piece,) if isinstance(piece, bytes) else piece():
                if len(chunk) <= step:
                    yield chunk
                else:
                    yield from (chunk[i : i + step] for i in range(0, len(chunk), step))


# --- one POST -------------------------------------------------------------------------------------------


def single_post(transfer: Transfer, issued: dict[str, Any], size: int) -> None:
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
        with transfer.file.open("rb") as handle:
            yield from iter(lambda: handle.read(Body.block), b"")

    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    length = len(head) + size + len(tail)  # the progress counts the form's few bytes around the file too
    with ProgressView(transfer.quiet, length, transfer.file.name) as progress:
        for attempt in range(transfer.retries + 1):
            body = Body([head, file_chunks, tail], length, progress.advance, transfer.limit, transfer.stop)
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
            progress.advance(-body.sent)
            if attempt == transfer.retries:
                if network:
                    raise NetworkError(f"cannot send the file to S3: {failure}")
                raise RefusedError(f"S3 failed the upload: {failure}")
            if transfer.stop.wait(backoff(attempt)):
                raise InterruptError()


# --- multipart ------------------------------------------------------------------------------------------


@dataclass
class SignedUrl:
    url: str
    expires_at: datetime
    checksum: str | None = None  # the part's SHA-256 (base64) signed into the URL

    def fresh(self) -> bool:
        return datetime.now(UTC) + URL_MARGIN < self.expires_at


class SignsParts(Protocol):
    """What the signer needs of the API (``Api.sign``): part URLs, each signing its checksum."""

    def sign(
        self, upload_id: str, numbers: list[int], checksums: dict[int, str] | None = None
    ) -> list[dict[str, Any]]: ...


class PartSigner:
    """Part URLs signed ahead of the senders, a batch of upcoming parts at a time, and again when
    they expire or are forgotten (S3's 403, BadDigest).

    ``start`` runs a thread that keeps the parts after the ones taken signed before the senders
    reach them: when fewer than ``low`` upcoming parts hold a URL, it signs the next ``batch``
    (the first time only ``first``, so the first parts go soon). With ``checksum_of`` (part
    number -> its base64 SHA-256, read from the file) each URL signs its part's checksum, so that
    thread reads and hashes a batch while the parts before it are being sent: no sender waits for
    hashing, but for the first batch. A sender that finds no URL (none signed yet, or the thread
    stopped on an error) signs the batch itself, as it would without the thread."""

    def __init__(
        self,
        api: SignsParts,
        upload_id: str,
        order: list[int],
        *,
        batch: int,
        first: int,
        low: int,
        checksum_of: Callable[[int], str] | None = None,
    ) -> None:
        self.api = api
        self.upload_id = upload_id
        self.order = order
        self.batch = batch
        self.first = first
        self.low = low
        self.checksum_of = checksum_of
        self.urls: dict[int, SignedUrl] = {}
        self.signing: set[int] = set()  # parts some thread is hashing and signing right now
        self.taken: set[int] = set()  # parts a sender asked for: the ahead thread looks past them
        self.head = 0  # order[:head] are all taken
        self.changed = threading.Condition()
        self.closed = False

    def start(self) -> None:
        """Sign ahead from now on; the first batch is marked at once, so the senders wait for it
        rather than sign it too."""
        with self.changed:
            first = self._unsigned(self.first)
            self.signing.update(first)
        threading.Thread(target=self._sign_ahead, args=(first,), name="part-signer", daemon=True).start()

    def close(self) -> None:
        with self.changed:
            self.closed = True
            self.changed.notify_all()

    def url(self, number: int) -> SignedUrl:
        with self.changed:
            if number not in self.taken:
                self.taken.add(number)
                self.changed.notify_all()  # the ahead thread looks one part further
            while number in self.signing:
                self.changed.wait()
            signed = self.urls.get(number)
            if signed is not None and signed.fresh():
                return signed
            batch = [number, *self._unsigned(self.batch - 1)]
            self.signing.update(batch)
        self._sign(batch)
        with self.changed:
            return self.urls[number]

    def forget(self, number: int) -> None:
        with self.changed:
            self.urls.pop(number, None)

    def _fresh(self, number: int) -> bool:
        signed = self.urls.get(number)
        return signed is not None and signed.fresh()

    def _upcoming(self) -> Iterator[int]:
        """The parts no sender asked for yet, in order (the senders take them nearly in order:
        ``head`` skips those before the first not taken, so a long upload stays linear)."""
        while self.head < len(self.order) and self.order[self.head] in self.taken:
            self.head += 1
        return (self.order[i] for i in range(self.head, len(self.order)) if self.order[i] not in self.taken)

    def _unsigned(self, limit: int) -> list[int]:
        """Up to ``limit`` upcoming parts with no fresh URL that no thread is signing."""
        return list(islice((n for n in self._upcoming() if n not in self.signing and not self._fresh(n)), limit))

    def _sign_ahead(self, batch: list[int]) -> None:
        while batch:
            try:
                self._sign(batch)
            except (CliError, OSError):
                return  # the senders sign what they lack themselves, and meet the error there
            with self.changed:
                if not all(self._fresh(n) for n in batch):
                    return  # URLs that expire within the margin: signing ahead is no use
                batch = []
                while not self.closed:
                    soon = list(islice(self._upcoming(), self.low))
                    if not soon:
                        return  # every part is in a sender's hands
                    ready = sum(1 for n in soon if n in self.signing or self._fresh(n))
                    batch = self._unsigned(self.batch) if ready < self.low else []
                    if batch:
                        self.signing.update(batch)
                        break
                    self.changed.wait()

    def _sign(self, batch: list[int]) -> None:
        """Hash (with part checksums) and sign ``batch``, whose parts this thread marked signing."""
        try:
            checksums = None
            if self.checksum_of is not None:  # side by side: hashlib releases the GIL
                with ThreadPoolExecutor(max_workers=min(len(batch), os.cpu_count() or 1)) as pool:
                    checksums = dict(zip(batch, pool.map(self.checksum_of, batch), strict=True))
            signed = {}
            for part in self.api.sign(self.upload_id, batch, checksums):
                expires = datetime.fromisoformat(part["expiresAt"].replace("Z", "+00:00"))
                n = int(part["partNumber"])
                signed[n] = SignedUrl(part["url"], expires, checksums[n] if checksums else None)
        finally:
            with self.changed:
                self.signing.difference_update(batch)
                self.changed.notify_all()
        with self.changed:
            self.urls.update(signed)
            self.changed.notify_all()


def multipart(transfer: Transfer, upload_id: str, size: int, info: dict[str, Any], *, resuming: bool) -> dict[str, Any]:
    """Send every part S3 does not hold yet (``resuming``: ask which it holds), then complete: the
    upload's record as completing left it."""
    api = transfer.api
    part_size, part_count = int(info["partSize"]), int(info["partCount"])

    def span(n: int) -> tuple[int, int]:
        start = (n - 1) * part_size
        return start, min(part_size, size - start)

    etags: dict[int, str] = {}
    if resuming:
        for part in api.parts(upload_id):
            n = int(part["partNumber"])
            sized = 1 <= n <= part_count and int(part["size"]) == span(n)[1]
            if sized and holds_these_bytes(transfer.file, span(n), part):
                etags[n] = str(part["etag"])
        console.print(f"resuming upload {upload_id}: {len(etags)} of {part_count} parts already in S3")
    todo = [n for n in range(1, part_count + 1) if n not in etags]
    done_bytes = sum(span(n)[1] for n in etags)
    checksum_of = (
        (lambda n: range_sha256(transfer.file, *span(n))) if info.get("checksumAlgorithm") == "SHA256" else None
    )
    signer = PartSigner(
        api,
        upload_id,
        todo,
        batch=min(1000, max(8, 2 * transfer.concurrency)),
        first=min(transfer.concurrency, 8),  # what the first PUTs wait to be hashed
        low=transfer.concurrency + 1,
        checksum_of=checksum_of,
    )

    with ProgressView(transfer.quiet, size, transfer.file.name) as progress:
        progress.advance(done_bytes)
        signer.start()
        try:
            etags.update(send_parts(transfer, signer, progress, upload_id, todo, span, part_count))
        finally:
            signer.close()

    parts = [{"partNumber": n, "etag": etags[n]} for n in range(1, part_count + 1)]
    try:
        return api.complete(upload_id, parts)
    except RefusedError as refusal:
        if refusal.status != 409:
            raise
        record = api.get(upload_id)
        if record["status"] not in ASSEMBLED:
            raise
        return record  # an earlier complete went through and its reply was lost: nothing left to do


def send_parts(
    transfer: Transfer,
    signer: PartSigner,
    progress: ProgressView,
    upload_id: str,
    todo: list[int],
    span: Callable[[int], tuple[int, int]],
    part_count: int,
) -> dict[int, str]:
    """The parts in ``todo``, ``--concurrency`` at a time: their ETags, or the first failure."""
    etags: dict[int, str] = {}
    work: queue.Queue[int] = queue.Queue()
    for n in todo:
        work.put(n)
    results: queue.Queue[tuple[int, str | None, BaseException | None]] = queue.Queue()

    def worker() -> None:
        while not transfer.stop.is_set():
            try:
                n = work.get_nowait()
            except queue.Empty:
                return
            try:
                results.put((n, send_part(transfer, signer, progress, upload_id, n, *span(n)), None))
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which decides
                results.put((n, None, exc))
                return

    threads = [
        threading.Thread(target=worker, name=f"part-worker-{i}", daemon=True)
        for i in range(min(transfer.concurrency, len(todo)))
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
            transfer.stop.set()
            if isinstance(error, InterruptError):
                raise InterruptError()
            raise explain_part_failure(transfer, upload_id, error)
        assert etag is not None
        etags[n] = etag
        remaining -= 1
        progress.note(f"part {n} sent ({part_count - remaining}/{part_count} in S3)")
    return etags


def send_part(
    transfer: Transfer, signer: PartSigner, progress: ProgressView, upload_id: str, n: int, start: int, length: int
) -> str:
    """PUT one part, streamed from the file as it is sent, retrying with backoff; its ETag."""
    session = transfer.s3
    failure = ""
    for attempt in range(transfer.retries + 1):
        if transfer.stop.is_set():
            raise InterruptError()
        signed = signer.url(n)
        headers = {"x-amz-checksum-sha256": signed.checksum} if signed.checksum else {}
        body = Body(
            [lambda: file_range(transfer.file, start, length)], length, progress.advance, transfer.limit, transfer.stop
        )
        try:
            reply = session.put(signed.url, data=body, headers=headers, timeout=S3_TIMEOUT)
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
            elif "BadDigest" in failure:
                # the bytes S3 got do not hash to the part's checksum: damaged on the way (send it
                # again), or the file changed since it was hashed (its checksum is computed again)
                signer.forget(n)
            elif 400 <= reply.status_code < 500 and reply.status_code not in (408, 429):
                raise RefusedError(f"S3 refused part {n}: {failure}", reply.status_code)
        progress.advance(-body.sent)
        if attempt < transfer.retries and transfer.stop.wait(backoff(attempt)):
            raise InterruptError()
    raise PartFailedError(n, transfer.retries + 1, failure)


def explain_part_failure(transfer: Transfer, upload_id: str, error: BaseException) -> CliError:
    """The clearest message for a part that would not go: the upload's own state if it changed."""
    if not isinstance(error, CliError):
        return CliError(f"part upload failed: {type(error).__name__}: {error}")
    try:
        status = transfer.api.get(upload_id)["status"]
    except CliError:
        status = "PENDING"
    if status != "PENDING":
        return RefusedError(f"upload {upload_id} is {status}: {error.message}")
    if isinstance(error, PartFailedError | UploadGoneError | NetworkError):
        error.hint = f"resume with: {transfer.resume_hint(upload_id)}"
    return error
