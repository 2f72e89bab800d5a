"""Verification, the pre-step every profile runs before its steps (profiles list it first, as
``"verify"``; it is not a registered step): the object in the bucket is the one the upload
declared (size, upload-id metadata, SHA-256 when the client gave one) and its bytes are of the
declared type (sniffed, executables refused whatever the type).

Reading is one streaming pass: the SHA-256, the first bytes for the sniffer and, when a
later step needs them, a spooled copy of the bytes (memory, then /tmp). Handed a promotion
(``storage.Promotion``, for a profile with no other step), it starts S3's copy of the same
version once the size, the metadata and the head's type pass, so that S3 copies while the rest
is read and hashed; the caller keeps the copy only if S3's SHA-256 of it is the one computed here.

Except where S3 verified the SHA-256 already: a client that declared ``checksumSha256`` had it
pinned in its POST policy as S3's checksum field, so S3 refused any other bytes and keeps that
checksum for the object (type FULL_OBJECT). When the GET says so (SHA256, FULL_OBJECT, equal to
the declaration) and no step needs the bytes, only the head the sniffer looks at is read and
S3's checksum is recorded as the SHA-256; the size still comes from S3. Anything else (no
declaration, a multipart upload's COMPOSITE checksum, a checksum other than the declared one) is
hashed here as before.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from typing import IO

from directupload import presign, sniff
from directupload.errors import Rejected
from directupload.models import UploadRecord
from directupload.observability import logger
from directupload.processing.steps import StepResult, VerifiedObject
from directupload.storage import ObjectHead, Promotion, Storage

# Bodies a step needs are kept in memory up to this size, then spill to /tmp.
SPOOL_IN_MEMORY = 8 * 1024 * 1024


class ObjectMissingError(LookupError):
    """The notification arrived but the object is not (yet) readable: transient, retried."""


def verify(
    record: UploadRecord,
    bucket: str,
    storage: Storage,
    *,
    etag: str | None = None,
    keep_body: bool = False,
    allow_active: bool = False,
    promotion: Promotion | None = None,
) -> VerifiedObject:
    """Check the object against its record; raise ``Rejected`` when it can never be accepted.

    With ``etag`` exactly that version of the staging object is read (one GET, its head and
    bytes together): ``storage.VersionChanged`` when it was written again since. With
    ``promotion``, its copy is started as soon as the size, the metadata and the sniffed head
    pass, so that S3 copies while the rest is read and hashed (the caller finishes it or, on
    any error, abandons it)."""
    # S3's checksum is asked for only where it can stand in for ours: the client declared one
    opened = storage.open(record.key, etag, checksum=record.checksum_sha256 is not None and not keep_body)
    if opened is None:
        raise ObjectMissingError(f"object {record.key} is not in the bucket (yet)")
    head, stream = opened
    try:
        if not keep_body and s3_verified(record, head):
            obj = _trust_s3(record, bucket, head, storage.read_head(stream, sniff.HEAD_BYTES), allow_active)
            if promotion is not None:
                promotion.start(head.size, obj.sniffed_type or record.content_type)
            return obj
        return _check(record, bucket, head, storage.chunks(stream), keep_body, allow_active, promotion)
    finally:
        stream.close()


def s3_verified(record: UploadRecord, head: ObjectHead) -> bool:
    """Whether S3 verified the whole object against the SHA-256 the client declared."""
    return (
        record.checksum_sha256 is not None
        and head.checksum_type == "FULL_OBJECT"
        and head.checksum_sha256 == presign.sha256_base64(record.checksum_sha256)
    )


def _check_head(record: UploadRecord, head: ObjectHead) -> None:
    if record.size_exact and head.size != record.size:
        raise Rejected("size-mismatch", f"the object has {head.size} bytes, the upload declared {record.size}")
    if not record.size_exact and not record.min_size <= head.size <= record.size:
        raise Rejected("size-mismatch", f"the object has {head.size} bytes, outside {record.min_size}..{record.size}")
    if head.metadata.get("upload-id") != record.upload_id:
        raise Rejected("metadata-mismatch", "the object's upload-id metadata does not match its key")


def _trust_s3(record: UploadRecord, bucket: str, head: ObjectHead, first: bytes, allow_active: bool) -> VerifiedObject:
    _check_head(record, head)
    if record.checksum_sha256 is None:  # s3_verified() is true only with a declared SHA-256
        raise ValueError("no declared SHA-256 to trust")
    obj = VerifiedObject(
        record=record,
        bucket=bucket,
        key=record.key,
        size=head.size,
        sha256=record.checksum_sha256,  # S3's, which s3_verified found equal to the declaration
        sniffed_type=sniff.sniff(first),
        etag=head.etag,
    )
    if len(first) != min(head.size, sniff.HEAD_BYTES):
        raise Rejected("size-mismatch", f"read {len(first)} bytes of the head, S3 announced {head.size}")
    why = sniff.mismatch(record.content_type, first, obj.sniffed_type, allow_active=allow_active)
    if why:
        raise Rejected("type-mismatch", why)
    logger.info("sha256 verified by S3", upload_id=record.upload_id, size=head.size, read=len(first))
    return obj


def _check(
    record: UploadRecord,
    bucket: str,
    head: ObjectHead,
    chunks: Iterator[bytes],
    keep_body: bool,
    allow_active: bool,
    promotion: Promotion | None = None,
) -> VerifiedObject:
    _check_head(record, head)
    head_bytes = min(head.size, sniff.HEAD_BYTES)

    digest = hashlib.sha256()
    first = bytearray()
    seen = 0
    body: IO[bytes] | None = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) if keep_body else None  # noqa: SIM115
    try:
        for chunk in chunks:
            digest.update(chunk)
            seen += len(chunk)
            if len(first) < sniff.HEAD_BYTES:
                first += chunk[: sniff.HEAD_BYTES - len(first)]
                if promotion is not None and len(first) >= head_bytes:
                    _start(promotion, record, head, bytes(first), allow_active)
            if body is not None:
                body.write(chunk)
        obj = VerifiedObject(
            record=record,
            bucket=bucket,
            key=record.key,
            size=seen,
            sha256=digest.hexdigest(),
            sniffed_type=sniff.sniff(bytes(first)),
            etag=head.etag,
            body=body,
        )
        if seen != head.size:
            raise Rejected("size-mismatch", f"read {seen} bytes, S3 announced {head.size}")
        if record.checksum_sha256 and record.checksum_sha256 != obj.sha256:
            raise Rejected("checksum-mismatch", "the SHA-256 of the bytes is not the one the client declared")
        why = sniff.mismatch(record.content_type, bytes(first), obj.sniffed_type, allow_active=allow_active)
        if why:
            raise Rejected("type-mismatch", why)
    except BaseException:
        if body is not None:
            body.close()
        raise
    return obj


def _start(promotion: Promotion, record: UploadRecord, head: ObjectHead, first: bytes, allow_active: bool) -> None:
    """Start the promotion's copy once the head is read, unless the head's type already fails
    (that rejection is still decided after the whole read, as before: the size and checksum first)."""
    sniffed = sniff.sniff(first)
    if not sniff.mismatch(record.content_type, first, sniffed, allow_active=allow_active):
        promotion.start(head.size, sniffed or record.content_type)


def run(obj: VerifiedObject) -> StepResult:
    """The fields every processed upload reports, before any step's: what was verified."""
    return StepResult(fields={"size": obj.size, "sha256": obj.sha256, "contentType": obj.sniffed_type})
