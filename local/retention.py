"""DynamoDB's TTL and the stream event source, as the RetentionFunction and the PublishFunction
see them on AWS.

The emulator keeps a table's stream but never expires items. Locally:

- ``TtlSweeper`` deletes the items whose ``ttl`` lapsed, as DynamoDB's TTL process does (on
  AWS within days of the time, here every ``interval`` seconds, or at once for any moment
  given: ``POST /local/ttl-sweep {"at": "<ISO time>"}`` plays the clock forward);
- ``StreamPoller`` reads the table's stream and hands the records its function's event source
  mapping lets through (the template's FilterCriteria, ``mapping_of``) in batches to the very
  same handler, retrying a batch from its first reported failure as the mapping does.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from local.lambda_runtime import Function

# tries of a failing batch per poll (with a doubling back-off) before the next poll tries again
ATTEMPTS_PER_POLL = 10


def matches(pattern: Any, value: Any) -> bool:
    """Whether ``value`` (a stream record as Lambda delivers it) matches an event filter
    ``pattern``: the subset the template's FilterCriteria use (nested keys, lists of values,
    ``{"exists": bool}``)."""
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return False
        return all(_field_matches(rule, key in value, value.get(key)) for key, rule in pattern.items())
    return False


def _field_matches(rule: Any, present: bool, value: Any) -> bool:
    if isinstance(rule, dict):
        return present and matches(rule, value)
    for option in rule:
        if isinstance(option, dict) and "exists" in option:
            if bool(option["exists"]) == present:
                return True
        elif present and value == option:
            return True
    return False


def mapping_of(template: dict[str, Any], function: str) -> tuple[list[dict[str, Any]], int, int]:
    """The filter patterns, batch size and MaximumRetryAttempts of ``function``'s DynamoDB stream
    event source in ``template`` (as local/template.py loads it)."""
    import json

    events = template["Resources"][function]["Properties"].get("Events") or {}
    for event in events.values():
        if event.get("Type") == "DynamoDB":
            props = event["Properties"]
            filters = (props.get("FilterCriteria") or {}).get("Filters") or []
            patterns = [json.loads(f["Pattern"]) for f in filters]
            return patterns, int(props.get("BatchSize", 100)), int(props.get("MaximumRetryAttempts", -1))
    raise ValueError(f"{function} has no DynamoDB stream event source in the template")


class TtlSweeper(threading.Thread):
    def __init__(self, ddb: Any, table: str, attribute: str = "ttl", interval: float = 60) -> None:
        super().__init__(name="ttl-sweeper", daemon=True)
        self.ddb = ddb
        self.table = table
        self.attribute = attribute
        self.interval = interval
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                self.sweep(datetime.now(UTC))
            except Exception as exc:  # noqa: BLE001 - keep sweeping through a passing emulator error
                print(f"[ttl] {type(exc).__name__}: {exc}", flush=True)

    def sweep(self, now: datetime) -> int:
        """Delete every item whose TTL is before ``now``; the number deleted."""
        removed = 0
        with self.lock:
            params: dict[str, Any] = {
                "TableName": self.table,
                "FilterExpression": "#ttl < :now",
                "ExpressionAttributeNames": {"#ttl": self.attribute},
                "ExpressionAttributeValues": {":now": {"N": str(int(now.timestamp()))}},
                "ProjectionExpression": "pk, #ttl",
            }
            while True:
                page = self.ddb.scan(**params)
                for item in page.get("Items", []):
                    try:  # as TTL does: only if the item still has the lapsed expiry
                        self.ddb.delete_item(
                            TableName=self.table,
                            Key={"pk": item["pk"]},
                            ConditionExpression="#ttl = :seen",
                            ExpressionAttributeNames={"#ttl": self.attribute},
                            ExpressionAttributeValues={":seen": item[self.attribute]},
                        )
                        removed += 1
                    except self.ddb.exceptions.ConditionalCheckFailedException:
                        pass
                if "LastEvaluatedKey" not in page:
                    return removed
                params["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class StreamPoller(threading.Thread):
    def __init__(
        self,
        streams: Any,
        stream_arn: str,
        function: Function,
        patterns: list[dict[str, Any]],
        batch_size: int,
        max_retries: int = -1,
        poll_seconds: float = 0.2,
        retry_delay: float = 0.2,
    ) -> None:
        super().__init__(name=f"stream-{function.name}", daemon=True)
        self.streams = streams
        self.stream_arn = stream_arn
        self.function = function
        self.patterns = patterns
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.retry_delay = retry_delay  # the first retry's back-off (doubling, at most 5 s)
        self.stopping = threading.Event()
        self.delivered = 0
        self.max_retries = max_retries  # the mapping's MaximumRetryAttempts (-1: no limit)
        self.iterators: dict[str, str] = {}  # shard id -> where the next poll reads
        self.backlog: list[dict[str, Any]] = []  # read, not delivered yet (in order)
        self.retries = 0  # of the batch at the backlog's head

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.poll()
            except Exception as exc:  # noqa: BLE001 - keep polling through a passing emulator error
                print(f"[stream] {type(exc).__name__}: {exc}", flush=True)
            self.stopping.wait(self.poll_seconds)

    def poll(self) -> None:
        """Read every record written to the stream since the last poll (from the oldest at
        first) and deliver the backlog in order, as the mapping does: a batch that keeps
        failing holds the records after it back (the shard waits) until its retries run out
        (``max_retries``; -1: never, as a mapping whose records wait as long as the stream
        keeps them), when it is dropped, as the mapping sends it to its on-failure destination."""
        shards = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id not in self.iterators:
                self.iterators[shard_id] = self.streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            reply = self.streams.get_records(ShardIterator=self.iterators[shard_id], Limit=1000)
            self.iterators[shard_id] = reply["NextShardIterator"]
            records = [self._lambda_record(r) for r in reply.get("Records", [])]
            self.backlog += [r for r in records if not self.patterns or any(matches(p, r) for p in self.patterns)]
        while self.backlog:
            batch = self.backlog[: self.batch_size]
            left = self._deliver(batch)
            if not left:
                self.backlog = self.backlog[len(batch) :]
                continue
            self.backlog = left + self.backlog[len(batch) :]
            if 0 <= self.max_retries < self.retries:
                print(f"[stream] {len(left)} records still failing after {self.retries} retries: dropped", flush=True)
                self.backlog, self.retries = self.backlog[len(left) :], 0
                continue
            return  # the shard waits: the next poll tries again

    def _deliver(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Invoke until no record fails (from the lowest reported failure on), at most
        ``ATTEMPTS_PER_POLL`` times: the records still failing (none: delivered)."""
        for attempt in range(1, ATTEMPTS_PER_POLL + 1):
            reply = self.function.invoke({"Records": records}) or {}
            failed = [f["itemIdentifier"] for f in reply.get("batchItemFailures", [])]
            if not failed:
                self.delivered += len(records)
                self.retries = 0
                return []
            numbers = [r["dynamodb"]["SequenceNumber"] for r in records]
            reported = [numbers.index(f) for f in failed if f in numbers]
            records = records[min(reported) :] if reported else records
            self.retries += 1
            if 0 <= self.max_retries < self.retries:
                return records
            if attempt < ATTEMPTS_PER_POLL:
                time.sleep(min(self.retry_delay * 2**attempt, 5))
        return records

    def _lambda_record(self, record: dict[str, Any]) -> dict[str, Any]:
        """A stream record as Lambda's DynamoDB event source delivers it."""
        dynamodb = dict(record["dynamodb"])
        created = dynamodb.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            dynamodb["ApproximateCreationDateTime"] = created.timestamp()
        return {
            "eventID": record.get("eventID", ""),
            "eventName": record["eventName"],
            "eventVersion": record.get("eventVersion", "1.1"),
            "eventSource": "aws:dynamodb",
            "awsRegion": record.get("awsRegion", "us-east-1"),
            "eventSourceARN": self.stream_arn,
            "dynamodb": dynamodb,
        }
