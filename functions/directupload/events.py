"""EventBus adapter: the events downstream consumers subscribe to.

Contract (docs/processing.md "Events for consumers", schemas/*.schema.json): per upload at most one
``Upload Failed`` (its notification ran out of retries and waits in the dead-letter queue)
and at most one terminal event, ``Upload Processed`` or ``Upload Rejected``, which may
follow an ``Upload Failed`` once the message is redriven.
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


def outcome_detail(record: UploadRecord, bucket: str, rejected_objects: str) -> dict[str, Any]:
    """The detail of a PROCESSED, REJECTED or FAILED upload's event, from the stored record alone
    (a retry sends the same event): the verified object, or where the rejected bytes are."""
    key = record.key
    if record.status == Status.PROCESSED and record.file_key:
        key = record.file_key  # the verified copy: the staging one is gone
    elif record.status == Status.REJECTED and rejected_objects == "quarantine":
        key = keys.quarantine_key(record.key)
    return upload_detail(record, bucket, key=key, at=record.updated_at)


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


class PublishFailedError(RuntimeError):
    """EventBridge accepted the call but not the entry (throttled or failed internally): retry."""


class EventPublisher:
    def __init__(self, bus_name: str, client: Any) -> None:
        self.bus_name = bus_name
        self.client = client

    def publish(self, detail_type: str, detail: dict[str, Any]) -> None:
        reply = self.client.put_events(
            Entries=[
                {
                    "Source": SOURCE,
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail, separators=(",", ":"), default=str),
                    "EventBusName": self.bus_name,
                    "Resources": [],
                }
            ]
        )
        if reply.get("FailedEntryCount"):
            entry = reply["Entries"][0]
            # raising makes the SQS record fail, so the publish is retried with it
            reason = f"{entry.get('ErrorCode')} {entry.get('ErrorMessage')}"
            raise PublishFailedError(f"EventBridge refused the event: {reason}")
