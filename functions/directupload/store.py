"""UploadsTable adapter: the upload records and their state machine, in DynamoDB.

Every status change is a conditional write naming the states it may leave, so a late or
repeated event can never move a record backwards.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from directupload.models import TRANSITIONS, Status, UploadRecord, utcnow

_JSON_FIELDS = ("metadata", "result", "error", "variants")
# The sparse index of upload records by owner, newest first (template.yaml: UploadsTable).
OWNER_INDEX = "byOwner"
# An unset ``expire_at``: the record lapses ``retention`` after this change, as before.
_RETENTION: Any = object()
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


# A claim's holder: one receive of one SQS message, ``{message id}#{receive count, 4 digits}``
# (or an id of its own where there is no message). A later receive of the same message may take
# up what an earlier one left; a copy of the message delivered beside it (SQS may deliver a
# message twice) has the same receive count, and waits like any other delivery.
_EARLIER_RECEIVE = "(begins_with(claim_by, :message) AND claim_by < :by)"


def holder(message_id: str, receive_count: int) -> str:
    return f"{message_id}#{receive_count:04d}"


def message_of(by: str) -> str:
    """The message part of a holder (up to and including its ``#``), or the holder itself."""
    head, sep, _ = by.rpartition("#")
    return head + sep if sep else by


def earlier_receive(held: str, by: str) -> bool:
    """Whether ``held`` is an earlier receive of ``by``'s message (what ``_EARLIER_RECEIVE`` says
    in a condition): ``by`` may take up what it left."""
    return held.startswith(message_of(by)) and held < by


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


def _check_fields(names: Iterable[str]) -> None:
    """A write names typed fields of the record only (the owed event, the claim...): anything
    else would be stored around the model, and dropped when the record is read (extra="ignore")."""
    unknown = sorted(set(names) - set(UploadRecord.model_fields))
    if unknown:
        raise ValueError(f"not fields of UploadRecord: {unknown}")


def record_from_item(item: dict[str, Any]) -> UploadRecord:
    """An upload record from its DynamoDB item (as GetItem, Query and streams return it)."""
    return _from_item(item)


def _from_item(item: dict[str, Any]) -> UploadRecord:
    data = {name: _deserializer.deserialize(value) for name, value in item.items()}
    for name in _JSON_FIELDS:
        if isinstance(data.get(name), str):
            data[name] = json.loads(data[name])
    return UploadRecord.model_validate(data)


class TransitionRefused(Exception):
    """The record is missing or not in a state the transition may leave."""


class ClaimRefused(TransitionRefused):
    """A claim made without reading the record first was refused: ``record`` is the record as it
    was (None when there is none), so the caller decides as it would have from a read."""

    def __init__(self, message: str, record: UploadRecord | None) -> None:
        super().__init__(message)
        self.record = record


class UploadStore:
    def __init__(self, table_name: str, client: Any, retention: timedelta = timedelta(days=30)) -> None:
        self.table_name = table_name
        self.client = client
        self.retention = retention

    def _ttl(self, after: datetime) -> int:
        return int((after + self.retention).timestamp())

    def create(self, record: UploadRecord) -> None:
        self.client.put_item(**self.create_request(record))

    def create_request(self, record: UploadRecord) -> dict[str, Any]:
        """The PutItem of a new record (as a TransactWriteItems ``Put`` too): refused if one exists."""
        fields = record.model_dump(mode="python")
        item = {"pk": {"S": upload_pk(record.upload_id)}, **_to_item(fields)}
        item["ttl"] = {"N": str(self._ttl(record.expires_at))}
        return {"TableName": self.table_name, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}

    def put_tombstone(self, record: UploadRecord, *, expire_at: datetime) -> bool:
        """Put ``record`` (DELETED) where a removed record was; False when one is there already."""
        item = {"pk": {"S": upload_pk(record.upload_id)}, **_to_item(record.model_dump(mode="python"))}
        item["ttl"] = {"N": str(int(expire_at.timestamp()))}
        try:
            self.client.put_item(TableName=self.table_name, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

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
        *,
        now: datetime | None = None,
        remove: Iterable[str] = (),
        claimed_by: str | None = None,
        held_by: str | None = None,
        free_or_held_by: str | None = None,
        expire_at: datetime | None = _RETENTION,
        **fields: Any,
    ) -> UploadRecord:
        """Move the record to ``to`` if it is in one of the statuses ``TRANSITIONS[to]`` allows
        (and, with ``claimed_by``, if that staging version holds the claim; with ``held_by``, if
        that attempt holds it; with ``free_or_held_by``, unless another delivery holds a live
        claim); raise TransitionRefused
        otherwise.

        The record expires (DynamoDB TTL) ``retention`` after the change, at ``expire_at`` when
        given, or never when ``expire_at`` is None (a processed upload kept until deleted)."""
        allowed = TRANSITIONS.get(to)
        if allowed is None:
            raise ValueError(f"no write moves an upload to {to.value} (models.TRANSITIONS)")
        return self._update(
            upload_id,
            to,
            allowed,
            now=now,
            remove=remove,
            claimed_by=claimed_by,
            held_by=held_by,
            free_or_held_by=free_or_held_by,
            expire_at=expire_at,
            **fields,
        )

    def settle_size(self, upload_id: str, *, ceiling: int, size: int, now: datetime | None = None) -> UploadRecord:
        """Set a PENDING upload's size to ``size`` while it is still ``ceiling`` (the declared size
        was a ceiling: parts the client sized); two completes at once settle once. Not a change of
        state: TransitionRefused when the record left PENDING or its size was settled already."""
        return self._update(upload_id, Status.PENDING, {Status.PENDING}, now=now, if_equal={"size": ceiling}, size=size)

    def _update(
        self,
        upload_id: str,
        to: Status,
        allowed_from: Iterable[Status],
        *,
        now: datetime | None = None,
        remove: Iterable[str] = (),
        claimed_by: str | None = None,
        held_by: str | None = None,
        free_or_held_by: str | None = None,
        if_equal: dict[str, Any] | None = None,
        expire_at: datetime | None = _RETENTION,
        **fields: Any,
    ) -> UploadRecord:
        """One conditional UpdateItem: status ``to`` and ``fields``, if the record is in one of
        ``allowed_from`` and meets the other conditions (see transition)."""
        removals = list(remove)
        _check_fields([*fields, *removals, *(if_equal or {})])
        now = now or utcnow()
        values = _to_item({**fields, "status": to.value, "updated_at": now})
        if expire_at is _RETENTION:
            values["ttl"] = {"N": str(self._ttl(now))}
        elif expire_at is None:
            removals.append("ttl")
        else:
            values["ttl"] = {"N": str(int(expire_at.timestamp()))}
        names = {f"#a{i}": name for i, name in enumerate(values)}
        assignments = ", ".join(f"#a{i} = :v{i}" for i in range(len(values)))
        expr_values = {f":v{i}": value for i, value in enumerate(values.values())}
        allowed = [status.value for status in allowed_from]
        for i, status in enumerate(allowed):
            expr_values[f":from{i}"] = {"S": status}
        names["#status"] = "status"
        update = f"SET {assignments}"
        if removals:
            names.update({f"#r{i}": name for i, name in enumerate(removals)})
            update += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(removals)))
        condition = "attribute_exists(pk) AND #status IN (" + ", ".join(f":from{i}" for i in range(len(allowed))) + ")"
        if claimed_by is not None:
            names["#claim"] = "claim_etag"
            expr_values[":claim"] = {"S": claimed_by}
            condition += " AND #claim = :claim"
        if held_by is not None:
            names["#by"] = "claim_by"
            expr_values[":by"] = {"S": held_by}
            condition += " AND #by = :by"
        if free_or_held_by is not None:
            expr_values[":by"] = {"S": free_or_held_by}
            expr_values[":message"] = {"S": message_of(free_or_held_by)}
            expr_values[":now"] = {"S": now.isoformat()}
            condition += (
                " AND (attribute_not_exists(claim_by) OR claim_until < :now OR claim_by = :by OR "
                + _EARLIER_RECEIVE
                + ")"
            )
        for i, (name, value) in enumerate(_to_item(if_equal or {}).items()):
            names[f"#q{i}"] = name
            expr_values[f":q{i}"] = value
            condition += f" AND #q{i} = :q{i}"
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

    def claim(
        self,
        record: UploadRecord,
        etag: str,
        *,
        by: str,
        now: datetime,
        until: datetime,
        superseding: str | None = None,
    ) -> UploadRecord:
        """Let attempt ``by`` verify staging version ``etag``, and be the only one that may promote it
        and record its outcome.

        One claim at a time per upload, held by one attempt: two versions of the staging object (a
        presigned POST sent twice) are never promoted over each other, and two deliveries of one
        notification never run at once. A claim lapses at ``until`` (an attempt that died); a
        version parked while it waits for its scan (no attempt holds it) may be claimed by the next
        delivery of that version. A PENDING record becomes UPLOADED in the same write.
        ``superseding``: the version a scan wait is parked on, which the staging object no longer
        is: ``etag`` takes the wait over while no attempt holds it (its bytes will get no verdict).
        TransitionRefused when the record moved on or another attempt holds a live claim."""
        to = Status.UPLOADED if record.status == Status.PENDING else record.status
        try:
            return self._claim(
                record.upload_id, record.status, to, etag, by=by, now=now, until=until, superseding=superseding
            )
        except self.client.exceptions.ConditionalCheckFailedException as exc:
            raise TransitionRefused(f"upload {record.upload_id}: version {etag} cannot claim it") from exc

    def claim_arrival(
        self, upload_id: str, key: str, etag: str, *, by: str, now: datetime, until: datetime
    ) -> UploadRecord:
        """The claim of S3's first notification, in one write and no read: a PENDING record of
        ``key`` becomes UPLOADED, claimed by attempt ``by`` for staging version ``etag`` (as
        ``claim`` does). For any other record ClaimRefused carries the record as it was (DynamoDB
        returns it with the refusal), so the rare cases cost no more than reading it first would have."""
        try:
            return self._claim(upload_id, Status.PENDING, Status.UPLOADED, etag, by=by, now=now, until=until, key=key)
        except self.client.exceptions.ConditionalCheckFailedException as exc:
            item = exc.response.get("Item")
            was = _from_item(item) if item else None
            raise ClaimRefused(f"upload {upload_id}: not a pending upload of {key}", was) from exc

    def _claim(
        self,
        upload_id: str,
        was: Status,
        to: Status,
        etag: str,
        *,
        by: str,
        now: datetime,
        until: datetime,
        key: str | None = None,
        superseding: str | None = None,
    ) -> UploadRecord:
        names = {"#status": "status"}
        values = {
            ":to": {"S": to.value},
            ":from": {"S": was.value},
            ":etag": {"S": etag},
            ":by": {"S": by},
            ":message": {"S": message_of(by)},
            ":until": {"S": until.isoformat()},
            ":now": {"S": now.isoformat()},
        }
        condition = "#status = :from"
        if key is not None:
            names["#key"] = "key"
            values[":key"] = {"S": key}
            condition += " AND #key = :key"
        # free, lapsed, or this version's: parked (its scan wait), or left by an earlier receive of
        # this very message (an attempt that failed and could not give it up, or died)
        taken_over = ""
        if superseding is not None:  # a parked wait for bytes no longer there
            values[":parked"] = {"S": superseding}
            taken_over = " OR (claim_etag = :parked AND attribute_not_exists(claim_by))"
        condition += (
            " AND (attribute_not_exists(claim_etag) OR claim_until < :now"
            " OR (claim_etag = :etag AND (attribute_not_exists(claim_by) OR "
            + _EARLIER_RECEIVE
            + "))"
            + taken_over
            + ")"
        )
        reply = self.client.update_item(
            TableName=self.table_name,
            Key={"pk": {"S": upload_pk(upload_id)}},
            UpdateExpression=(
                "SET #status = :to, claim_etag = :etag, claim_by = :by, claim_until = :until, updated_at = :now"
            ),
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        return _from_item(reply["Attributes"])

    def attach_multipart(self, upload_id: str, s3_upload_id: str) -> UploadRecord | None:
        """Record S3's multipart upload id on a PENDING upload that has none yet: the record as
        written, or None when another call attached one first or the upload is no longer pending."""
        try:
            reply = self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": upload_pk(upload_id)}},
                UpdateExpression="SET s3_upload_id = :id",
                ConditionExpression="#status = :pending AND attribute_not_exists(s3_upload_id)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":id": {"S": s3_upload_id}, ":pending": {"S": Status.PENDING.value}},
                ReturnValues="ALL_NEW",
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return None
        return _from_item(reply["Attributes"])

    def release(self, upload_id: str, etag: str, by: str) -> None:
        """Attempt ``by`` gives up its claim of staging version ``etag`` (it failed, or the version
        was replaced before it was promoted)."""
        self._give_up("claim_etag, claim_until, claim_by", "claim_etag = :etag AND claim_by = :by", upload_id, etag, by)

    def give_up(self, upload_id: str, by: str, *, this_receive: bool) -> None:
        """The message of attempt ``by`` is out of receives: the claim an earlier receive
        of it left is given up, and (``this_receive``: its attempt kept one) this receive's own,
        so the redriven message, another message, need not wait for it to lapse. A copy of this
        receive beside it has the same name: only the attempt knows whether it holds the claim."""
        self._give_up(
            "claim_etag, claim_until, claim_by",
            ("claim_by = :by OR " if this_receive else "") + _EARLIER_RECEIVE,
            upload_id,
            None,
            by,
            {":message": {"S": message_of(by)}},
        )

    def park(self, upload_id: str, by: str) -> None:
        """Attempt ``by`` leaves its claim to the version it holds (waiting for its malware scan):
        the next delivery for that version, whichever message brings it, takes it up."""
        self._give_up("claim_by", "claim_by = :by", upload_id, None, by)

    def _give_up(
        self,
        removed: str,
        condition: str,
        upload_id: str,
        etag: str | None,
        by: str,
        more: dict[str, Any] | None = None,
    ) -> None:
        """REMOVE ``removed`` if ``condition`` holds (else another attempt holds the claim now)."""
        values = {":by": {"S": by}} | ({":etag": {"S": etag}} if etag is not None else {}) | (more or {})
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": upload_pk(upload_id)}},
                UpdateExpression=f"REMOVE {removed}",
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )

    def by_owner(
        self, owner: str, *, limit: int, after: tuple[str, str] | None = None
    ) -> tuple[list[UploadRecord], tuple[str, str] | None]:
        """One page of the owner's records, newest first, and where the next page starts
        (upload id and created_at of the last record), or None at the end."""
        params: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": OWNER_INDEX,
            "KeyConditionExpression": "#owner = :owner",
            "ExpressionAttributeNames": {"#owner": "owner"},
            "ExpressionAttributeValues": {":owner": {"S": owner}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if after is not None:
            upload_id, created_at = after
            params["ExclusiveStartKey"] = {
                "pk": {"S": upload_pk(upload_id)},
                "owner": {"S": owner},  # the caller's own partition, whatever the cursor says
                "created_at": {"S": created_at},
            }
        reply = self.client.query(**params)
        records = [_from_item(item) for item in reply.get("Items", [])]
        last = reply.get("LastEvaluatedKey")
        if not last or not records:
            return records, None
        return records, (records[-1].upload_id, records[-1].created_at.isoformat())
