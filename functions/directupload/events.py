"""EventBus adapter: the events downstream consumers subscribe to."""

from __future__ import annotations

import json
from typing import Any

SOURCE = "directupload"
PROCESSED = "Upload Processed"
REJECTED = "Upload Rejected"
FAILED = "Upload Failed"


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
            raise RuntimeError(f"EventBridge refused the event: {entry.get('ErrorCode')} {entry.get('ErrorMessage')}")
