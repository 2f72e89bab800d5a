"""The ``verify`` step, run for every profile before any other: the object in the bucket is
the one the upload declared (size, upload-id metadata, SHA-256 when the client gave one)
and its bytes are of the declared type (sniffed, executables refused whatever the type).

Reading is one streaming pass: the SHA-256, the first bytes for the sniffer and, when a
later step needs them, a spooled copy of the bytes (memory, then /tmp).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from typing import IO

from directupload import sniff
from directupload.errors import Rejected
from directupload.models import UploadRecord
from directupload.processing.steps import StepResult, VerifiedObject
from directupload.storage import ObjectHead, Storage

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
) -> VerifiedObject:
    """Check the object against its record; raise ``Rejected`` when it can never be accepted.

    With ``etag`` exactly that version of the staging object is read (one GET, its head and
    bytes together): ``storage.VersionChanged`` when it was written again since."""
    opened = storage.open(record.key, etag)
    if opened is None:
        raise ObjectMissingError(f"object {record.key} is not in the bucket (yet)")
    head, stream = opened
    try:
        return _check(record, bucket, head, storage.chunks(stream), keep_body, allow_active)
    finally:
        stream.close()


def _check(
    record: UploadRecord, bucket: str, head: ObjectHead, chunks: Iterator[bytes], keep_body: bool, allow_active: bool
) -> VerifiedObject:
    if record.size_exact and head.size != record.size:
        raise Rejected("size-mismatch", f"the object has {head.size} bytes, the upload declared {record.size}")
    if not record.size_exact and not record.min_size <= head.size <= record.size:
        raise Rejected("size-mismatch", f"the object has {head.size} bytes, outside {record.min_size}..{record.size}")
    if head.metadata.get("upload-id") != record.upload_id:
        raise Rejected("metadata-mismatch", "the object's upload-id metadata does not match its key")

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


def run(obj: VerifiedObject) -> StepResult:
    """The fields every processed upload reports: what was verified."""
    return StepResult(fields={"size": obj.size, "sha256": obj.sha256, "contentType": obj.sniffed_type})
