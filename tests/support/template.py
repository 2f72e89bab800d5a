"""What the tests need to know of template.yaml's queues, tables and functions, read from it
(local/template.py resolves it as the local stack does): a change of the template cannot leave a
test asserting a stale copy."""

from __future__ import annotations

from functools import cache
from typing import Any

from local.template import LocalTemplate, load


@cache
def default_template() -> LocalTemplate:
    """The template with its parameters' defaults, as the ``aws`` fixture provisions it."""
    return LocalTemplate(load(), parameters={"Stage": "dev"})


def max_receive_count(tpl: LocalTemplate | None = None, queue: str = "IngestQueue") -> int:
    """Deliveries of one message of ``queue`` before it moves to its dead-letter queue."""
    return int((tpl or default_template()).properties(queue)["RedrivePolicy"]["maxReceiveCount"])


def function_timeout(function: str, tpl: LocalTemplate | None = None) -> int:
    """The function's Timeout in seconds (its own, or the Globals')."""
    tpl = tpl or default_template()
    timeout = tpl.properties(function).get("Timeout", tpl.globals("Timeout"))
    return int(timeout)


def _uploads_table() -> dict[str, Any]:
    return default_template().properties("UploadsTable")


def partition_key() -> str:
    """The UploadsTable's partition key attribute."""
    (name,) = [k["AttributeName"] for k in _uploads_table()["KeySchema"] if k["KeyType"] == "HASH"]
    return str(name)


def ttl_attribute() -> str:
    """The UploadsTable attribute DynamoDB's TTL expires items by."""
    return str(_uploads_table()["TimeToLiveSpecification"]["AttributeName"])


def record_key(upload_id: str) -> dict[str, Any]:
    """The UploadsTable key of an upload's record (``Key=`` of GetItem and UpdateItem)."""
    from directupload.store import upload_pk

    return {partition_key(): {"S": upload_pk(upload_id)}}
