"""What an SQS-triggered function does to a message itself: make a failed one come back later."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from directupload import aws
from directupload.observability import logger


def back_off(record: Any, seconds: int) -> None:
    """Make a failed message (a powertools SQSRecord) visible again in ``seconds`` (best effort:
    if this fails, SQS retries it after the queue's visibility timeout instead)."""
    account, name = record.event_source_arn.split(":", 5)[4:]
    sqs = aws.client("sqs")
    try:
        sqs.change_message_visibility(
            # the queue's URL on the client's own endpoint: right in every partition (and locally)
            QueueUrl=f"{sqs.meta.endpoint_url}/{account}/{name}",
            ReceiptHandle=record.receipt_handle,
            VisibilityTimeout=seconds,
        )
    except (ClientError, BotoCoreError) as exc:
        logger.warning("could not set the retry backoff", error=str(exc)[:300])
