"""Per-owner quotas, enforced atomically in the uploads table (conditional updates, no read-then-write).

- Pending uploads at once: item ``owner#{sub}`` holds a map ``open`` of upload id -> the moment the
  upload stops being able to arrive. Reserving a slot is one conditional update
  (``size(open) < max``); finished uploads release their slot, abandoned ones lapse by themselves
  (pruned, each with its own condition, when the limit is hit).
- Bytes issued per day (UTC): item ``quota#{sub}#{day}`` counts bytes with a conditional ADD.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from directupload.errors import QuotaExceeded


def _owner_pk(owner: str) -> str:
    return f"owner#{owner}"


def _day_pk(owner: str, day: str) -> str:
    return f"quota#{owner}#{day}"


def _seconds_to_midnight(now: datetime) -> int:
    tomorrow = (now.astimezone(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((tomorrow - now).total_seconds()) + 1)


class OwnerQuota:
    def __init__(self, table_name: str, client: Any, *, max_pending: int, daily_bytes: int) -> None:
        self.table_name = table_name
        self.client = client
        self.max_pending = max_pending
        self.daily_bytes = daily_bytes

    def reserve(self, owner: str, upload_id: str, size: int, now: datetime, open_until: datetime) -> None:
        """Count ``size`` against today's bytes and take a pending slot, or raise QuotaExceeded (429)."""
        day = now.astimezone(UTC).strftime("%Y-%m-%d")
        self._add_bytes(owner, day, size, now)
        try:
            self._take_slot(owner, upload_id, now, open_until)
        except QuotaExceeded:
            self._refund_bytes(owner, day, size)
            raise

    def release(self, owner: str, upload_id: str) -> None:
        """Give back the pending slot of a finished upload (idempotent)."""
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": _owner_pk(owner)}},
                UpdateExpression="REMOVE #open.#id",
                ConditionExpression="attribute_exists(#open)",
                ExpressionAttributeNames={"#open": "open", "#id": upload_id},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            pass  # the owner never held a slot

    # bytes per day
    def _add_bytes(self, owner: str, day: str, size: int, now: datetime) -> None:
        if size > self.daily_bytes:
            raise QuotaExceeded(
                f"{size} bytes is more than the daily allowance of {self.daily_bytes} bytes",
                retry_after=_seconds_to_midnight(now),
            )
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": _day_pk(owner, day)}},
                UpdateExpression="ADD #bytes :size SET #ttl = if_not_exists(#ttl, :ttl)",
                ConditionExpression="attribute_not_exists(#bytes) OR #bytes <= :room",
                ExpressionAttributeNames={"#bytes": "bytes", "#ttl": "ttl"},
                ExpressionAttributeValues={
                    ":size": {"N": str(size)},
                    ":room": {"N": str(self.daily_bytes - size)},
                    ":ttl": {"N": str(int((now + timedelta(days=2)).timestamp()))},
                },
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            raise QuotaExceeded(
                f"today's upload allowance of {self.daily_bytes} bytes is used up",
                retry_after=_seconds_to_midnight(now),
            ) from None

    def _refund_bytes(self, owner: str, day: str, size: int) -> None:
        self.client.update_item(
            TableName=self.table_name,
            Key={"pk": {"S": _day_pk(owner, day)}},
            UpdateExpression="ADD #bytes :minus",
            ExpressionAttributeNames={"#bytes": "bytes"},
            ExpressionAttributeValues={":minus": {"N": str(-size)}},
        )

    # pending slots
    def _take_slot(self, owner: str, upload_id: str, now: datetime, open_until: datetime) -> None:
        key = {"pk": {"S": _owner_pk(owner)}}
        self.client.update_item(
            TableName=self.table_name,
            Key=key,
            UpdateExpression="SET #open = if_not_exists(#open, :empty)",
            ExpressionAttributeNames={"#open": "open"},
            ExpressionAttributeValues={":empty": {"M": {}}},
        )
        for attempt in range(2):
            try:
                self.client.update_item(
                    TableName=self.table_name,
                    Key=key,
                    UpdateExpression="SET #open.#id = :until",
                    ConditionExpression="size(#open) < :max",
                    ExpressionAttributeNames={"#open": "open", "#id": upload_id},
                    ExpressionAttributeValues={
                        ":until": {"N": str(int(open_until.timestamp()))},
                        ":max": {"N": str(self.max_pending)},
                    },
                )
                return
            except self.client.exceptions.ConditionalCheckFailedException:
                earliest = self._prune(owner, now)
                if attempt == 1 or earliest is not None:
                    retry = max(1, int(earliest - now.timestamp()) + 1) if earliest is not None else 60
                    raise QuotaExceeded(
                        f"at most {self.max_pending} uploads may be pending at once; finish or cancel one",
                        retry_after=retry,
                    ) from None

    def _prune(self, owner: str, now: datetime) -> float | None:
        """Drop lapsed slots; the earliest expiry of those still open, or None when some were freed."""
        item = self.client.get_item(TableName=self.table_name, Key={"pk": {"S": _owner_pk(owner)}}, ConsistentRead=True)
        slots = {k: int(v["N"]) for k, v in item.get("Item", {}).get("open", {}).get("M", {}).items()}
        lapsed = {k: v for k, v in slots.items() if v <= now.timestamp()}
        for upload_id, until in lapsed.items():
            try:
                self.client.update_item(
                    TableName=self.table_name,
                    Key={"pk": {"S": _owner_pk(owner)}},
                    UpdateExpression="REMOVE #open.#id",
                    ConditionExpression="#open.#id = :until",
                    ExpressionAttributeNames={"#open": "open", "#id": upload_id},
                    ExpressionAttributeValues={":until": {"N": str(until)}},
                )
            except self.client.exceptions.ConditionalCheckFailedException:
                continue  # renewed or released meanwhile
        if lapsed:
            return None
        return float(min(slots.values())) if slots else None
