"""ConsumerFunction: a sample downstream consumer of directupload's events.

Subscribed by an EventBridge rule to "Upload Processed", "Upload Rejected" and
"Upload Failed" (schemas/*.schema.json). EventBridge delivers at least once: a
consumer with side effects keys its work on (uploadId, detail-type). Replace the body
with what your product does next (index the file, notify the user, start a transcode).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from directupload.observability import logger
from handlers import ready


@logger.inject_lambda_context(log_event=False, clear_state=True)
@event_source(data_class=EventBridgeEvent)
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    detail = event.detail
    # the upload id is the correlation id in every function's logs
    logger.set_correlation_id(detail.get("uploadId"))
    logger.info(
        "upload event received",
        detail_type=event.detail_type,
        upload_id=detail.get("uploadId"),
        profile=detail.get("profile"),
        size=detail.get("size"),
        error_code=(detail.get("error") or {}).get("code"),
    )
    return {"uploadId": detail.get("uploadId"), "seen": event.detail_type}


ready()  # set up: the garbage collector resumes (handlers/__init__.py)
