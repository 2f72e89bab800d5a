"""The outcome's side effects that are still owed, kept on the upload record itself.

Publishing to EventBridge cannot share a transaction with the DynamoDB write that makes an
upload PROCESSED or REJECTED. So the terminal write also sets ``pending_event`` (in the
same conditional update), the event is published after it, and only then is the attribute
removed. The attempt that wrote the outcome keeps its claim of the record (``claim_by``) until
then: the marker's lease. A delivery of the same notification that finds a final record with
``pending_event`` still set takes the lease once it is free or lapsed (the earlier attempt
stopped in between) and finishes the job (publishes, and for a rejection disposes of the
object) instead of treating the notification as a duplicate; while the lease is held it waits,
so the two never publish side by side.

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

    def clear(self, upload_id: str, event: str, attempt: str | None = None) -> None:
        """``event`` is out: nothing is owed any more, and the record's lease is given up (held by
        ``attempt``, when a processor attempt holds it: processing/outcomes.py)."""
        condition, values = "#p = :event", {":event": {"S": event}}
        if attempt is not None:
            condition += " AND claim_by = :by"
            values[":by"] = {"S": attempt}
        # a failed condition: another delivery cleared it first, or a deletion owes an event of its own
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": upload_pk(upload_id)}},
                UpdateExpression="REMOVE #p, claim_by, claim_until",
                ConditionExpression=condition,
                ExpressionAttributeNames={"#p": ATTRIBUTE},
                ExpressionAttributeValues=values,
            )
