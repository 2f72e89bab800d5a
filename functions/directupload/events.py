"""EventBus adapter: the events downstream consumers subscribe to.

Contract (README "Events for consumers", schemas/*.schema.json): per upload at most one
``Upload Failed`` (its notification ran out of retries and waits in the dead-letter queue)
and at most one terminal event, ``Upload Processed`` or ``Upload Rejected``, which may
follow an ``Upload Failed`` once the message is redriven.
"""

from __future__ import annotations

import json
from typing import Any

SOURCE = "directupload"
PROCESSED = "Upload Processed"
REJECTED = "Upload Rejected"
FAILED = "Upload Failed"
TERMINAL = frozenset({PROCESSED, REJECTED})


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
