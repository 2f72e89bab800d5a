"""Proposed product changes, built here only to measure what they would buy (docs/performance.md).

Nothing in functions/ imports this.

- ``OneCallQuota``: the quota bookkeeping of functions/directupload/quotas.py in one
  conditional UpdateItem on one item per owner instead of three UpdateItems on two items,
  with the same rules: at most ``max_pending`` uploads open at once (lapsed ones pruned
  when the limit is hit) and at most ``daily_bytes`` issued per UTC day.
- ``TransactionalIssue``: that same quota update and the upload record's PutItem in one
  TransactWriteItems, so issuing an upload is one DynamoDB round trip, as the baseline's.
- ``read_ahead_stream``: ``Storage.stream`` reading the next chunk from S3 in a thread while
  the caller (verify's SHA-256) works on this one, so reading and hashing overlap.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from directupload.errors import QuotaExceeded


def _seconds_to_midnight(now: datetime) -> int:
    tomorrow = (now.astimezone(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((tomorrow - now).total_seconds()) + 1)


class OneCallQuota:
    """Item ``owner#{sub}``: ``open`` (upload id -> until), ``day`` (UTC date) and ``bytes`` issued that day.

    The common path is one UpdateItem; the rare ones (first upload of an owner, first of a day,
    limit reached) learn why the condition failed from ReturnValuesOnConditionCheckFailure and
    fix that before trying again."""

    def __init__(self, table_name: str, client: Any, *, max_pending: int, daily_bytes: int) -> None:
        self.table_name = table_name
        self.client = client
        self.max_pending = max_pending
        self.daily_bytes = daily_bytes

    def _key(self, owner: str) -> dict[str, Any]:
        return {"pk": {"S": f"owner#{owner}"}}

    def reserve(self, owner: str, upload_id: str, size: int, now: datetime, open_until: datetime) -> None:
        if size > self.daily_bytes:
            raise QuotaExceeded(
                f"{size} bytes is more than the daily allowance of {self.daily_bytes} bytes",
                retry_after=_seconds_to_midnight(now),
            )
        day = now.astimezone(UTC).strftime("%Y-%m-%d")
        for _ in range(4):
            old = self._try_reserve(owner, upload_id, size, day, open_until)
            if old is None:
                return
            if "open" not in old or "day" not in old:  # a new owner: make the item, then try again
                self._create(owner, day)
            elif old["day"]["S"] != day:  # the first upload of a day: a new allowance
                self._new_day(owner, day)
            elif int(old["bytes"]["N"]) + size > self.daily_bytes:
                raise QuotaExceeded(
                    f"today's upload allowance of {self.daily_bytes} bytes is used up",
                    retry_after=_seconds_to_midnight(now),
                )
            else:  # every slot taken: free the lapsed ones, or tell the client when one lapses
                slots = {k: int(v["N"]) for k, v in old["open"]["M"].items()}
                earliest = self._prune(owner, slots, now)
                if earliest is not None:
                    raise QuotaExceeded(
                        f"at most {self.max_pending} uploads may be pending at once; finish or cancel one",
                        retry_after=max(1, int(earliest - now.timestamp()) + 1),
                    )
        raise QuotaExceeded("the quota changed under this request too often; try again", retry_after=1)

    def _try_reserve(self, owner: str, upload_id: str, size: int, day: str, open_until: datetime) -> dict | None:
        """None when reserved; otherwise the item as it was (empty when there is none)."""
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=self._key(owner),
                UpdateExpression="SET #open.#id = :until ADD #bytes :size",
                ConditionExpression="#day = :day AND size(#open) < :max AND #bytes <= :room",
                ExpressionAttributeNames={"#open": "open", "#id": upload_id, "#bytes": "bytes", "#day": "day"},
                ExpressionAttributeValues={
                    ":until": {"N": str(int(open_until.timestamp()))},
                    ":size": {"N": str(size)},
                    ":day": {"S": day},
                    ":max": {"N": str(self.max_pending)},
                    ":room": {"N": str(self.daily_bytes - size)},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return None
        except self.client.exceptions.ConditionalCheckFailedException as exc:
            return dict(exc.response.get("Item") or {})
        except ClientError as exc:  # the document path does not exist yet (no item, no map)
            if exc.response.get("Error", {}).get("Code") != "ValidationException":
                raise
            return {}

    def _create(self, owner: str, day: str) -> None:
        """Give the owner's item what the common path needs, keeping whatever it holds already."""
        self.client.update_item(
            TableName=self.table_name,
            Key=self._key(owner),
            UpdateExpression="SET #open = if_not_exists(#open, :empty), #day = if_not_exists(#day, :day), "
            "#bytes = if_not_exists(#bytes, :zero)",
            ExpressionAttributeNames={"#open": "open", "#day": "day", "#bytes": "bytes"},
            ExpressionAttributeValues={":empty": {"M": {}}, ":day": {"S": day}, ":zero": {"N": "0"}},
        )

    def _new_day(self, owner: str, day: str) -> None:
        # a parallel request may have started the day: its condition then fails, and that is fine
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.update_item(
                TableName=self.table_name,
                Key=self._key(owner),
                UpdateExpression="SET #day = :day, #bytes = :zero",
                ConditionExpression="#day < :day",
                ExpressionAttributeNames={"#day": "day", "#bytes": "bytes"},
                ExpressionAttributeValues={":day": {"S": day}, ":zero": {"N": "0"}},
            )

    def _prune(self, owner: str, slots: dict[str, int], now: datetime) -> float | None:
        lapsed = {k: v for k, v in slots.items() if v <= now.timestamp()}
        for upload_id, until in lapsed.items():
            try:
                self.client.update_item(
                    TableName=self.table_name,
                    Key=self._key(owner),
                    UpdateExpression="REMOVE #open.#id",
                    ConditionExpression="#open.#id = :until",
                    ExpressionAttributeNames={"#open": "open", "#id": upload_id},
                    ExpressionAttributeValues={":until": {"N": str(until)}},
                )
            except self.client.exceptions.ConditionalCheckFailedException:
                continue
        if lapsed:
            return None
        return float(min(slots.values())) if slots else None

    def release(self, owner: str, upload_id: str) -> None:
        with contextlib.suppress(self.client.exceptions.ConditionalCheckFailedException):
            self.client.update_item(
                TableName=self.table_name,
                Key=self._key(owner),
                UpdateExpression="REMOVE #open.#id",
                ConditionExpression="attribute_exists(#open)",
                ExpressionAttributeNames={"#open": "open", "#id": upload_id},
            )


class TransactionalIssue:
    """Wires ``OneCallQuota``'s update and the record's PutItem into one TransactWriteItems.

    ``quota`` goes where UploadService expects its quota: ``reserve`` only checks the size and
    remembers the reservation. ``client`` goes where UploadStore expects its DynamoDB client:
    its ``put_item`` becomes the transaction (the quota update first, then the record), and when
    the quota's condition fails it takes OneCallQuota's slow paths and tries again. A real patch
    would pass the reservation to the store explicitly; this one keeps functions/ untouched."""

    def __init__(self, quota: OneCallQuota) -> None:
        self.one_call = quota
        self.pending: tuple[str, str, int, datetime, datetime] | None = None
        self.quota = _DeferredQuota(self)
        self.client = _TransactingClient(self)

    def transact(self, put: dict[str, Any]) -> Any:
        assert self.pending is not None, "put_item without a reservation"
        owner, upload_id, size, now, open_until = self.pending
        self.pending = None
        q = self.one_call
        day = now.astimezone(UTC).strftime("%Y-%m-%d")
        update = {
            "TableName": q.table_name,
            "Key": q._key(owner),
            "UpdateExpression": "SET #open.#id = :until ADD #bytes :size",
            "ConditionExpression": "#day = :day AND size(#open) < :max AND #bytes <= :room",
            "ExpressionAttributeNames": {"#open": "open", "#id": upload_id, "#bytes": "bytes", "#day": "day"},
            "ExpressionAttributeValues": {
                ":until": {"N": str(int(open_until.timestamp()))},
                ":size": {"N": str(size)},
                ":day": {"S": day},
                ":max": {"N": str(q.max_pending)},
                ":room": {"N": str(q.daily_bytes - size)},
            },
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        client = q.client
        for _ in range(4):
            try:
                return client.transact_write_items(TransactItems=[{"Update": update}, {"Put": put}])
            except client.exceptions.TransactionCanceledException as exc:
                reasons = exc.response.get("CancellationReasons") or [{}]
                if reasons[0].get("Code") not in ("ConditionalCheckFailed", "ValidationError"):
                    raise  # the record's own condition, or a conflict: as put_item would
                old = dict(reasons[0].get("Item") or {})
            if "open" not in old or "day" not in old:
                q._create(owner, day)
            elif old["day"]["S"] != day:
                q._new_day(owner, day)
            elif int(old["bytes"]["N"]) + size > q.daily_bytes:
                raise QuotaExceeded(
                    f"today's upload allowance of {q.daily_bytes} bytes is used up",
                    retry_after=_seconds_to_midnight(now),
                )
            else:
                slots = {k: int(v["N"]) for k, v in old["open"]["M"].items()}
                earliest = q._prune(owner, slots, now)
                if earliest is not None:
                    raise QuotaExceeded(
                        f"at most {q.max_pending} uploads may be pending at once; finish or cancel one",
                        retry_after=max(1, int(earliest - now.timestamp()) + 1),
                    )
        raise QuotaExceeded("the quota changed under this request too often; try again", retry_after=1)


class _DeferredQuota:
    def __init__(self, issue: TransactionalIssue) -> None:
        self.issue = issue

    def reserve(self, owner: str, upload_id: str, size: int, now: datetime, open_until: datetime) -> None:
        q = self.issue.one_call
        if size > q.daily_bytes:
            raise QuotaExceeded(
                f"{size} bytes is more than the daily allowance of {q.daily_bytes} bytes",
                retry_after=_seconds_to_midnight(now),
            )
        self.issue.pending = (owner, upload_id, size, now, open_until)

    def release(self, owner: str, upload_id: str) -> None:
        self.issue.one_call.release(owner, upload_id)


class _TransactingClient:
    def __init__(self, issue: TransactionalIssue) -> None:
        self.issue = issue

    def put_item(self, **put: Any) -> Any:
        return self.issue.transact(put)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.issue.one_call.client, name)


_END = object()


def read_ahead_stream(self: Any, key: str, chunk_size: int = 1024 * 1024, depth: int = 2) -> Iterator[bytes]:
    """A drop-in for ``directupload.storage.Storage.stream``: the same chunks, in order, with up to
    ``depth`` of them read ahead by a thread. Socket reads and hashlib both release the GIL, so the
    read of chunk n+1 overlaps the hashing of chunk n; memory stays at (depth + 2) chunks."""
    body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
    chunks: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: Any) -> bool:
        while not stop.is_set():
            try:
                chunks.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for chunk in body.iter_chunks(chunk_size):
                if not offer(chunk):
                    return
            offer(_END)
        except BaseException as exc:  # handed to the reader, which raises it
            offer(exc)

    thread = threading.Thread(target=pump, name="s3-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = chunks.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=10)
        body.close()
