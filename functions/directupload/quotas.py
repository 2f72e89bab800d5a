"""Per-owner quotas, enforced atomically in the uploads table (conditional updates, no read-then-write).

One item per owner, ``owner#{sub}``, holds both limits, so issuing an upload checks and counts
them in one conditional update, which is written with the new upload's record in one
TransactWriteItems (one round trip for both; twice the write units of two plain writes, and the
slot never outlives a record that was not written):

- ``open``: upload id -> the moment the upload stops being able to arrive. At most
  ``max_pending`` of them. A slot is given back when the limit is hit, not when the upload
  arrives: the reservation that finds every slot taken reads the records of the uploads holding
  them (one BatchGetItem) and frees, in one conditional update, the slots of those no longer
  pending and of those that lapsed. So processing an upload costs no quota request, and an
  owner who keeps under the limit never pays for this at all. A cancelled upload gives its slot
  back at once (``release``).
- ``day`` and ``bytes``: the bytes issued on that UTC day, at most ``daily_bytes``.

The rare cases (an owner's first upload, the first of a day, a limit reached) learn why the
condition failed from the item as it was (ReturnValuesOnConditionCheckFailure) and deal with it.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from directupload.errors import QuotaExceeded
from directupload.models import Status
from directupload.store import upload_pk

# Attempts at the common path before giving up (each failed one fixed what stood in the way).
ATTEMPTS = 4


def _owner_pk(owner: str) -> str:
    return f"owner#{owner}"


def _seconds_to_midnight(now: datetime) -> int:
    tomorrow = (now.astimezone(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((tomorrow - now).total_seconds()) + 1)


class _Conflict(Exception):
    """Another transaction on the owner's item was under way: the writes go one after the other."""


class OwnerQuota:
    def __init__(self, table_name: str, client: Any, *, max_pending: int, daily_bytes: int) -> None:
        self.table_name = table_name
        self.client = client
        self.max_pending = max_pending
        self.daily_bytes = daily_bytes

    def _key(self, owner: str) -> dict[str, Any]:
        return {"pk": {"S": _owner_pk(owner)}}

    def reserve(
        self,
        owner: str,
        upload_id: str,
        size: int,
        now: datetime,
        open_until: datetime,
        *,
        with_put: dict[str, Any] | None = None,
    ) -> None:
        """Count ``size`` against today's bytes and take a pending slot, or raise QuotaExceeded (429).
        ``with_put``: a TransactWriteItems ``Put`` (the upload's record) written in the same
        transaction; when another transaction on the owner's item conflicts with it (two uploads
        issued at the same moment), the two are written one after the other instead."""
        if size > self.daily_bytes:
            raise QuotaExceeded(
                f"{size} bytes is more than the daily allowance of {self.daily_bytes} bytes",
                retry_after=_seconds_to_midnight(now),
            )
        day = now.astimezone(UTC).strftime("%Y-%m-%d")
        for _ in range(ATTEMPTS):
            try:
                old = self._try_reserve(owner, upload_id, size, day, open_until, with_put)
            except _Conflict:
                old = self._try_reserve(owner, upload_id, size, day, open_until, None)
                if old is None and with_put is not None:
                    self._put_or_give_back(owner, upload_id, size, now, with_put)
            if old is None:
                return
            if "open" not in old or "day" not in old:  # the owner's first upload
                self._create(owner, day)
            elif old["day"]["S"] < day:  # the first upload of a day: a new allowance
                self._new_day(owner, day)
            elif int(old["bytes"]["N"]) + size > self.daily_bytes:
                raise QuotaExceeded(
                    f"today's upload allowance of {self.daily_bytes} bytes is used up",
                    retry_after=_seconds_to_midnight(now),
                )
            else:  # every slot taken: free those of uploads that arrived or lapsed, or say when one lapses
                slots = {k: int(v["N"]) for k, v in old["open"]["M"].items()}
                earliest = self._reclaim(owner, slots, now)
                if earliest is not None:
                    raise QuotaExceeded(
                        f"at most {self.max_pending} uploads may be pending at once; finish or cancel one",
                        retry_after=max(1, int(earliest - now.timestamp()) + 1),
                    )
        raise QuotaExceeded("the quota changed under this request too often; try again", retry_after=1)

    def _put_or_give_back(self, owner: str, upload_id: str, size: int, now: datetime, put: dict[str, Any]) -> None:
        """The record's write after the reservation on its own: if it fails, the slot and the bytes
        go back (nothing was issued), and the error stands."""
        try:
            self.client.put_item(**put)
        except Exception:
            with contextlib.suppress(ClientError):
                self.release(owner, upload_id)
                self.settle(owner, now, size)
            raise

    def release(self, owner: str, upload_id: str) -> None:
        """Give back the pending slot of a cancelled upload at once (idempotent)."""
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):  # never held one
            self.client.update_item(
                TableName=self.table_name,
                Key=self._key(owner),
                UpdateExpression="REMOVE #open.#id",
                ConditionExpression="attribute_exists(#open)",
                ExpressionAttributeNames={"#open": "open", "#id": upload_id},
            )

    def settle(self, owner: str, issued_at: datetime, refund: int) -> None:
        """Give back the bytes charged at a ceiling that the upload did not use (Uppy's POSTs of
        undeclared size), while the day it was charged on is still the owner's current one."""
        if refund <= 0:
            return
        self._update_if(  # else a new day began: the ceiling was charged to a day that is over
            owner,
            "ADD #bytes :refund",
            "#day = :day",
            {"#bytes": "bytes", "#day": "day"},
            {":refund": {"N": str(-refund)}, ":day": {"S": issued_at.astimezone(UTC).strftime("%Y-%m-%d")}},
        )

    def _update_if(
        self, owner: str, update: str, condition: str, names: dict[str, str], values: dict[str, Any]
    ) -> None:
        """One conditional update of the owner's item; a failed condition means nothing is to do."""
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.update_item(
                TableName=self.table_name,
                Key=self._key(owner),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )

    def _try_reserve(
        self, owner: str, upload_id: str, size: int, day: str, open_until: datetime, with_put: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """None when reserved (and ``with_put`` written with it); otherwise the item as it was
        (empty when there is none). _Conflict when another transaction held the owner's item."""
        update = {
            "TableName": self.table_name,
            "Key": self._key(owner),
            "UpdateExpression": "SET #open.#id = :until ADD #bytes :size",
            "ConditionExpression": "#day = :day AND size(#open) < :max AND #bytes <= :room",
            "ExpressionAttributeNames": {"#open": "open", "#id": upload_id, "#bytes": "bytes", "#day": "day"},
            "ExpressionAttributeValues": {
                ":until": {"N": str(int(open_until.timestamp()))},
                ":size": {"N": str(size)},
                ":day": {"S": day},
                ":max": {"N": str(self.max_pending)},
                ":room": {"N": str(self.daily_bytes - size)},
            },
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        try:
            if with_put is None:
                self.client.update_item(**update)
            else:
                self.client.transact_write_items(TransactItems=[{"Update": update}, {"Put": with_put}])
            return None
        except self.client.exceptions.ConditionalCheckFailedException as exc:
            return dict(exc.response.get("Item") or {})
        except self.client.exceptions.TransactionCanceledException as exc:
            reasons = exc.response.get("CancellationReasons") or []
            code = reasons[0].get("Code") if reasons else None
            if code == "ConditionalCheckFailed":
                return dict(reasons[0].get("Item") or {})
            if code == "ValidationError":  # as below
                if self._has_slots(owner):
                    raise
                return {}
            if len(reasons) > 1 and reasons[1].get("Code") == "ConditionalCheckFailed":
                raise  # a record with this id exists: never a new upload's (ids are random)
            raise _Conflict() from exc
        except ClientError as exc:
            # expected only while the map to set the slot in does not exist yet (the owner's first
            # upload); on an item that has it, the request itself is wrong: a fault, never a 429
            if exc.response.get("Error", {}).get("Code") != "ValidationException" or self._has_slots(owner):
                raise
            return {}

    def _has_slots(self, owner: str) -> bool:
        """Whether the owner's item has what reserving needs (``_create`` gives it that)."""
        item = self.client.get_item(
            TableName=self.table_name,
            Key=self._key(owner),
            ProjectionExpression="#open, #day",
            ExpressionAttributeNames={"#open": "open", "#day": "day"},
            ConsistentRead=True,
        ).get("Item", {})
        return "open" in item and "day" in item

    def _create(self, owner: str, day: str) -> None:
        """Give the owner's item what reserving needs, keeping whatever it holds already."""
        self.client.update_item(
            TableName=self.table_name,
            Key=self._key(owner),
            UpdateExpression="SET #open = if_not_exists(#open, :empty), #day = if_not_exists(#day, :day), "
            "#bytes = if_not_exists(#bytes, :zero)",
            ExpressionAttributeNames={"#open": "open", "#day": "day", "#bytes": "bytes"},
            ExpressionAttributeValues={":empty": {"M": {}}, ":day": {"S": day}, ":zero": {"N": "0"}},
        )

    def _new_day(self, owner: str, day: str) -> None:
        self._update_if(  # else a parallel request began the day
            owner,
            "SET #day = :day, #bytes = :zero",
            "#day < :day",
            {"#day": "day", "#bytes": "bytes"},
            {":day": {"S": day}, ":zero": {"N": "0"}},
        )

    def _reclaim(self, owner: str, slots: dict[str, int], now: datetime) -> float | None:
        """Free the slots of uploads no longer pending (their records say so) and of lapsed ones;
        None when some were freed, else the earliest moment one of them lapses."""
        lapsed = {k for k, v in slots.items() if v <= now.timestamp()}
        free = {k: slots[k] for k in lapsed | self._not_pending(set(slots) - lapsed)}
        if not free:
            return float(min(slots.values())) if slots else None
        names = {"#open": "open"} | {f"#u{i}": upload_id for i, upload_id in enumerate(free)}
        values = {f":t{i}": {"N": str(until)} for i, until in enumerate(free.values())}
        # each slot as it was read, or gone already (another request freed it): a slot renewed
        # meanwhile fails the condition, and the caller tries again
        condition = " AND ".join(
            f"(attribute_not_exists(#open.#u{i}) OR #open.#u{i} = :t{i})" for i in range(len(free))
        )
        self._update_if(
            owner, "REMOVE " + ", ".join(f"#open.#u{i}" for i in range(len(free))), condition, names, values
        )
        return None

    def _not_pending(self, upload_ids: set[str]) -> set[str]:
        """Those of ``upload_ids`` whose record exists and is no longer PENDING. A slot with no
        record yet belongs to an upload being issued right now (the slot is taken first): kept."""
        found: set[str] = set()
        wanted = sorted(upload_ids)
        for start in range(0, len(wanted), 100):  # BatchGetItem reads up to 100 items
            keys: list[dict[str, Any]] = [{"pk": {"S": upload_pk(u)}} for u in wanted[start : start + 100]]
            while keys:
                reply = self.client.batch_get_item(
                    RequestItems={
                        self.table_name: {
                            "Keys": keys,
                            "ProjectionExpression": "upload_id, #status",
                            "ExpressionAttributeNames": {"#status": "status"},
                            "ConsistentRead": True,
                        }
                    }
                )
                for item in reply.get("Responses", {}).get(self.table_name, []):
                    if item.get("status", {}).get("S") != Status.PENDING.value:
                        found.add(item["upload_id"]["S"])
                keys = reply.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys", [])
        return found
