"""The outcome's side effects that are still owed, kept on the upload record itself.

Publishing to EventBridge cannot share a transaction with the DynamoDB write that makes an
upload PROCESSED or REJECTED. So the terminal write also sets ``pending_event`` (in the
same conditional update), the event is published after it, and only then is the attribute
removed. A delivery that finds a final record with ``pending_event`` still set knows the
earlier attempt stopped in between, and finishes the job (publishes, and for a rejection
disposes of the object) instead of treating the notification as a duplicate.

The one remaining window: the event went out but removing the marker failed and the
processor later runs again for the same upload. Removal is retried; see
docs/processing.md ("Exactly one outcome, and one event, per upload").
"""

from __future__ import annotations

import contextlib
from typing import Any

from directupload.store import upload_pk

ATTRIBUTE = "pending_event"


class Outbox:
    def __init__(self, table_name: str, client: Any) -> None:
        self.table_name = table_name
        self.client = client

    def clear(self, upload_id: str) -> None:
        """The event is out: nothing is owed any more."""
        # a failed condition: another delivery cleared it first
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": upload_pk(upload_id)}},
                UpdateExpression="REMOVE #p",
                ConditionExpression="attribute_exists(#p)",
                ExpressionAttributeNames={"#p": ATTRIBUTE},
            )
