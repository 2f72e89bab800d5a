"""A proposed product change, built here only to measure what it would buy (docs/performance.md).

Nothing in functions/ imports this.

``TransactionalIssue``: the quota reservation of functions/directupload/quotas.py (one
conditional UpdateItem on the owner's item) and the upload record's PutItem in one
TransactWriteItems, so issuing an upload is one DynamoDB round trip, as the baseline's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from directupload.quotas import OwnerQuota


class TransactionalIssue:
    """Joins the product's ``OwnerQuota`` reservation and the record's PutItem into one
    TransactWriteItems.

    ``quota`` goes where UploadService expects its quota: its ``reserve`` only remembers the
    reservation. ``client`` goes where UploadStore expects its DynamoDB client: its ``put_item``
    runs ``OwnerQuota.reserve`` itself, on a client that turns the reservation's conditional
    UpdateItem into the transaction (that update first, then the record). The rules, the rare
    paths (an owner's first upload, the first of a day, a limit reached) and their retries are
    therefore the product's own. A real patch would hand the reservation to the store
    explicitly; this one keeps functions/ untouched, at one difference: a size over the daily
    allowance is refused at the record's write, after a multipart issue's CreateMultipartUpload
    (the benchmark issues 1 KiB POSTs)."""

    def __init__(self, quota: OwnerQuota) -> None:
        self.product = quota
        self.joined = OwnerQuota(
            quota.table_name,
            _JoiningClient(self, quota.client),
            max_pending=quota.max_pending,
            daily_bytes=quota.daily_bytes,
        )
        self.pending: tuple[str, str, int, datetime, datetime] | None = None
        self.record: dict[str, Any] | None = None  # the PutItem the reservation's update carries
        self.quota = _DeferredQuota(self)
        self.client = _TransactingClient(self, quota.client)

    def put_with_reservation(self, put: dict[str, Any]) -> None:
        assert self.pending is not None, "put_item without a reservation"
        pending, self.pending = self.pending, None
        self.record = put
        try:
            self.joined.reserve(*pending)
        finally:
            self.record = None


class _DeferredQuota:
    def __init__(self, issue: TransactionalIssue) -> None:
        self.issue = issue

    def reserve(self, owner: str, upload_id: str, size: int, now: datetime, open_until: datetime) -> None:
        self.issue.pending = (owner, upload_id, size, now, open_until)

    def release(self, owner: str, upload_id: str) -> None:
        self.issue.product.release(owner, upload_id)


class _TransactingClient:
    """UploadStore's client: its PutItem is written with the pending reservation."""

    def __init__(self, issue: TransactionalIssue, client: Any) -> None:
        self.issue = issue
        self.client = client

    def put_item(self, **put: Any) -> None:
        self.issue.put_with_reservation(put)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


class _JoiningClient:
    """OwnerQuota's client: the reservation's UpdateItem (the one call that asks for the old item
    when its condition fails) goes out in one transaction with the record's PutItem, and a
    refusal comes back as UpdateItem would have said it; the rare paths' updates pass through."""

    def __init__(self, issue: TransactionalIssue, client: Any) -> None:
        self.issue = issue
        self.client = client

    def update_item(self, **update: Any) -> Any:
        if "ReturnValuesOnConditionCheckFailure" not in update:
            return self.client.update_item(**update)
        try:
            return self.client.transact_write_items(TransactItems=[{"Update": update}, {"Put": self.issue.record}])
        except self.client.exceptions.TransactionCanceledException as exc:
            reason = (exc.response.get("CancellationReasons") or [{}])[0]
            message = reason.get("Message", "")
            if reason.get("Code") == "ConditionalCheckFailed":
                raise self.client.exceptions.ConditionalCheckFailedException(
                    {
                        "Error": {"Code": "ConditionalCheckFailedException", "Message": message},
                        "Item": reason.get("Item", {}),
                    },
                    "UpdateItem",
                ) from exc
            if reason.get("Code") == "ValidationError":  # the owner's item has no map to set the slot in yet
                raise ClientError({"Error": {"Code": "ValidationException", "Message": message}}, "UpdateItem") from exc
            raise  # the record's own condition, or a conflict: as put_item would

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)
