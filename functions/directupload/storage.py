"""UploadsBucket adapter: the few S3 operations the functions perform."""

from __future__ import annotations

import base64
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from botocore.exceptions import ClientError

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ObjectHead:
    size: int
    content_type: str | None
    etag: str
    metadata: dict[str, str]
    version_id: str | None
    # The checksum S3 verified and keeps for the object (GetObject with ChecksumMode=ENABLED):
    # base64 SHA-256, and FULL_OBJECT (of the whole object) or COMPOSITE (of its parts' checksums)
    checksum_sha256: str | None = None
    checksum_type: str | None = None


@dataclass(frozen=True)
class StoredPart:
    part_number: int
    etag: str
    size: int
    checksum_sha256: str | None = None  # base64, when the upload was created with SHA256


class VersionChanged(Exception):
    """The object is no longer the version (ETag) asked for: it was written again since."""


class DeleteFailedError(RuntimeError):
    """S3 answered a batch delete with per-object errors (throttled, denied): retry."""


class NoSuchUpload(Exception):
    """S3 has no multipart upload by that id (completed, aborted or never made)."""


class PartsRefused(Exception):
    """S3 refused to assemble the parts (a part missing, its ETag stale, one too small)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# CopyObject copies up to 5 GiB in one request; larger objects are copied in parts.
MAX_SINGLE_COPY = 5 * 1024**3


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


# What S3 answers CompleteMultipartUpload when the part list does not hold.
_PARTS_CODES = frozenset({"InvalidPart", "InvalidPartOrder", "EntityTooSmall", "MalformedXML"})


def _is_no_such_upload(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    code = error.get("Code", "")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code == "NoSuchUpload" or status == 404:
        return True
    # moto answers an unknown UploadId on UploadPart and CompleteMultipartUpload with a bare
    # 500 (no S3 error document, so botocore names the code "500"). S3 itself sends
    # NoSuchUpload; its genuine 500s carry the code InternalError and stay server errors.
    return status == 500 and code == "500"


def _copy_extra(etag: str, content_type: str, metadata: dict[str, str]) -> dict[str, Any]:
    """A promotion copy's conditions and headers: of exactly version ``etag``, with its own type and metadata."""
    return {
        "CopySourceIfMatch": f'"{etag}"',
        "MetadataDirective": "REPLACE",
        "ContentType": content_type,
        "Metadata": metadata,
    }


class UnknownBucket(LookupError):
    """A bucket that is not one of the configured set (UPLOADS_BUCKETS)."""


class Storage:
    """One bucket's objects; ``in_bucket`` gives the same operations on another configured bucket
    (several buckets: a profile may name its own, and each record says which one holds it)."""

    def __init__(
        self,
        bucket: str,
        client: Any,
        single_copy_limit: int = MAX_SINGLE_COPY,
        *,
        buckets: tuple[str, ...] = (),
    ) -> None:
        self.bucket = bucket
        self.client = client
        self.single_copy_limit = single_copy_limit  # above it, copies are made in parts
        self.buckets = tuple(dict.fromkeys((bucket, *buckets)))  # the default first
        self._siblings: dict[str, Storage] = {bucket: self}
        self._default = self
        self.bytes_read = 0  # of object bodies, by ``chunks`` and ``read_head``: what reading cost

    def in_bucket(self, name: str | None) -> Storage:
        """This storage for the bucket ``name`` (None: the default bucket, for records written
        before records named their bucket). A bucket outside the configured set is refused."""
        if name is None:
            return self._default
        if name == self.bucket:
            return self
        if name not in self.buckets:
            raise UnknownBucket(f"bucket {name!r} is not one of the configured buckets {list(self.buckets)}")
        sibling = self._siblings.get(name)
        if sibling is None:
            sibling = Storage(name, self.client, self.single_copy_limit, buckets=self.buckets)
            sibling.buckets, sibling._siblings, sibling._default = self.buckets, self._siblings, self._default
            self._siblings[name] = sibling
        return sibling

    # reading
    def tag(self, key: str, name: str) -> str | None:
        """The value of the object's tag ``name`` (None when it has none, or there is no object)."""
        try:
            reply = self.client.get_object_tagging(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise
        return next((t["Value"] for t in reply.get("TagSet", []) if t.get("Key") == name), None)

    def head(self, key: str) -> ObjectHead | None:
        try:
            reply = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return ObjectHead(
            size=int(reply["ContentLength"]),
            content_type=reply.get("ContentType"),
            etag=str(reply.get("ETag", "")).strip('"'),
            metadata={k.lower(): v for k, v in reply.get("Metadata", {}).items()},
            version_id=reply.get("VersionId"),
        )

    def open(self, key: str, etag: str | None = None, *, checksum: bool = False) -> tuple[ObjectHead, Any] | None:
        """The object's head and its body (read it with ``chunks``, close it) from one GET, or None
        when it is missing. With ``etag``, exactly that version: VersionChanged if it was written again.
        With ``checksum``, the head carries the checksum S3 keeps for the object (ChecksumMode)."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if checksum:
            params["ChecksumMode"] = "ENABLED"
        if etag:
            params["IfMatch"] = f'"{etag}"'
        try:
            reply = self.client.get_object(**params)
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                return None
            if _code(exc) in ("PreconditionFailed", "412"):
                raise VersionChanged(key) from exc
            raise
        head = ObjectHead(
            size=int(reply["ContentLength"]),
            content_type=reply.get("ContentType"),
            etag=str(reply.get("ETag", "")).strip('"'),
            metadata={k.lower(): v for k, v in reply.get("Metadata", {}).items()},
            version_id=reply.get("VersionId"),
            checksum_sha256=reply.get("ChecksumSHA256"),
            checksum_type=reply.get("ChecksumType"),
        )
        return head, reply["Body"]

    def read_head(self, body: Any, size: int) -> bytes:
        """The body's first ``size`` bytes (fewer when it is shorter); the rest is never read."""
        head = bytearray()
        while len(head) < size and (chunk := body.read(size - len(head))):
            head += chunk
        self.bytes_read += len(head)
        return bytes(head)

    def stream(self, key: str, chunk_size: int = CHUNK, read_ahead: int = 2) -> Iterator[bytes]:
        """The object's bytes in order (see ``chunks``)."""
        return self.chunks(self.client.get_object(Bucket=self.bucket, Key=key)["Body"], chunk_size, read_ahead)

    def exists(self, key: str) -> bool:
        """Whether an object has this key (ListObjectsV2: needs s3:ListBucket, never s3:GetObject)."""
        reply = self.client.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1)
        return any(item.get("Key") == key for item in reply.get("Contents", []))

    def chunks(self, body: Any, chunk_size: int = CHUNK, read_ahead: int = 2) -> Iterator[bytes]:
        """The body's bytes in order, with up to ``read_ahead`` chunks read by a thread while the
        caller works on the current one: socket reads and hashlib both release the GIL, so reading
        chunk n+1 overlaps hashing chunk n. Memory: (read_ahead + 2) chunks."""
        chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=read_ahead)
        stop = threading.Event()

        def offer(item: bytes | BaseException | None) -> bool:
            while not stop.is_set():
                try:
                    chunks.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def pump() -> None:
            try:
                for chunk in body.iter_chunks(chunk_size):
                    if not offer(chunk):
                        return
                offer(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the reader, which raises it
                offer(exc)

        thread = threading.Thread(target=pump, name="s3-read-ahead", daemon=True)
        thread.start()
        try:
            while (item := chunks.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                self.bytes_read += len(item)
                yield item
        finally:
            stop.set()
            thread.join(timeout=10)
            body.close()

    def object_url(self, key: str) -> str:
        """The object's address (path style). The bucket is private: an address, not a link."""
        endpoint = str(self.client.meta.endpoint_url).rstrip("/")
        return f"{endpoint}/{self.bucket}/{quote(key)}"

    # writing
    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def delete_all(self, keys: list[str]) -> None:
        """Remove every key (missing ones are fine) in one request per 1,000 keys."""
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            reply = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True}
            )
            errors = reply.get("Errors") or []
            if errors:
                first = errors[0]
                raise DeleteFailedError(
                    f"S3 did not delete {len(errors)} objects: {first.get('Code')} {first.get('Key')}"
                )

    def move(self, source: str, target: str, size: int) -> None:
        """Copy, then delete the source."""
        self.copy(source, target, size)
        self.delete(source)

    def copy(self, source: str, target: str, size: int, *, etag: str | None = None) -> None:
        """Copy ``source`` to ``target`` (with ``etag``, exactly that version: VersionChanged if it
        was written again); in parts above the single-copy limit (CopyObject's 5 GiB)."""
        copy_source = {"Bucket": self.bucket, "Key": source}
        extra = {"CopySourceIfMatch": f'"{etag}"'} if etag else {}
        try:
            if size <= self.single_copy_limit:
                self.client.copy_object(Bucket=self.bucket, Key=target, CopySource=copy_source, **extra)
            else:
                self._copy_in_parts(copy_source, target, extra)
        except ClientError as exc:
            if etag and _code(exc) in ("PreconditionFailed", "412"):
                raise VersionChanged(source) from exc
            raise

    def _copy_in_parts(self, copy_source: dict[str, str], target: str, extra: dict[str, Any]) -> None:
        from boto3.s3.transfer import TransferConfig

        part = max(self.single_copy_limit // 10, 5 * 1024**2, 1)  # S3's parts are 5 MiB at least
        config = TransferConfig(
            multipart_threshold=self.single_copy_limit, multipart_chunksize=min(part, 512 * 1024**2)
        )
        self.client.copy(copy_source, self.bucket, target, ExtraArgs=extra, Config=config)

    def promote(
        self,
        source: str,
        target: str,
        *,
        etag: str,
        sha256: str,
        size: int,
        content_type: str,
        metadata: dict[str, str],
    ) -> None:
        """Copy exactly version ``etag`` of ``source`` to ``target`` (VersionChanged otherwise),
        with the content type and metadata given.

        An ETag is the MD5 of a single-part object, and MD5 collisions are cheap: two files can
        share one. So S3 also computes the SHA-256 of the copy it made, and a copy whose bytes do
        not hash to ``sha256`` (what was verified) is deleted again (VersionChanged). Above 5 GiB
        the object was assembled from parts (no single POST is that large), which no client can
        write again once completed; it is copied in parts, each conditioned on the ETag."""
        if size <= self.single_copy_limit:
            self._check_copy(source, target, sha256, self._copy_once(source, target, etag, content_type, metadata))
            return
        try:
            self._copy_in_parts(
                {"Bucket": self.bucket, "Key": source}, target, _copy_extra(etag, content_type, metadata)
            )
        except ClientError as exc:
            if _code(exc) in ("PreconditionFailed", "412"):
                raise VersionChanged(source) from exc
            raise

    def promotion(self, source: str, target: str, *, etag: str, metadata: dict[str, str]) -> Promotion:
        """The promotion of version ``etag`` of ``source`` (see ``Promotion``): started once its
        head is checked, so that S3 copies while the processor reads and hashes."""
        return Promotion(self, source, target, etag=etag, metadata=metadata)

    def _copy_once(self, source: str, target: str, etag: str, content_type: str, metadata: dict[str, str]) -> str:
        """One CopyObject of version ``etag``: the base64 SHA-256 S3 computed of the copy ("" if none)."""
        try:
            reply = self.client.copy_object(
                Bucket=self.bucket,
                Key=target,
                CopySource={"Bucket": self.bucket, "Key": source},
                ChecksumAlgorithm="SHA256",
                **_copy_extra(etag, content_type, metadata),
            )
        except ClientError as exc:
            if _code(exc) in ("PreconditionFailed", "412"):
                raise VersionChanged(source) from exc
            raise
        return str(reply.get("CopyObjectResult", {}).get("ChecksumSHA256") or "")

    def _check_copy(self, source: str, target: str, sha256: str, copied: str) -> None:
        """A copy whose bytes S3 did not hash to ``sha256`` is removed again (VersionChanged)."""
        if not copied or base64.b64decode(copied).hex() != sha256:
            self.delete(target)
            raise VersionChanged(f"{source}: the copy's SHA-256 is not the verified one")

    def presign_get(self, key: str, *, expires_in: int, content_type: str, disposition: str) -> str:
        """A presigned GET whose response headers S3 sets as signed: the client cannot change them."""
        return str(
            self.client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": key,
                    "ResponseContentType": content_type,
                    "ResponseContentDisposition": disposition,
                },
                ExpiresIn=expires_in,
            )
        )

    # multipart
    def create_multipart(
        self, key: str, content_type: str, metadata: dict[str, str], checksum_algorithm: str | None = None
    ) -> str:
        """A new multipart upload. With ``checksum_algorithm`` (SHA256, whose multipart checksum is
        COMPOSITE: a checksum of the parts' checksums) S3 wants that checksum with every part."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "ContentType": content_type, "Metadata": metadata}
        if checksum_algorithm is not None:
            params["ChecksumAlgorithm"] = checksum_algorithm
        reply = self.client.create_multipart_upload(**params)
        return str(reply["UploadId"])

    def list_parts(self, key: str, s3_upload_id: str) -> list[StoredPart]:
        parts: list[StoredPart] = []
        marker = 0
        while True:
            try:
                reply = self.client.list_parts(
                    Bucket=self.bucket, Key=key, UploadId=s3_upload_id, PartNumberMarker=marker
                )
            except ClientError as exc:
                if _is_no_such_upload(exc):
                    raise NoSuchUpload(s3_upload_id) from exc
                raise
            for part in reply.get("Parts", []):
                parts.append(
                    StoredPart(
                        part_number=int(part["PartNumber"]),
                        etag=str(part["ETag"]).strip('"'),
                        size=int(part["Size"]),
                        checksum_sha256=part.get("ChecksumSHA256"),
                    )
                )
            if not reply.get("IsTruncated"):
                return parts
            marker = int(reply["NextPartNumberMarker"])

    def complete_multipart(
        self, key: str, s3_upload_id: str, parts: list[tuple[int, str]], checksums: dict[int, str] | None = None
    ) -> None:
        """Assemble the parts; ``checksums`` (part number -> base64 SHA-256) for an upload created
        with SHA256, whose completion names each part's checksum."""
        listed: list[dict[str, Any]] = []
        for n, etag in parts:
            part: dict[str, Any] = {"PartNumber": n, "ETag": f'"{etag}"'}
            if checksums and n in checksums:
                part["ChecksumSHA256"] = checksums[n]
            listed.append(part)
        try:
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=s3_upload_id, MultipartUpload={"Parts": listed}
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _PARTS_CODES:
                raise PartsRefused(code, exc.response.get("Error", {}).get("Message", code)) from exc
            if _is_no_such_upload(exc):
                raise NoSuchUpload(s3_upload_id) from exc
            raise

    def abort_multipart(self, key: str, s3_upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=s3_upload_id)
        except ClientError as exc:
            if not _is_no_such_upload(exc):
                raise


class Promotion:
    """The promotion of one staging version to ``files/`` (``Storage.promote``), overlapped with
    its verification: ``start`` (once the size, metadata and head passed) has S3 copy version
    ``etag`` in a thread while the processor reads and hashes the same version; ``finish`` waits
    for the copy and keeps it only when S3's SHA-256 of the copied bytes is the one the processor
    computed (VersionChanged otherwise, the copy removed). Leaving the ``with`` block on an error
    waits for a started copy and removes it: a copy is kept only by ``finish``.

    Nothing unverified is ever served or named: ``files/`` is no client's to read (downloads are
    signed for the ``files/`` key of a PROCESSED record only, and so are CloudFront's URLs), and
    the record names the copy only once the outcome is written, after ``finish``. Above the
    single-copy limit the copy is made in parts after the hash (``finish``), as ``promote`` does."""

    def __init__(self, storage: Storage, source: str, target: str, *, etag: str, metadata: dict[str, str]) -> None:
        self.storage = storage
        self.source = source
        self.target = target
        self.etag = etag
        self.metadata = metadata
        self._thread: threading.Thread | None = None
        self._copied: str | BaseException | None = None  # the copy's base64 SHA-256, or why it failed
        self._kept = False

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self, size: int, content_type: str) -> None:
        """Have S3 copy the version now (a thread); above the single-copy limit, nothing yet."""
        if self._thread is not None or size > self.storage.single_copy_limit:
            return

        def copy() -> None:
            try:
                self._copied = self.storage._copy_once(self.source, self.target, self.etag, content_type, self.metadata)
            except BaseException as exc:  # noqa: BLE001 - raised by finish, in the attempt's thread
                self._copied = exc

        self._thread = threading.Thread(target=copy, name="s3-promotion-copy", daemon=True)
        self._thread.start()

    def finish(self, *, sha256: str, size: int, content_type: str) -> None:
        """The verified bytes (``sha256``) promoted: the started copy kept if it is of them, else
        the copy made now."""
        if self._thread is None:
            self.storage.promote(
                self.source,
                self.target,
                etag=self.etag,
                sha256=sha256,
                size=size,
                content_type=content_type,
                metadata=self.metadata,
            )
        else:
            self._thread.join()
            if isinstance(self._copied, BaseException):
                raise self._copied
            self.storage._check_copy(self.source, self.target, sha256, self._copied or "")
        self._kept = True

    def abandon(self) -> None:
        """The attempt keeps nothing: a started copy is waited for (it may still land) and removed."""
        if self._thread is None or self._kept:
            return
        self._thread.join()
        self.storage.delete(self.target)

    def __enter__(self) -> Promotion:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if kind is not None:
            self.abandon()
