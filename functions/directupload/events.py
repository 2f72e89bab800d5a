"""EventBus adapter: the events downstream consumers subscribe to.

Contract (docs/processing.md "Events for consumers", schemas/*.schema.json): per upload at most one
``Upload Failed`` (its notification ran out of retries and waits in the dead-letter queue)
and at most one terminal event, ``Upload Processed`` or ``Upload Rejected``, which may
follow an ``Upload Failed`` once the message is redriven; then at most one ``Upload Deleted``.

Each event is owed by a change of the upload's record (its ``pending_event``) and built from
the record alone (``owed_event``), so the PublishFunction sends it from the table's stream,
and a retry or a republish sends the very same event.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from directupload import keys
from directupload.models import Status, UploadRecord

SOURCE = "directupload"
PROCESSED = "Upload Processed"
REJECTED = "Upload Rejected"
FAILED = "Upload Failed"
DELETED = "Upload Deleted"
_OUTCOME_OF = {PROCESSED: Status.PROCESSED, REJECTED: Status.REJECTED, FAILED: Status.FAILED}


def outcome_detail(record: UploadRecord, bucket: str, rejected_objects: str) -> dict[str, Any]:
    """The detail of a PROCESSED, REJECTED or FAILED upload's event, from the stored record alone
    (a retry sends the same event): the verified object, or where the rejected bytes are."""
    key = record.key
    if record.status == Status.PROCESSED and record.file_key:
        key = record.file_key  # the verified copy: the staging one is gone
    elif record.status == Status.REJECTED and rejected_objects == "quarantine":
        key = keys.quarantine_key(record.key)
    return upload_detail(record, bucket, key=key, at=record.updated_at)


def owed_event(record: UploadRecord, bucket: str, rejected_objects: str) -> tuple[str, dict[str, Any]] | None:
    """The event ``record`` owes (its detail-type and detail), or None when it owes none."""
    kind = record.pending_event
    if kind == DELETED and record.status == Status.DELETED:
        at = record.deleted_at or record.updated_at
        return kind, upload_detail(record, bucket, key=record.file_key or record.key, at=at)
    if kind in _OUTCOME_OF and record.status == _OUTCOME_OF[kind]:
        return kind, outcome_detail(record, bucket, rejected_objects)
    return None  # (a change of the record that owes no event of its own)


def upload_detail(record: UploadRecord, bucket: str, *, key: str, at: datetime) -> dict[str, Any]:
    """The detail every event of an upload carries (schemas/*.schema.json)."""
    detail: dict[str, Any] = {
        "uploadId": record.upload_id,
        "owner": record.owner,
        "profile": record.profile,
        "bucket": bucket,
        "key": key,
        "size": record.size,
        "contentType": record.content_type,
        "sha256": record.sha256,
    }
    if record.issued_by is not None:
        detail["issuedBy"] = record.issued_by  # a trusted backend issued it for the owner
    if record.status == Status.PROCESSED:
        detail["result"] = record.result or {}
    elif record.status in (Status.DELETING, Status.DELETED):
        detail["reason"] = record.delete_reason or "owner"
        detail["deletedAt"] = at.isoformat()
        return detail
    elif record.error is not None:
        detail["error"] = record.error.model_dump(exclude_none=True)
    detail["processedAt"] = at.isoformat()
    return detail


def _chunks(owed: list[tuple[str, dict[str, Any]]]) -> list[tuple[int, list[tuple[str, dict[str, Any]]]]]:
    """``owed`` in order, cut into PutEvents calls (with the index of each one's first event): at
    most 10 events each, and a new call wherever an upload would have a second event in one."""
    chunks: list[tuple[int, list[tuple[str, dict[str, Any]]]]] = []
    uploads: set[Any] = set()
    for index, event in enumerate(owed):
        upload = event[1].get("uploadId")
        if not chunks or len(chunks[-1][1]) == MAX_ENTRIES or upload in uploads:
            chunks.append((index, []))
            uploads = set()
        chunks[-1][1].append(event)
        uploads.add(upload)
    return chunks


class PublishFailedError(RuntimeError):
    """EventBridge accepted the call but not every entry (throttled or failed internally): retry
    from entry ``sent``, the first that did not go out (those before it did)."""

    def __init__(self, message: str, sent: int = 0) -> None:
        super().__init__(message)
        self.sent = sent


# PutEvents takes at most 10 entries per call
MAX_ENTRIES = 10


class EventPublisher:
    def __init__(self, bus_name: str, client: Any) -> None:
        self.bus_name = bus_name
        self.client = client

    def publish_all(self, owed: list[tuple[str, dict[str, Any]]]) -> None:
        """Send these events in order, up to 10 per PutEvents call and never two of one upload in
        one call (EventBridge keeps no order among a call's entries). PublishFailedError names
        how many, from the first, went out when EventBridge refused one (the rest were not sent,
        or are sent again: a consumer keys on the event's upload and type anyway)."""
        for start, chunk in _chunks(owed):
            entries = [
                {
                    "Source": SOURCE,
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail, separators=(",", ":"), default=str),
                    "EventBusName": self.bus_name,
                    "Resources": [],
                }
                for detail_type, detail in chunk
            ]
            reply = self.client.put_events(Entries=entries)
            if reply.get("FailedEntryCount"):
                results = reply.get("Entries") or []
                first = next((i for i, entry in enumerate(results) if entry.get("ErrorCode")), 0)
                entry = results[first] if first < len(results) else {}
                reason = f"{entry.get('ErrorCode')} {entry.get('ErrorMessage')}"
                raise PublishFailedError(f"EventBridge refused the event: {reason}", sent=start + first)
