"""Removing an upload for good: its objects (staging, verified, derived, quarantined), then its
record, and one ``Upload Deleted`` event.

    PROCESSED | REJECTED | FAILED | CANCELLED | EXPIRED --DELETE--> DELETING --objects gone--> DELETED

DELETING comes first, so no download is ever signed for an object being removed, and a
deletion that stops half-way (objects gone, record not) is finished by the next DELETE. DELETED
is a tombstone that lives a day: a late notification finds a final record and its bytes are
removed, and a repeated DELETE answers the same. The event goes out through the record's
outbox marker, as processing's do: set with DELETED, cleared once published, so a retry after
a failed publish sends it and a repeat does not send it twice. Whoever publishes an owed event
takes the marker's lease first (``store.lease_owed``, as a processor attempt does): two DELETEs
at once, or a DELETE beside the processor finishing an outcome, never both send it.

The retention sweep (handlers/retention.py) calls ``purge`` for records DynamoDB's TTL removed:
the record is already gone there, so only the objects and the event remain.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from directupload import events
from directupload.errors import Conflict, NotFound
from directupload.models import DELETABLE, Status, UploadRecord, utcnow
from directupload.observability import logger, metrics
from directupload.processing.outbox import ATTRIBUTE as PENDING_EVENT
from directupload.processing.outbox import Outbox
from directupload.processing.steps import derived_names
from directupload.storage import Storage
from directupload.store import ClaimRefused, TransitionRefused, UploadStore

# How long a deleted upload's tombstone answers (then GET and DELETE say 404).
TOMBSTONE_LIFETIME = timedelta(days=1)
# An outcome whose event is still owed this soon after it was reached may still be being
# published by the attempt that reached it (at most the ProcessFunction's 15-minute timeout).
OUTCOME_GRACE = timedelta(minutes=15)
_OUTCOMES = frozenset({events.PROCESSED, events.REJECTED, events.FAILED})
# The lease a deletion holds while it publishes an owed event: a publish (with botocore's
# retries) takes seconds; one that died lets the next DELETE take it up after this.
PUBLISH_LEASE = timedelta(minutes=2)


def _holder() -> str:
    """Who holds a marker's lease while a deletion sends its event (a processor attempt's
    holders are SQS receives: store.holder)."""
    return f"delete-{uuid.uuid4().hex}"


class Deleter:
    def __init__(
        self,
        *,
        store: UploadStore,
        storage: Storage,
        publisher: events.EventPublisher,
        rejected_objects: str = "quarantine",
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.storage = storage
        self.publisher = publisher
        self.rejected_objects = rejected_objects
        self.outbox = Outbox(store.table_name, store.client)
        self.clock = clock

    def delete(self, record: UploadRecord, reason: str = "owner") -> UploadRecord:
        """Delete an upload that is final (or finish deleting one). Idempotent."""
        if record.status == Status.DELETED:
            return self._announce(record)
        if record.status not in DELETABLE:
            raise Conflict(f"the upload is {record.status.value}; it can be deleted once processing is over")
        now = self.clock()
        if record.status != Status.DELETING:
            self._announce_outcome(record, now)
            try:
                record = self.store.transition(
                    record.upload_id,
                    Status.DELETING,
                    now=now,
                    unless_set=PENDING_EVENT,  # consumers hear of the outcome before its deletion
                    delete_reason=reason,
                )
            except TransitionRefused:
                fresh = self.store.get(record.upload_id)
                if fresh is None:
                    raise NotFound(f"no upload {record.upload_id!r}") from None
                if fresh.status == record.status and fresh.pending_event == record.pending_event:
                    raise Conflict("the upload changed while being deleted; try again") from None
                return self.delete(fresh, reason)  # a parallel DELETE (or processing) moved it on
        self.storage.in_bucket(record.bucket).delete_all(record.object_keys(derived_names()))
        by = _holder()
        try:
            record = self.store.transition(
                record.upload_id,
                Status.DELETED,
                now=now,
                expire_at=now + TOMBSTONE_LIFETIME,
                deleted_at=now,
                pending_event=events.DELETED,  # the outbox marker (outbox.py)
                # and its lease, held by this deletion: nothing acts on the record now but its event
                claim_by=by,
                claim_until=now + PUBLISH_LEASE,
                remove=["claim_etag"],
            )
        except TransitionRefused:
            fresh = self.store.get(record.upload_id)
            if fresh is None:
                raise NotFound(f"no upload {record.upload_id!r}") from None
            return self._announce(fresh)  # a parallel DELETE finished first
        metrics.add_metric(name="UploadsDeleted", unit="Count", value=1)
        logger.info("upload deleted", upload_id=record.upload_id, reason=reason)
        return self._announce(record, leased_by=by)

    def purge(self, record: UploadRecord, reason: str) -> bool:
        """The record is gone (DynamoDB's TTL removed it): remove whatever objects it had, and
        announce the deletion of a processed upload, once. A tombstone put in its place (with
        the outbox marker) makes a retried stream record finish the job without a second
        event, and answers GET as an owner's deletion does. True when the event was sent."""
        owed = record.status == Status.DELETED and record.pending_event == events.DELETED
        if record.status not in (Status.PROCESSED, Status.DELETING) and not owed:
            self.storage.in_bucket(record.bucket).delete_all(record.object_keys(derived_names()))
            return False  # nothing a consumer was told about is gone
        now, by = self.clock(), _holder()
        # a tombstone whose Upload Deleted never went out (its DELETE could not publish, and was
        # not retried) is put back for a day, so the event goes out once, and its retry finds it
        tombstone = record.model_copy(
            update={
                "status": Status.DELETED,
                "delete_reason": record.delete_reason or reason,  # a deletion that stalled: the owner's
                "deleted_at": record.deleted_at if owed else now,
                "updated_at": now,
                "expires_at": now,
                "claim_by": by,  # the lease of its event, held by this purge
                "claim_until": now + PUBLISH_LEASE,
                "claim_etag": None,
                PENDING_EVENT: events.DELETED,
            }
        )
        leased_by: str | None = by
        if not self.store.put_tombstone(tombstone, expire_at=now + TOMBSTONE_LIFETIME):
            found, leased_by = self.store.get(record.upload_id), None
            tombstone = found if found is not None and found.status == Status.DELETED else tombstone
        self.storage.in_bucket(record.bucket).delete_all(record.object_keys(derived_names()))
        sent = tombstone.pending_event == events.DELETED
        self._announce(tombstone, leased_by=leased_by)
        if sent:
            metrics.add_metric(name="UploadsDeleted", unit="Count", value=1)
            logger.info("upload removed by retention", upload_id=record.upload_id, reason=reason)
        return sent

    def _announce_outcome(self, record: UploadRecord, now: datetime) -> None:
        """An outcome whose event is still owed is announced before the upload is deleted: by
        the attempt that reached it while it may still run (409 meanwhile), else here."""
        if record.pending_event not in _OUTCOMES:
            return
        leased = record.claim_by is not None and record.claim_until is not None and record.claim_until > now
        if leased or now - record.updated_at < OUTCOME_GRACE:  # the attempt that reached it may still run
            raise Conflict("the upload's outcome is still being announced; delete it in a few minutes")
        event = str(record.pending_event)
        detail = events.outcome_detail(record, self.storage.in_bucket(record.bucket).bucket, self.rejected_objects)
        if self._publish_owed(record, event, detail) is None:
            raise Conflict("the upload's outcome is still being announced; delete it in a few minutes")
        logger.warning("an outcome left unannounced was announced before its deletion", upload_id=record.upload_id)

    def _announce(self, record: UploadRecord, *, leased_by: str | None = None) -> UploadRecord:
        """Publish the owed ``Upload Deleted`` (once: under the marker's lease, which goes after;
        ``leased_by``: the write that made the record DELETED took it)."""
        if record.pending_event != events.DELETED:
            return record
        detail = self._detail(record, record.deleted_at or record.updated_at)
        self._publish_owed(record, events.DELETED, detail, leased_by=leased_by)
        return record.model_copy(update={"pending_event": None})

    def _publish_owed(
        self, record: UploadRecord, event: str, detail: dict[str, object], *, leased_by: str | None = None
    ) -> bool | None:
        """Publish ``event``, which ``record`` owes, under the marker's lease (taken here, unless
        ``leased_by`` holds it already), then remove the marker. True when sent here, False when
        it was sent meanwhile, None while another attempt (a DELETE beside this one, or the
        processor) holds the lease and is sending it."""
        by = leased_by or _holder()
        if leased_by is None:
            now = self.clock()
            try:
                self.store.lease_owed(record.upload_id, by=by, now=now, until=now + PUBLISH_LEASE)
            except ClaimRefused as refused:
                held = refused.record
                return None if held is not None and held.pending_event == event else False
        try:
            self.publisher.publish(event, detail)
        except Exception:
            self.store.end_lease(record.upload_id, by)  # a retry may send it at once
            raise
        self.outbox.clear(record.upload_id, event, by)
        return True

    def _detail(self, record: UploadRecord, at: datetime) -> dict[str, object]:
        return events.upload_detail(
            record, self.storage.in_bucket(record.bucket).bucket, key=record.file_key or record.key, at=at
        )
