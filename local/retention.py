"""DynamoDB's TTL and the stream event source, as the RetentionFunction sees them on AWS.

The emulator keeps a table's stream but never expires items. Locally:

- ``TtlSweeper`` deletes the items whose ``ttl`` lapsed, as DynamoDB's TTL process does (on
  AWS within days of the time, here every ``interval`` seconds, or at once for any moment
  given: ``POST /local/ttl-sweep {"at": "<ISO time>"}`` plays the clock forward);
- ``StreamPoller`` reads the table's stream and hands the REMOVE records (the template's
  FilterCriteria) in batches to the very same RetentionFunction handler, retrying a batch's
  reported failures as the event source mapping does.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from local.lambda_runtime import Function

BATCH_SIZE = 25
MAX_ATTEMPTS = 10


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
    def __init__(self, streams: Any, stream_arn: str, function: Function, poll_seconds: float = 0.2) -> None:
        super().__init__(name=f"stream-{function.name}", daemon=True)
        self.streams = streams
        self.stream_arn = stream_arn
        self.function = function
        self.poll_seconds = poll_seconds
        self.stopping = threading.Event()
        self.delivered = 0

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        iterators: dict[str, str] = {}
        while not self.stopping.is_set():
            try:
                shards = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
                for shard in shards:
                    shard_id = shard["ShardId"]
                    if shard_id not in iterators:
                        iterators[shard_id] = self.streams.get_shard_iterator(
                            StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                        )["ShardIterator"]
                    reply = self.streams.get_records(ShardIterator=iterators[shard_id], Limit=1000)
                    iterators[shard_id] = reply["NextShardIterator"]
                    removed = [r for r in reply.get("Records", []) if r.get("eventName") == "REMOVE"]
                    for start in range(0, len(removed), BATCH_SIZE):
                        self._deliver(removed[start : start + BATCH_SIZE])
            except Exception as exc:  # noqa: BLE001 - keep polling through a passing emulator error
                print(f"[stream] {type(exc).__name__}: {exc}", flush=True)
            self.stopping.wait(self.poll_seconds)

    def _deliver(self, records: list[dict[str, Any]]) -> None:
        """Invoke until no record fails (from the first reported failure on), as the mapping does."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            event = {"Records": [self._lambda_record(r) for r in records]}
            reply = self.function.invoke(event) or {}
            failed = [f["itemIdentifier"] for f in reply.get("batchItemFailures", [])]
            if not failed:
                self.delivered += len(records)
                return
            numbers = [r["dynamodb"]["SequenceNumber"] for r in records]
            records = records[numbers.index(failed[0]) :] if failed[0] in numbers else records
            time.sleep(min(0.2 * 2**attempt, 5))
        print(f"[stream] {len(records)} records still failing after {MAX_ATTEMPTS} attempts: dropped", flush=True)

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
