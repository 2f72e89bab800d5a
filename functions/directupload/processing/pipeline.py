"""From an S3 ObjectCreated notification to a recorded outcome and one event.

    PENDING/FAILED --start--> UPLOADED --steps ok--> PROCESSED   (event: Upload Processed)
                                       --Rejected--> REJECTED    (event: Upload Rejected)
                                       --error----> retried; on the last attempt FAILED
                                                    (event: Upload Failed) and the message
                                                    goes on to the dead-letter queue

A notification for an upload already final is a duplicate and changes nothing.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from directupload import events, keys, sniff
from directupload.errors import Rejected
from directupload.models import TERMINAL, Status, UploadError, UploadRecord, utcnow
from directupload.observability import logger, metrics
from directupload.processing.steps import Step, VerifiedObject, registry
from directupload.profiles import Profile
from directupload.storage import Storage
from directupload.store import TransitionRefused, UploadStore

# Bodies a step needs are kept in memory up to this size, then spill to /tmp.
SPOOL_IN_MEMORY = 8 * 1024 * 1024


@dataclass(frozen=True)
class ObjectRef:
    """One S3 notification's object: what identifies this version of it."""

    bucket: str
    key: str
    size: int | None = None
    etag: str | None = None
    sequencer: str | None = None
    version_id: str | None = None


class Outcome:
    PROCESSED = "processed"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    ORPHAN = "orphan"


class Processor:
    def __init__(
        self,
        *,
        profiles: dict[str, Profile],
        store: UploadStore,
        storage: Storage,
        publisher: events.EventPublisher,
        rejected_objects: str = "quarantine",
        clock: Callable[[], datetime] = utcnow,
        steps: dict[str, Step] | None = None,
    ) -> None:
        self.profiles = profiles
        self.store = store
        self.storage = storage
        self.publisher = publisher
        self.rejected_objects = rejected_objects
        self.clock = clock
        self._steps = steps

    @property
    def steps(self) -> dict[str, Step]:
        if self._steps is None:
            self._steps = registry()
        return self._steps

    # entry point
    def process(self, ref: ObjectRef) -> str:
        upload_id = keys.upload_id_from_key(ref.key)
        if upload_id is None:
            logger.warning("object outside the incoming/{id}/ scheme ignored", key=ref.key)
            return Outcome.IGNORED
        logger.append_keys(upload_id=upload_id)
        record = self.store.get(upload_id)
        if record is None or record.key != ref.key:
            return self._orphan(ref)
        if record.status in TERMINAL:
            if record.status in (Status.CANCELLED, Status.EXPIRED) and self.storage.head(ref.key) is not None:
                # bytes arrived for an upload that was called off: they must not stay
                self._dispose(ref.key)
            logger.info("duplicate notification for a final upload", status=record.status.value)
            metrics.add_metric(name="DuplicateNotifications", unit="Count", value=1)
            return Outcome.DUPLICATE

        started = time.perf_counter()
        try:
            record = self.store.transition(
                upload_id, Status.UPLOADED, [Status.PENDING, Status.UPLOADED, Status.FAILED], now=self.clock()
            )
        except TransitionRefused:
            return Outcome.DUPLICATE  # another delivery finished it a moment ago
        profile = self.profiles.get(record.profile)
        try:
            if profile is None:
                raise Rejected("unknown-profile", f"profile {record.profile!r} is no longer configured")
            result = self._run(record, profile, ref)
        except Rejected as rejection:
            return self._reject(record, ref, rejection)
        return self._accept(record, ref, result, time.perf_counter() - started)

    def fail(self, ref: ObjectRef, reason: str) -> None:
        """Record that the retries for ``ref`` ran out (its message goes to the dead-letter queue)."""
        upload_id = keys.upload_id_from_key(ref.key)
        if upload_id is None:
            return
        error = UploadError(code="processing-failed", message=reason[:500])
        try:
            record = self.store.transition(
                upload_id,
                Status.FAILED,
                [Status.PENDING, Status.UPLOADED, Status.FAILED],
                now=self.clock(),
                error=error.model_dump(),
            )
        except TransitionRefused:
            return
        metrics.add_metric(name="UploadsFailed", unit="Count", value=1)
        logger.error("processing failed for good; message goes to the dead-letter queue", reason=reason[:500])
        self.publisher.publish(events.FAILED, self._detail(record, ref, error=error.model_dump()))

    # steps
    def _run(self, record: UploadRecord, profile: Profile, ref: ObjectRef) -> dict[str, Any]:
        wanted = [self.steps[name] for name in profile.steps if name != "verify"]
        obj = self._verify(record, ref, keep_body=any(step.needs_body for step in wanted))
        try:
            result: dict[str, Any] = {"size": obj.size, "sha256": obj.sha256, "contentType": obj.sniffed_type}
            for step in wanted:
                with logger.append_context_keys(step=step.name):
                    result.update(step.run(obj, self.storage))
            return result
        finally:
            if obj.body is not None:
                obj.body.close()

    def _verify(self, record: UploadRecord, ref: ObjectRef, keep_body: bool) -> VerifiedObject:
        head = self.storage.head(record.key)
        if head is None:
            raise LookupError(f"object {record.key} is not in the bucket (yet)")  # transient: retry
        if head.size != record.size:
            raise Rejected("size-mismatch", f"the object has {head.size} bytes, the upload declared {record.size}")
        if head.metadata.get("upload-id") != record.upload_id:
            raise Rejected("metadata-mismatch", "the object's upload-id metadata does not match its key")

        digest = hashlib.sha256()
        first = bytearray()
        seen = 0
        body = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) if keep_body else None  # noqa: SIM115
        try:
            for chunk in self.storage.stream(record.key):
                digest.update(chunk)
                seen += len(chunk)
                if len(first) < sniff.HEAD_BYTES:
                    first += chunk[: sniff.HEAD_BYTES - len(first)]
                if body is not None:
                    body.write(chunk)
        except BaseException:
            if body is not None:
                body.close()
            raise
        obj = VerifiedObject(
            record=record,
            bucket=ref.bucket,
            key=record.key,
            size=seen,
            sha256=digest.hexdigest(),
            sniffed_type=sniff.sniff(bytes(first)),
            etag=head.etag,
            body=body,
        )
        reason = None
        if seen != record.size:
            reason = ("size-mismatch", f"read {seen} bytes, the upload declared {record.size}")
        elif record.checksum_sha256 and record.checksum_sha256 != obj.sha256:
            reason = ("checksum-mismatch", "the SHA-256 of the bytes is not the one the client declared")
        else:
            why = sniff.mismatch(record.content_type, bytes(first), obj.sniffed_type)
            if why:
                reason = ("type-mismatch", why)
        if reason:
            if body is not None:
                body.close()
            raise Rejected(*reason)
        return obj

    # outcomes
    def _accept(self, record: UploadRecord, ref: ObjectRef, result: dict[str, Any], elapsed: float) -> str:
        try:
            record = self.store.transition(
                record.upload_id,
                Status.PROCESSED,
                [Status.UPLOADED],
                now=self.clock(),
                sha256=result["sha256"],
                result=result,
                remove=["error"],
            )
        except TransitionRefused:
            return Outcome.DUPLICATE
        metrics.add_metric(name="UploadsProcessed", unit="Count", value=1)
        metrics.add_metric(name="BytesProcessed", unit="Bytes", value=record.size)
        metrics.add_metric(name="ProcessingDuration", unit="Milliseconds", value=round(elapsed * 1000, 1))
        logger.info("upload processed", size=record.size, sniffed=result.get("contentType"))
        self.publisher.publish(events.PROCESSED, self._detail(record, ref, result=result))
        return Outcome.PROCESSED

    def _reject(self, record: UploadRecord, ref: ObjectRef, rejection: Rejected) -> str:
        error = UploadError(code=rejection.code, message=rejection.message[:500])
        try:
            record = self.store.transition(
                record.upload_id, Status.REJECTED, [Status.UPLOADED], now=self.clock(), error=error.model_dump()
            )
        except TransitionRefused:
            return Outcome.DUPLICATE
        self._dispose(record.key)
        metrics.add_metric(name="UploadsRejected", unit="Count", value=1)
        logger.warning("upload rejected", code=rejection.code, reason=rejection.message[:200])
        self.publisher.publish(events.REJECTED, self._detail(record, ref, error=error.model_dump()))
        return Outcome.REJECTED

    def _orphan(self, ref: ObjectRef) -> str:
        """An object under incoming/ that no upload record owns: never kept where it can be served."""
        logger.warning("object with no upload record quarantined", key=ref.key)
        metrics.add_metric(name="OrphanObjects", unit="Count", value=1)
        if self.storage.head(ref.key) is not None:
            self.storage.move(ref.key, keys.quarantine_key(ref.key))
        return Outcome.ORPHAN

    def _dispose(self, key: str) -> None:
        if self.storage.head(key) is None:
            return
        if self.rejected_objects == "quarantine":
            self.storage.move(key, keys.quarantine_key(key))
        else:
            self.storage.delete(key)

    def _detail(self, record: UploadRecord, ref: ObjectRef, **outcome: Any) -> dict[str, Any]:
        return {
            "uploadId": record.upload_id,
            "owner": record.owner,
            "profile": record.profile,
            "bucket": ref.bucket,
            "key": record.key,
            "size": record.size,
            "contentType": record.content_type,
            "sha256": record.sha256,
            "processedAt": self.clock().isoformat(),
            **outcome,
        }
