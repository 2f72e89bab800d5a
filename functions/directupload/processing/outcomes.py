"""Recording what became of an upload: the outcome's write, and the staging object after it.

The pipeline (pipeline.py) decides; this module records. Each outcome is one conditional write
that names the staging version holding the claim and the delivery that reached it
(``outcome_of``), gives the claim up, and names the event the change owes (``pending_event``):
the table's stream carries the write to the PublishFunction, which sends that event
(handlers/publisher.py), so an outcome is announced if and only if it was recorded, in the
order of the upload's changes. Everything an outcome keeps is in place before its write: the
verified copy under ``files/`` and its derived objects, or the rejected bytes' copy in
``quarantine/``. After it, only the staging object is removed; a delivery of the same
notification that finds it still there (the attempt stopped in between) removes it. A write
refused because another delivery (or a deletion) settled the upload first leaves no promoted
or quarantined copy behind that nothing accounts for.

FAILED is recorded when a notification's retries ran out (its event, ``Upload Failed``, the
same way); its write, like the staging object's removal, is worth a few tries inside the
attempt (``FINAL_WRITE_ATTEMPTS``).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from directupload import events, keys
from directupload.models import Status, UploadError, UploadRecord, Variant, utcnow
from directupload.observability import logger, metrics
from directupload.storage import Storage, VersionChanged
from directupload.store import TransitionRefused, UploadStore, earlier_receive, message_of

if TYPE_CHECKING:
    from directupload.errors import Rejected
    from directupload.processing.pipeline import ObjectRef

T = TypeVar("T")

# The last word about an upload (FAILED, the staging object's removal after an outcome) is worth
# a few tries inside the attempt: a throttled write here would otherwise cost a whole redelivery.
FINAL_WRITE_ATTEMPTS = 3
TRANSIENT = (ClientError, BotoCoreError)

_EVENT_OF = {Status.PROCESSED: events.PROCESSED, Status.REJECTED: events.REJECTED}
# A claim outlives any attempt (the ProcessFunction timeout is 15 minutes): one that lapses
# belongs to an attempt that died, and another delivery may claim the upload.
CLAIM_LIFETIME = timedelta(minutes=20)


class ClaimHeldError(RuntimeError):
    """Another attempt holds this upload (a twin delivery of the same notification, or another
    staging version being verified): retried once
    the holder is done, at the latest when its claim lapses (``retry_in`` seconds, when known).
    ``redundant``: the holder is another message's delivery of the very version this one is
    about, so that message settles it (this one may be done with once its retries run out).
    ``copy``: the holder is this very receive of this message, which SQS handed out twice: that
    delivery decides what becomes of the message and the upload, never this copy."""

    def __init__(
        self,
        message: str,
        until: datetime | None = None,
        now: datetime | None = None,
        *,
        redundant: bool = False,
        copy: bool = False,
    ) -> None:
        super().__init__(message)
        self.retry_in = max(0, int((until - now).total_seconds()) + 1) if until and now else None
        self.redundant = redundant
        self.copy = copy


def held_for_us(record: UploadRecord, etag: str | None, attempt: str) -> bool:
    """Whether ``record``'s claim is held for version ``etag`` by a delivery of another message
    than ``attempt``'s (never by a copy of the same message, which is no other message to rely on)."""
    return (
        etag is not None
        and record.claim_etag == etag
        and record.claim_by is not None
        and message_of(record.claim_by) != message_of(attempt)
    )


class Outcome:
    """What handling one notification came to (logged)."""

    PROCESSED = "processed"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    ORPHAN = "orphan"
    LATE = "late"  # bytes for a final upload, removed
    SUPERSEDED = "superseded"  # this version was overwritten before it was promoted
    STALE_VERDICT = "stale-verdict"  # a scan verdict for an upload that is final, or needs none


def delivery(ref: ObjectRef, etag: str) -> str:
    """Which write of the staging object a notification is of (S3's sequencer grows per write),
    or which verdict of the scanner on it."""
    # each verdict (its event id) and each deadline check (its own id) is a delivery of its own:
    # only the one that reached an outcome may finish the event it owes, never a twin of it
    if ref.verdict is not None:
        return f"scan-{ref.verdict.status}-{ref.verdict.event_id or '-'}/{etag}"
    if ref.deadline_check:
        return f"scan-deadline-{ref.sequencer or '-'}/{etag}"
    return f"{ref.sequencer or ref.version_id or '-'}/{etag}"


_HOLDING = "directupload_still_holding"


def left_holding(exc: BaseException) -> None:
    """Mark ``exc``: the attempt it ends still holds the upload's claim (giving it up failed). Only the attempt knows:
    a copy of the same receive beside it carries the same holder name."""
    setattr(exc, _HOLDING, True)


def still_holding(exc: BaseException) -> bool:
    return bool(getattr(exc, _HOLDING, False))


class PendingSlots(Protocol):
    """The owner's quota (quotas.OwnerQuota). An arrived upload's pending slot is not given back
    here: the next reservation that finds every slot taken reclaims those of uploads no longer
    pending, which costs an upload no request of its own."""

    def settle(self, owner: str, issued_at: datetime, refund: int) -> None: ...


class Outcomes:
    """Records outcomes of one bucket's uploads (``on`` gives the same for another bucket)."""

    def __init__(
        self,
        *,
        store: UploadStore,
        storage: Storage,
        rejected_objects: str = "quarantine",
        quota: PendingSlots | None = None,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.storage = storage
        self.rejected_objects = rejected_objects
        self.quota = quota
        self.clock = clock
        self.sleep = sleep

    def on(self, storage: Storage) -> Outcomes:
        """These outcomes recorded for the uploads of ``storage``'s bucket."""
        other = copy.copy(self)
        other.storage = storage
        return other

    def accept(
        self,
        record: UploadRecord,
        ref: ObjectRef,
        result: dict[str, Any],
        variants: dict[str, Variant],
        etag: str,
        attempt: str,
        retain_until: datetime | None,
        elapsed: float,
    ) -> str:
        """PROCESSED: staging version ``etag`` was verified and promoted, ``variants`` stored."""
        before = record
        try:
            record = self._write(
                record,
                Status.PROCESSED,
                ref,
                etag,
                attempt,
                expire_at=retain_until,  # None: kept until its owner deletes it
                sha256=result["sha256"],
                result=result,
                file_key=keys.file_key(record.key),
                size=result["size"],  # the declared size, or the real one below a ceiling
                variants={name: variant.model_dump() for name, variant in variants.items()},
                retain_until=retain_until,
                remove=["error", "scan_deadline", "scan_etag"],
            )
        except TransitionRefused:
            promoted = [keys.file_key(record.key), *(v.key for v in variants.values())]
            return self._lost_race(record, ref, etag, promoted=promoted)
        if not before.size_exact:  # after the one write that can succeed once: settled once
            self._settle_bytes(before, int(result["size"]))
        metrics.add_metric(name="UploadsProcessed", unit="Count", value=1)
        metrics.add_metric(name="BytesProcessed", unit="Bytes", value=record.size)
        metrics.add_metric(name="ProcessingDuration", unit="Milliseconds", value=round(elapsed * 1000, 1))
        logger.info("upload processed", size=record.size, sniffed=result.get("contentType"))
        return self.settle(record)

    def reject(
        self, record: UploadRecord, ref: ObjectRef, rejection: Rejected, etag: str, attempt: str, elapsed: float
    ) -> str:
        """REJECTED: staging version ``etag`` can never be accepted. Its bytes are copied to
        quarantine (if so configured) before the write, as an accepted version is promoted
        before its write: once the record is final, only the staging object is left to remove,
        and a deletion right after the outcome finds every object it must remove in place.
        VersionChanged when the staging object holds other bytes now (written again since): the
        attempt stands down and the newer version's own notification decides, so a rejection
        always names the very bytes it rejected."""
        error = UploadError(
            code=rejection.code, message=rejection.message[:500], threats=list(rejection.threats) or None
        )
        quarantined: list[str] = []
        try:
            head = self.storage.head(record.key)
            if head is not None and head.etag != etag:
                raise VersionChanged(record.key)
            if head is not None and self.rejected_objects == "quarantine":
                quarantined = [keys.quarantine_key(record.key)]
                # exactly the rejected version (in parts above 5 GiB): the evidence a rejection names
                self.storage.copy(record.key, quarantined[0], head.size, etag=etag)
        except TRANSIENT as exc:
            self._release(record, etag, attempt, exc)  # a retry decides again; nothing was recorded
            raise
        try:
            self._write(
                record,
                Status.REJECTED,
                ref,
                etag,
                attempt,
                error=error.model_dump(exclude_none=True),
                remove=["scan_deadline", "scan_etag"],
            )
        except TransitionRefused:
            return self._lost_race(record, ref, etag, quarantined=quarantined)
        if not record.size_exact and head is not None:  # what it really held is what stays charged
            self._settle_bytes(record, min(head.size, record.size))
        metrics.add_metric(name="UploadsRejected", unit="Count", value=1)
        metrics.add_metric(name="ProcessingDuration", unit="Milliseconds", value=round(elapsed * 1000, 1))
        logger.warning("upload rejected", code=rejection.code, reason=rejection.message[:200])
        if head is None:
            return Outcome.REJECTED  # (nothing in staging to remove)
        return self.settle(record.model_copy(update={"status": Status.REJECTED}))

    def _write(
        self, record: UploadRecord, to: Status, ref: ObjectRef, etag: str, attempt: str, **fields: Any
    ) -> UploadRecord:
        """The outcome's one conditional write, if ``attempt`` still holds the claim of staging
        version ``etag``: with the delivery that reached it and the event it owes, which the
        table's stream carries to the PublishFunction. The claim goes in the same write: nothing
        the outcome keeps is left to do (what is left, removing the staging object, any delivery
        of the same notification may do)."""
        remove = [*fields.pop("remove", []), "claim_etag", "claim_by", "claim_until"]
        try:
            return self.store.transition(
                record.upload_id,
                to,
                now=self.clock(),
                claimed_by=etag,
                held_by=attempt,
                pending_event=_EVENT_OF[to],
                outcome_of=delivery(ref, etag),
                remove=remove,
                **fields,
            )
        except TRANSIENT as exc:
            left_holding(exc)  # the claim: the write did not go through
            raise

    def _release(self, record: UploadRecord, etag: str, attempt: str, exc: BaseException) -> None:
        """Attempt ``attempt`` fails before its outcome's write: its claim of ``etag`` goes, or the
        exception says the attempt still holds it (its message's next receive takes it up)."""
        try:
            self.store.release(record.upload_id, etag, attempt)
        except TRANSIENT:
            left_holding(exc)

    def settle(self, record: UploadRecord) -> str:
        """What a final record leaves to do: the staging object removed (the verified bytes live
        under ``files/``, the rejected ones in ``quarantine/`` or nowhere, as configured). Retried
        here: a receive of its own would cost the message a back-off. Raises when it cannot be
        done: the message is retried, and its next delivery finds the object and removes it."""
        self._final_write(lambda: self.storage.delete(record.key))
        return Outcome.PROCESSED if record.status == Status.PROCESSED else Outcome.REJECTED

    def already_final(self, record: UploadRecord, ref: ObjectRef, attempt: str) -> str:
        """A notification for a final upload: the one that reached the outcome, delivered again
        before the staging object was removed (removed here), late bytes (removed) or a duplicate."""
        head = self.storage.head(ref.key)
        if head is None:
            logger.info("duplicate notification for a final upload", status=record.status.value)
            metrics.add_metric(name="DuplicateNotifications", unit="Count", value=1)
            return Outcome.DUPLICATE
        if record.status in _EVENT_OF and record.outcome_of == delivery(ref, head.etag):
            # the very bytes this delivery decided on: the attempt that recorded the outcome
            # stopped before it removed them from staging
            logger.info("removing the staging object an earlier attempt left", status=record.status.value)
            self.settle(record)
            return Outcome.DUPLICATE
        # bytes sent after the outcome (a presigned POST re-sent, a late part URL): they must
        # neither stay in staging nor change what was verified. Kept in quarantine (if so
        # configured) while a record can still account for them and delete them with it; never
        # over a rejection's own copy there, the evidence its event names.
        gone = record.status in (Status.DELETING, Status.DELETED, Status.REJECTED)
        if gone or self.rejected_objects != "quarantine":
            self.storage.delete(ref.key)
        else:
            self.storage.move(ref.key, keys.quarantine_key(ref.key), head.size)  # in parts above 5 GiB
        logger.warning("bytes arrived for a final upload: removed", status=record.status.value)
        metrics.add_metric(name="LateObjectsRemoved", unit="Count", value=1)
        return Outcome.LATE

    def fail(self, ref: ObjectRef, reason: str, *, by: str | None = None, holding: bool = False) -> bool:
        """FAILED with the reason, which owes ``Upload Failed`` (sent from the table's stream):
        the retries for ``ref`` (its message ``by``) ran out. Never raises for a transient error.
        True when the upload became FAILED. What the message's attempts left is given up, FAILED
        recorded or not: a claim an earlier receive left, and this receive's own when its attempt
        says it kept one (``holding``), so the redriven message (another message) need not wait
        for it to lapse. A copy of this receive beside it (the same ``by``) keeps what it holds."""
        upload_id = keys.upload_id_from_key(ref.key)
        if upload_id is None:
            return False
        # the reason (an exception's text) is for operators, in the logs: clients get a code
        error = UploadError(code="processing-failed", message="processing failed repeatedly; it resumes when redriven")
        try:
            record = self._final_write(
                lambda: self.store.transition(
                    upload_id,
                    Status.FAILED,
                    now=self.clock(),
                    free_or_held_by=by,  # never under another delivery's live attempt: it decides
                    error=error.model_dump(exclude_none=True),
                    pending_event=events.FAILED,
                )
            )
        except TransitionRefused:
            # final already, or FAILED by another message of the same upload: this message may
            # still hold a claim an attempt of it could not give up
            self._give_up(upload_id, by, holding)
            return False
        except TRANSIENT as exc:
            logger.exception("could not record FAILED; the message parks in the dead-letter queue", error=str(exc))
            return False
        metrics.add_metric(name="UploadsFailed", unit="Count", value=1)
        logger.error("processing failed for good; the message goes to the dead-letter queue", reason=reason[:500])
        holder = record.claim_by
        if by is not None and holder is not None and ((holding and holder == by) or earlier_receive(holder, by)):
            # this attempt's claim, or one an earlier receive of the message left (its release
            # failed, and this one failed before it took the claim up)
            self._give_up(upload_id, by, holding)
        return True

    def _give_up(self, upload_id: str, by: str | None, holding: bool) -> None:
        """A message out of receives (``by``, its last) leaves no claim behind (store.give_up)."""
        if by is None:
            return
        try:
            self._final_write(lambda: self.store.give_up(upload_id, by, this_receive=holding))
        except TRANSIENT:
            logger.warning("the failed message's claim stays until it lapses")

    def orphan(self, ref: ObjectRef) -> str:
        """An object under incoming/ that no upload record owns: never kept where it can be served."""
        logger.warning("object with no upload record quarantined", key=ref.key)
        metrics.add_metric(name="OrphanObjects", unit="Count", value=1)
        head = self.storage.head(ref.key)
        if head is not None:
            self.storage.move(ref.key, keys.quarantine_key(ref.key), head.size)
        return Outcome.ORPHAN

    def _lost_race(
        self,
        record: UploadRecord,
        ref: ObjectRef,
        etag: str,
        promoted: tuple[str, ...] | list[str] = (),
        quarantined: tuple[str, ...] | list[str] = (),
    ) -> str:
        """The outcome write was refused: the upload was deleted meanwhile, or (a claim that
        lapsed) another attempt settled it. What this attempt promoted or quarantined must not
        outlive a deletion. Or the outcome is this delivery's for these very bytes (this write,
        applied, whose reply was lost and botocore's retry refused, or a twin of the
        notification's): then the staging object is removed here."""
        fresh = self.store.get(record.upload_id)
        if fresh is not None and fresh.status in _EVENT_OF and fresh.outcome_of == delivery(ref, etag):
            head = self.storage.head(record.key)
            if head is None or head.etag != etag:  # removed already, or newer bytes: theirs to decide
                return Outcome.PROCESSED if fresh.status == Status.PROCESSED else Outcome.REJECTED
            return self.settle(fresh)
        if promoted and (fresh is None or fresh.status != Status.PROCESSED):
            # deleted meanwhile, or rejected (a scan deadline that won the race): nothing may serve it
            self.storage.delete_all(list(promoted))
            logger.info("upload settled otherwise while being processed; its promoted copy removed")
        if quarantined and (fresh is None or fresh.status in (Status.DELETING, Status.DELETED)):
            # deleted meanwhile: no record accounts for the copy any more (a rejection by another
            # delivery names the same quarantined key, and keeps it)
            self.storage.delete_all(list(quarantined))
        logger.info("another delivery settled this upload first")
        metrics.add_metric(name="DuplicateNotifications", unit="Count", value=1)
        return Outcome.DUPLICATE

    def _settle_bytes(self, record: UploadRecord, real: int) -> None:
        """The upload was charged at its ceiling: give back what its real size did not use."""
        if self.quota is None:
            return
        try:
            self.quota.settle(record.owner, record.created_at, record.size - real)
        except TRANSIENT:
            logger.warning("quota not settled to the real size; the ceiling stays charged for the day")

    def _final_write(self, write: Callable[[], T]) -> T:
        for attempt in range(1, FINAL_WRITE_ATTEMPTS + 1):
            try:
                return write()
            except TRANSIENT:
                if attempt == FINAL_WRITE_ATTEMPTS:
                    raise
                self.sleep(0.1 * 2**attempt)
        raise AssertionError("unreachable")
