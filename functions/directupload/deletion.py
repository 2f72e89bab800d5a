"""Removing an upload for good: its objects (staging, verified, derived, quarantined), then its
record, and one ``Upload Deleted`` event.

    PROCESSED | REJECTED | FAILED | CANCELLED | EXPIRED --DELETE--> DELETING --objects gone--> DELETED

DELETING comes first, so no download is ever signed for an object being removed, and a
deletion that stops half-way (objects gone, record not) is finished by the next DELETE. DELETED
is a tombstone that lives a day: a late notification finds a final record and its bytes are
removed, and a repeated DELETE answers the same. The DELETED write names the event it owes
(``pending_event``); the table's stream carries it to the PublishFunction, which sends it
after every earlier event of the upload (handlers/publisher.py): an outcome's event is sent
before its deletion's, and a deletion's once, however many DELETEs ran.

The retention sweep (handlers/retention.py) calls ``purge`` for records DynamoDB's TTL removed:
the record is already gone there, so its objects are removed and, for an upload a consumer was
told about, a tombstone is put in its place, which owes ``Upload Deleted`` the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from directupload import events
from directupload.errors import Conflict, NotFound
from directupload.models import DELETABLE, Status, UploadRecord, utcnow
from directupload.observability import logger, metrics
from directupload.processing.steps import derived_names
from directupload.storage import Storage
from directupload.store import TransitionRefused, UploadStore

# How long a deleted upload's tombstone answers (then GET and DELETE say 404).
TOMBSTONE_LIFETIME = timedelta(days=1)


class Deleter:
    def __init__(self, *, store: UploadStore, storage: Storage, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.storage = storage
        self.clock = clock

    def delete(self, record: UploadRecord, reason: str = "owner") -> UploadRecord:
        """Delete an upload that is final (or finish deleting one). Idempotent."""
        if record.status == Status.DELETED:
            return record
        if record.status not in DELETABLE:
            raise Conflict(f"the upload is {record.status.value}; it can be deleted once processing is over")
        now = self.clock()
        if record.status != Status.DELETING:
            try:
                record = self.store.transition(record.upload_id, Status.DELETING, now=now, delete_reason=reason)
            except TransitionRefused:
                fresh = self.store.get(record.upload_id)
                if fresh is None:
                    raise NotFound(f"no upload {record.upload_id!r}") from None
                if fresh.status == record.status:
                    raise Conflict("the upload changed while being deleted; try again") from None
                return self.delete(fresh, reason)  # a parallel DELETE (or processing) moved it on
        self.storage.in_bucket(record.bucket).delete_all(record.object_keys(derived_names()))
        try:
            record = self.store.transition(
                record.upload_id,
                Status.DELETED,
                now=now,
                expire_at=now + TOMBSTONE_LIFETIME,
                deleted_at=now,
                pending_event=events.DELETED,  # sent from the table's stream
                remove=["claim_etag", "claim_by", "claim_until"],
            )
        except TransitionRefused:
            fresh = self.store.get(record.upload_id)
            if fresh is None:
                raise NotFound(f"no upload {record.upload_id!r}") from None
            return fresh  # a parallel DELETE finished first
        metrics.add_metric(name="UploadsDeleted", unit="Count", value=1)
        logger.info("upload deleted", upload_id=record.upload_id, reason=reason)
        return record

    def purge(self, record: UploadRecord, reason: str) -> bool:
        """The record is gone (DynamoDB's TTL removed it): remove whatever objects it had and, for
        an upload a consumer was told about (processed, or a deletion that stalled), put a
        tombstone in its place, which owes ``Upload Deleted`` and answers GET as an owner's
        deletion does. Idempotent: a retried stream record finds the tombstone and puts none.
        True when the tombstone was put here."""
        if record.status == Status.DELETED:
            return False  # a tombstone: its deletion was recorded (and so announced) already
        self.storage.in_bucket(record.bucket).delete_all(record.object_keys(derived_names()))
        if record.status not in (Status.PROCESSED, Status.DELETING):
            return False  # nothing a consumer was told about is gone
        now = self.clock()
        tombstone = record.model_copy(
            update={
                "status": Status.DELETED,
                "delete_reason": record.delete_reason or reason,  # a deletion that stalled: the owner's
                "deleted_at": now,
                "updated_at": now,
                "expires_at": now,
                "claim_by": None,
                "claim_until": None,
                "claim_etag": None,
                "pending_event": events.DELETED,
            }
        )
        if not self.store.put_tombstone(tombstone, expire_at=now + TOMBSTONE_LIFETIME):
            return False
        metrics.add_metric(name="UploadsDeleted", unit="Count", value=1)
        logger.info("upload removed by retention", upload_id=record.upload_id, reason=reason)
        return True
