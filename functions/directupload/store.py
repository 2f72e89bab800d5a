"""UploadsTable adapter: the upload records and their state machine, in DynamoDB.

Every status change is a conditional write naming the states it may leave, so a late or
repeated event can never move a record backwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from directupload.models import Status, UploadRecord, utcnow

_JSON_FIELDS = ("metadata", "result", "error")
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def upload_pk(upload_id: str) -> str:
    return f"upload#{upload_id}"


def _to_item(fields: dict[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None:
            continue
        if name in _JSON_FIELDS:
            value = json.dumps(value, separators=(",", ":"), default=str)
        elif isinstance(value, datetime):
            value = value.isoformat()
        item[name] = _serializer.serialize(value)
    return item


def _from_item(item: dict[str, Any]) -> UploadRecord:
    data = {name: _deserializer.deserialize(value) for name, value in item.items()}
    for name in _JSON_FIELDS:
        if isinstance(data.get(name), str):
            data[name] = json.loads(data[name])
    return UploadRecord.model_validate(data)


class TransitionRefused(Exception):
    """The record is missing or not in a state the transition may leave."""


class UploadStore:
    def __init__(self, table_name: str, client: Any, retention: timedelta = timedelta(days=30)) -> None:
        self.table_name = table_name
        self.client = client
        self.retention = retention

    def _ttl(self, after: datetime) -> int:
        return int((after + self.retention).timestamp())

    def create(self, record: UploadRecord) -> None:
        fields = record.model_dump(mode="python")
        item = {"pk": {"S": upload_pk(record.upload_id)}, **_to_item(fields)}
        item["ttl"] = {"N": str(self._ttl(record.expires_at))}
        self.client.put_item(
            TableName=self.table_name,
            Item=item,
            ConditionExpression="attribute_not_exists(pk)",
        )

    def get(self, upload_id: str) -> UploadRecord | None:
        reply = self.client.get_item(
            TableName=self.table_name, Key={"pk": {"S": upload_pk(upload_id)}}, ConsistentRead=True
        )
        item = reply.get("Item")
        return _from_item(item) if item else None

    def transition(
        self,
        upload_id: str,
        to: Status,
        allowed_from: Iterable[Status],
        *,
        now: datetime | None = None,
        remove: Iterable[str] = (),
        **fields: Any,
    ) -> UploadRecord:
        """Move the record to ``to`` if it is in one of ``allowed_from``; raise TransitionRefused otherwise."""
        now = now or utcnow()
        values = _to_item({**fields, "status": to.value, "updated_at": now})
        values["ttl"] = {"N": str(self._ttl(now))}
        names = {f"#a{i}": name for i, name in enumerate(values)}
        assignments = ", ".join(f"#a{i} = :v{i}" for i in range(len(values)))
        expr_values = {f":v{i}": value for i, value in enumerate(values.values())}
        allowed = [status.value for status in allowed_from]
        for i, status in enumerate(allowed):
            expr_values[f":from{i}"] = {"S": status}
        names["#status"] = "status"
        update = f"SET {assignments}"
        removals = list(remove)
        if removals:
            names.update({f"#r{i}": name for i, name in enumerate(removals)})
            update += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(removals)))
        condition = "attribute_exists(pk) AND #status IN (" + ", ".join(f":from{i}" for i in range(len(allowed))) + ")"
        try:
            reply = self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": upload_pk(upload_id)}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=expr_values,
                ReturnValues="ALL_NEW",
            )
        except self.client.exceptions.ConditionalCheckFailedException as exc:
            raise TransitionRefused(f"upload {upload_id} cannot move to {to.value}") from exc
        return _from_item(reply["Attributes"])

    def count_attempt(self, upload_id: str) -> int:
        """Count one processing attempt; returns the new count."""
        reply = self.client.update_item(
            TableName=self.table_name,
            Key={"pk": {"S": upload_pk(upload_id)}},
            UpdateExpression="ADD attempts :one",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
        return int(reply["Attributes"]["attempts"]["N"])
