"""WebhookFunction: the bus's upload events, from the WebhookQueue, signed and POSTed to WebhookUrl.

The logic is directupload/webhooks.py. Here: each SQS record is one delivery. Delivered: the
record succeeds. Refused by the receiver (a 4xx other than 408/429) or not an event at all: the
record is parked in the dead-letter queue and succeeds, so SQS does not ask again for nothing.
Anything else fails the record alone (``batchItemFailures``); it is made visible again after an
exponential backoff set on the message, and after the queue's maxReceiveCount receives SQS moves
it to the same dead-letter queue.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from directupload import wiring
from directupload.observability import logger, metrics, tracer
from directupload.queues import back_off
from directupload.webhooks import DeliveryFailedError, DeliveryRefusedError, retry_delay
from handlers import ready

wiring.webhook_settings()  # validate the configuration at cold start

batch = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@tracer.capture_method
def record_handler(record: SQSRecord) -> None:
    receive_count = int(record.attributes.approximate_receive_count or 1)
    with logger.append_context_keys(sqs_message_id=record.message_id, receive_count=receive_count):
        try:
            delivery = wiring.webhook_sender().deliver(record.body)
        except DeliveryRefusedError as exc:
            wiring.webhook_dead_letters().park(record.body, str(exc))
            metrics.add_metric(name="WebhookDeliveriesRefused", unit="Count", value=1)
            logger.error(
                "webhook delivery refused; parked in the dead-letter queue", webhook_id=exc.webhook_id, reason=str(exc)
            )
            return
        except DeliveryFailedError as exc:
            metrics.add_metric(name="WebhookAttemptsFailed", unit="Count", value=1)
            retry_in = retry_delay(receive_count, exc.retry_after)
            logger.warning(
                "webhook attempt failed; will retry", webhook_id=exc.webhook_id, reason=str(exc), retry_in=retry_in
            )
            back_off(record, retry_in)
            raise
        # the upload id follows the upload from the API through processing to its webhook
        logger.set_correlation_id(delivery.upload_id)
        metrics.add_metric(name="WebhookDeliveries", unit="Count", value=1)
        logger.info(
            "webhook delivered",
            webhook_id=delivery.webhook_id,
            detail_type=delivery.detail_type,
            status=delivery.status,
        )


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=batch, context=context)


ready()  # set up: the garbage collector resumes (handlers/__init__.py)
