"""ProcessFunction: S3 ObjectCreated notifications, delivered in SQS batches."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from directupload import wiring
from directupload.config import get_settings
from directupload.keys import key_from_event
from directupload.observability import logger, metrics, tracer
from directupload.processing.pipeline import ObjectRef

get_settings()  # validate the configuration at cold start

batch = BatchProcessor(event_type=EventType.SQS)


def object_refs(body: str) -> list[ObjectRef]:
    """The objects an SQS message body (an S3 event notification) speaks of."""
    message = json.loads(body)
    if message.get("Event") == "s3:TestEvent":
        return []
    refs = []
    for record in message.get("Records", []):
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = record["s3"]
        obj = s3["object"]
        refs.append(
            ObjectRef(
                bucket=s3["bucket"]["name"],
                key=key_from_event(obj["key"]),
                size=obj.get("size"),
                etag=obj.get("eTag"),
                sequencer=obj.get("sequencer"),
                version_id=obj.get("versionId"),
            )
        )
    return refs


@tracer.capture_method
def record_handler(record: SQSRecord) -> None:
    processor = wiring.processor()
    receive_count = int(record.attributes.approximate_receive_count or 1)
    last_attempt = receive_count >= get_settings().max_receive_count
    for ref in object_refs(record.body):
        with logger.append_context_keys(key=ref.key, receive_count=receive_count):
            try:
                outcome = processor.process(ref)
            except Exception as exc:
                if last_attempt:
                    processor.fail(ref, f"{type(exc).__name__}: {exc}")
                logger.warning("processing attempt failed; will retry", error=f"{type(exc).__name__}: {exc}"[:300])
                raise
            logger.info("notification handled", outcome=outcome)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=batch, context=context)
