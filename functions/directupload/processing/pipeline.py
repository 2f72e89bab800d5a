"""From an S3 ObjectCreated notification to a recorded outcome and one event.

    PENDING --first delivery--> UPLOADED --steps ok--> PROCESSED   (event: Upload Processed)
                                         --Rejected--> REJECTED    (event: Upload Rejected)
                                         --error----> retried; on the last attempt
    UPLOADED/PENDING --retries ran out--> FAILED                   (event: Upload Failed)
    FAILED --a later delivery (redrive)--> PROCESSED | REJECTED    (their event)

PROCESSED and REJECTED are final, and each upload reaches one of them at most once: every
status change is a conditional write naming the states it may leave. A notification for a
final upload is a duplicate and changes nothing, unless the attempt that made it final
stopped before its event went out (see outbox.py): then this delivery finishes the job.
FAILED is not final: the upload waits for its message to be redriven. It is entered once,
so ``Upload Failed`` is sent at most once per upload.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from directupload import events, keys
from directupload.errors import Rejected
from directupload.models import TERMINAL, Status, UploadError, UploadRecord, utcnow
from directupload.observability import logger, metrics
from directupload.processing import verify
from directupload.processing.outbox import ATTRIBUTE as PENDING_EVENT
from directupload.processing.outbox import Outbox
from directupload.processing.steps import Step, StepResult, VerifiedObject, registry
from directupload.profiles import Profile
from directupload.storage import Storage
from directupload.store import TransitionRefused, UploadStore

T = TypeVar("T")

# The last word about an upload (FAILED, an outcome's marker removed) is worth a few tries
# inside the attempt: a throttled write here would otherwise cost a whole redelivery.
FINAL_WRITE_ATTEMPTS = 3
_TRANSIENT = (ClientError, BotoCoreError, events.PublishFailedError)

_EVENT_OF = {Status.PROCESSED: events.PROCESSED, Status.REJECTED: events.REJECTED}


@dataclass(frozen=True)
class ObjectRef:
    """One S3 notification's object: what identifies this version of it."""

    bucket: str
    key: str
    size: int | None = None
    etag: str | None = None
    sequencer: str | None = None
    version_id: str | None = None


class PendingSlots(Protocol):
    """The owner's quota of uploads issued but not yet arrived (quotas.OwnerQuota)."""

    def release(self, owner: str, upload_id: str) -> None: ...


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
        outbox: Outbox | None = None,
        quota: PendingSlots | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.profiles = profiles
        self.store = store
        self.storage = storage
        self.publisher = publisher
        self.rejected_objects = rejected_objects
        self.clock = clock
        self._steps = steps
        self.outbox = outbox or Outbox(store.table_name, store.client)
        self.quota = quota
        self.sleep = sleep

    @property
    def steps(self) -> dict[str, Step]:
        if self._steps is None:
            self._steps = registry()
        return self._steps

    # entry points
    def process(self, ref: ObjectRef) -> str:
        """Handle one notification. Raises on a transient failure (the message is retried)."""
        upload_id = keys.upload_id_from_key(ref.key)
        if upload_id is None:
            logger.warning("object outside the incoming/{id}/ scheme ignored", key=ref.key)
            return Outcome.IGNORED
        logger.append_keys(upload_id=upload_id)
        record = self.store.get(upload_id)
        if record is None or record.key != ref.key:
            return self._orphan(ref)
        if record.status in TERMINAL:
            return self._already_final(record, ref)

        started = time.perf_counter()
        if record.status == Status.PENDING:
            try:
                record = self.store.transition(upload_id, Status.UPLOADED, [Status.PENDING], now=self.clock())
            except TransitionRefused:
                return self.process(ref)  # another delivery moved it on a moment ago: look again
            self._release_slot(record)
        # UPLOADED (an earlier attempt failed) or FAILED (redriven): run again; FAILED stays
        # FAILED until an outcome replaces it, so a parallel last attempt cannot fail it twice
        profile = self.profiles.get(record.profile)
        try:
            if profile is None:
                raise Rejected("unknown-profile", f"profile {record.profile!r} is no longer configured")
            result = self._run(record, profile, ref)
        except Rejected as rejection:
            return self._reject(record, ref, rejection, time.perf_counter() - started)
        return self._accept(record, ref, result, time.perf_counter() - started)

    def fail(self, ref: ObjectRef, reason: str) -> bool:
        """The retries for ``ref`` ran out (its message moves to the dead-letter queue): record
        FAILED with the reason and send ``Upload Failed``. Never raises for a transient error:
        the message parks in the dead-letter queue either way. True when the upload became FAILED."""
        upload_id = keys.upload_id_from_key(ref.key)
        if upload_id is None:
            return False
        error = UploadError(code="processing-failed", message=reason[:500])
        try:
            record = self._final_write(
                lambda: self.store.transition(
                    upload_id,
                    Status.FAILED,
                    [Status.PENDING, Status.UPLOADED],
                    now=self.clock(),
                    error=error.model_dump(),
                )
            )
        except TransitionRefused:
            return False  # final already, or FAILED by another message of the same upload
        except _TRANSIENT as exc:
            logger.exception("could not record FAILED; the message parks in the dead-letter queue", error=str(exc))
            return False
        metrics.add_metric(name="UploadsFailed", unit="Count", value=1)
        logger.error("processing failed for good; the message goes to the dead-letter queue", reason=reason[:500])
        try:
            self._final_write(lambda: self.publisher.publish(events.FAILED, self._detail(record, ref)))
        except _TRANSIENT:
            logger.exception("Upload Failed event not sent")
        return True

    # steps
    def _run(self, record: UploadRecord, profile: Profile, ref: ObjectRef) -> dict[str, Any]:
        wanted = [self.steps[name] for name in profile.steps if name != "verify"]
        obj = verify.verify(record, ref.bucket, self.storage, keep_body=any(step.needs_body for step in wanted))
        try:
            result: dict[str, Any] = {}
            for step in [self.steps["verify"], *wanted]:
                with logger.append_context_keys(step=step.name):
                    outcome = step.run(obj)
                    self._store_derived(obj, outcome)
                    result.update(outcome.fields)
            return result
        finally:
            if obj.body is not None:
                obj.body.close()

    def _store_derived(self, obj: VerifiedObject, outcome: StepResult) -> None:
        for derived in outcome.derived:
            # same key on every attempt: a retry overwrites, never piles up
            self.storage.put(obj.derived_key(derived.name), derived.data, derived.content_type)

    # outcomes
    def _accept(self, record: UploadRecord, ref: ObjectRef, result: dict[str, Any], elapsed: float) -> str:
        try:
            record = self.store.transition(
                record.upload_id,
                Status.PROCESSED,
                [Status.UPLOADED, Status.FAILED],
                now=self.clock(),
                sha256=result["sha256"],
                result=result,
                remove=["error"],
                **{PENDING_EVENT: events.PROCESSED},
            )
        except TransitionRefused:
            return self._lost_race(record.upload_id)
        metrics.add_metric(name="UploadsProcessed", unit="Count", value=1)
        metrics.add_metric(name="BytesProcessed", unit="Bytes", value=record.size)
        metrics.add_metric(name="ProcessingDuration", unit="Milliseconds", value=round(elapsed * 1000, 1))
        logger.info("upload processed", size=record.size, sniffed=result.get("contentType"))
        return self._settle(record, ref)

    def _reject(self, record: UploadRecord, ref: ObjectRef, rejection: Rejected, elapsed: float) -> str:
        error = UploadError(code=rejection.code, message=rejection.message[:500])
        try:
            record = self.store.transition(
                record.upload_id,
                Status.REJECTED,
                [Status.UPLOADED, Status.FAILED],
                now=self.clock(),
                error=error.model_dump(),
                **{PENDING_EVENT: events.REJECTED},
            )
        except TransitionRefused:
            return self._lost_race(record.upload_id)
        metrics.add_metric(name="UploadsRejected", unit="Count", value=1)
        metrics.add_metric(name="ProcessingDuration", unit="Milliseconds", value=round(elapsed * 1000, 1))
        logger.warning("upload rejected", code=rejection.code, reason=rejection.message[:200])
        return self._settle(record, ref)

    def _settle(self, record: UploadRecord, ref: ObjectRef) -> str:
        """What a final record still owes: the object disposed of (rejected) and the event.
        Raises when the event cannot be sent: the record keeps its marker and a retry finishes."""
        if record.status == Status.REJECTED:
            self._dispose(record.key)
        self.publisher.publish(_EVENT_OF[record.status], self._detail(record, ref))
        try:
            self._final_write(lambda: self.outbox.clear(record.upload_id))
        except _TRANSIENT:
            # The event is out. Raising would send it again on the retry; a marker left
            # behind only matters if this upload is ever processed again.
            logger.exception("event sent but its outbox marker stays", status=record.status.value)
            metrics.add_metric(name="OutboxMarkersLeft", unit="Count", value=1)
        return Outcome.PROCESSED if record.status == Status.PROCESSED else Outcome.REJECTED

    def _already_final(self, record: UploadRecord, ref: ObjectRef) -> str:
        if record.status in (Status.CANCELLED, Status.EXPIRED):
            if self.storage.head(ref.key) is not None:
                self._dispose(ref.key)  # bytes arrived for an upload that was called off: they must not stay
        elif self.outbox.pending(record.upload_id):
            logger.info("finishing an outcome an earlier attempt left unannounced", status=record.status.value)
            return self._settle(record, ref)
        logger.info("duplicate notification for a final upload", status=record.status.value)
        metrics.add_metric(name="DuplicateNotifications", unit="Count", value=1)
        return Outcome.DUPLICATE

    def _release_slot(self, record: UploadRecord) -> None:
        """The bytes arrived: the upload no longer counts against its owner's pending uploads."""
        if self.quota is None:
            return
        try:
            self.quota.release(record.owner, record.upload_id)
        except _TRANSIENT:
            logger.warning("pending slot not released; it lapses when the upload URL expires")

    def _lost_race(self, upload_id: str) -> str:
        logger.info("another delivery settled this upload first")
        metrics.add_metric(name="DuplicateNotifications", unit="Count", value=1)
        return Outcome.DUPLICATE

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

    def _final_write(self, write: Callable[[], T]) -> T:
        for attempt in range(1, FINAL_WRITE_ATTEMPTS + 1):
            try:
                return write()
            except _TRANSIENT:
                if attempt == FINAL_WRITE_ATTEMPTS:
                    raise
                self.sleep(0.1 * 2**attempt)
        raise AssertionError("unreachable")

    def _detail(self, record: UploadRecord, ref: ObjectRef) -> dict[str, Any]:
        """The event detail, built from the stored record alone: a retry sends the same event."""
        detail: dict[str, Any] = {
            "uploadId": record.upload_id,
            "owner": record.owner,
            "profile": record.profile,
            "bucket": ref.bucket,
            "key": record.key,
            "size": record.size,
            "contentType": record.content_type,
            "sha256": record.sha256,
            "processedAt": record.updated_at.isoformat(),
        }
        if record.status == Status.PROCESSED:
            detail["result"] = record.result or {}
        elif record.error is not None:
            detail["error"] = record.error.model_dump()
        return detail
