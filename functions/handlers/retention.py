"""RetentionFunction: the UploadsTable's stream, REMOVE records only (DynamoDB TTL removals).

A record leaves the table when its TTL lapses: a processed upload whose profile's
``retainDays`` ran out, an abandoned, cancelled or rejected upload after the record retention,
a deletion tombstone after a day. No object may outlive its record, so for each removed
upload record this function deletes whatever objects it still had (staging, verified,
derived, quarantined) and, for a processed upload, puts a tombstone in its place that owes
``Upload Deleted`` with the reason ``retention`` (the PublishFunction sends it from the
stream). Each record is idempotent (deleting a missing key succeeds, a tombstone is put once),
so a batch that fails part-way is retried (batchItemFailures, bisecting) and resumes where it
stopped.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from directupload import wiring
from directupload.config import get_settings
from directupload.observability import logger, metrics, tracer
from directupload.store import record_from_item
from handlers import ready

get_settings()  # validate the configuration at cold start

batch = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)


@tracer.capture_method
def record_handler(record: DynamoDBRecord) -> None:
    raw = (record.raw_event.get("dynamodb") or {}).get("OldImage") or {}
    if record.raw_event.get("eventName") != "REMOVE" or not raw.get("pk", {}).get("S", "").startswith("upload#"):
        return  # quota items, or a change the filter should have kept away
    removed = record_from_item(raw)
    logger.set_correlation_id(removed.upload_id)
    wiring.deleter().purge(removed, reason="retention")


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=batch, context=context)


ready()  # set up: the garbage collector resumes (handlers/__init__.py)
