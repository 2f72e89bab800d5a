"""PublishFunction: the UploadsTable's stream, the changes that owe an event.

Every write that gives an upload an outcome (PROCESSED, REJECTED, FAILED) or deletes it
(DELETED, a retention tombstone) names the event it owes in the same write
(``pending_event``). DynamoDB's stream carries each change, in order per record, and this
function sends the event of each change whose ``pending_event`` differs from the record's
before it (the template's FilterCriteria keeps every other change away; a change that names
the same event again, such as a deletion's first step, owes none). So an event goes out if and
only if its change was written, after every earlier event of the same upload, and with no
request of the writer's: the processor and the API never call EventBridge.

The events of a batch go out in order, up to 10 per PutEvents and never two of one upload in
one call (EventBridge keeps no order among a call's entries). When EventBridge refuses one,
the batch reports that record and the records after it as failed (the event source retries
from the first of them), so no event overtakes an earlier one of its upload. Those already
sent before it may be sent again with the retry; consumers key on the upload and the event
type (docs/processing.md).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from directupload import events, wiring
from directupload.config import get_settings
from directupload.observability import logger, metrics, tracer
from directupload.store import record_from_item
from handlers import ready

get_settings()  # validate the configuration at cold start


def owed(record: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The event a stream record's change owes, or None."""
    change = record.get("dynamodb") or {}
    new = change.get("NewImage") or {}
    if record.get("eventName") not in ("INSERT", "MODIFY") or not new.get("pk", {}).get("S", "").startswith("upload#"):
        return None
    kind = (new.get("pending_event") or {}).get("S")
    before = ((change.get("OldImage") or {}).get("pending_event") or {}).get("S")
    if kind is None or kind == before:
        return None  # another change of a record whose event was owed (and sent) before
    upload = record_from_item(new)
    settings = get_settings()
    bucket = upload.bucket or settings.uploads_bucket
    return events.owed_event(upload, bucket, settings.rejected_objects)


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, list[dict[str, str]]]:
    records = event.get("Records") or []
    sending: list[tuple[int, tuple[str, dict[str, Any]]]] = []
    for index, record in enumerate(records):
        try:
            found = owed(record)
        except Exception:  # noqa: BLE001 - a record no retry would read either: it must not hold the shard
            logger.exception("stream record not understood: no event sent for it", sequence=_sequence(record))
            metrics.add_metric(name="EventsNotUnderstood", unit="Count", value=1)
            continue
        if found is not None:
            sending.append((index, found))
    try:
        wiring.publisher().publish_all([event_ for _, event_ in sending])
    except events.PublishFailedError as refused:
        logger.warning("EventBridge refused an event; retried from it", error=str(refused))
        return _failed_at(records, sending, refused.sent)
    except Exception:  # noqa: BLE001 - EventBridge unreachable: the whole batch is retried
        logger.exception("events not sent; retried")
        return _failed_at(records, sending, 0)
    for _, (kind, detail) in sending:
        logger.info("event sent", detail_type=kind, upload_id=detail.get("uploadId"))
    if sending:
        metrics.add_metric(name="EventsPublished", unit="Count", value=len(sending))
    return {"batchItemFailures": []}


def _failed_at(
    records: list[dict[str, Any]], sending: list[tuple[int, tuple[str, dict[str, Any]]]], sent: int
) -> dict[str, list[dict[str, str]]]:
    """The batch's reply when the events from ``sending[sent]`` on did not go out."""
    # records[index] and after failed: the event source retries from the first of them (the
    # lowest sequence number reported), so the order of each upload's events holds
    index = sending[sent][0] if sent < len(sending) else len(records)
    metrics.add_metric(name="EventsNotSent", unit="Count", value=max(len(sending) - sent, 1))
    return {"batchItemFailures": [{"itemIdentifier": _sequence(r)} for r in records[index:]]}


def _sequence(record: dict[str, Any]) -> str:
    return str((record.get("dynamodb") or {}).get("SequenceNumber", ""))


ready()  # set up: the garbage collector resumes (handlers/__init__.py)
