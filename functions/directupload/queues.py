"""What an SQS-triggered function does to a message itself: make a failed one come back later."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from directupload import aws
from directupload.observability import logger


def back_off(record: Any, seconds: int) -> None:
    """Make a failed message (a powertools SQSRecord) visible again in ``seconds`` (best effort:
    if this fails, SQS retries it after the queue's visibility timeout instead)."""
    _, _, _, region, account, name = record.event_source_arn.split(":", 5)
    try:
        aws.client("sqs").change_message_visibility(
            QueueUrl=f"https://sqs.{region}.amazonaws.com/{account}/{name}",
            ReceiptHandle=record.receipt_handle,
            VisibilityTimeout=seconds,
        )
    except (ClientError, BotoCoreError) as exc:
        logger.warning("could not set the retry backoff", error=str(exc)[:300])
