"""What the emulator's own patches to moto (local/moto_fixes.py) promise, through real boto3 calls."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import aws_client


def stream_records(aws: Any) -> list[dict[str, Any]]:
    streams = aws_client("dynamodbstreams")
    arn = aws.dynamodb.describe_table(TableName=aws.env["UPLOADS_TABLE"])["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    return list(streams.get_records(ShardIterator=iterator["ShardIterator"], Limit=1000)["Records"])


def put(aws: Any, pk: str, value: str) -> dict[str, Any]:
    return {"Put": {"TableName": aws.env["UPLOADS_TABLE"], "Item": {"pk": {"S": pk}, "v": {"S": value}}}}


def test_a_transaction_on_a_streamed_table_keeps_its_stream_and_a_refused_one_changes_nothing(aws: Any) -> None:
    table = aws.env["UPLOADS_TABLE"]
    for n in range(30):  # some stream history before the transactions
        aws.dynamodb.put_item(TableName=table, Item={"pk": {"S": f"item#{n}"}, "v": {"S": "before"}})
    assert len(stream_records(aws)) == 30

    aws.dynamodb.transact_write_items(TransactItems=[put(aws, "item#a", "one"), put(aws, "item#b", "two")])
    records = stream_records(aws)
    assert len(records) == 32
    assert [r["eventName"] for r in records[-2:]] == ["INSERT", "INSERT"]

    refused = [
        put(aws, "item#c", "never"),
        {
            "ConditionCheck": {
                "TableName": table,
                "Key": {"pk": {"S": "item#0"}},
                "ConditionExpression": "v = :other",
                "ExpressionAttributeValues": {":other": {"S": "not what it holds"}},
            }
        },
    ]
    with pytest.raises(aws.dynamodb.exceptions.TransactionCanceledException):
        aws.dynamodb.transact_write_items(TransactItems=refused)
    assert "Item" not in aws.dynamodb.get_item(TableName=table, Key={"pk": {"S": "item#c"}})
    assert len(stream_records(aws)) == 32  # the refused transaction left no stream record

    aws.dynamodb.put_item(TableName=table, Item={"pk": {"S": "item#d"}, "v": {"S": "after"}})
    assert len(stream_records(aws)) == 33  # the restored table still streams to the same shard


def test_a_reader_of_the_stream_still_sees_what_follows_a_refused_transaction(aws: Any) -> None:
    # the RetentionFunction's event source reads on from the iterator it holds, as on AWS
    table = aws.env["UPLOADS_TABLE"]
    streams = aws_client("dynamodbstreams")
    arn = aws.dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="LATEST")["ShardIterator"]

    refused = {
        "ConditionCheck": {
            "TableName": table,
            "Key": {"pk": {"S": "nothing"}},
            "ConditionExpression": "attribute_exists(pk)",
        }
    }
    with pytest.raises(aws.dynamodb.exceptions.TransactionCanceledException):
        aws.dynamodb.transact_write_items(TransactItems=[put(aws, "item#x", "never"), refused])
    aws.dynamodb.put_item(TableName=table, Item={"pk": {"S": "item#y"}, "v": {"S": "after"}})

    records = streams.get_records(ShardIterator=iterator, Limit=100)["Records"]
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in records] == ["item#y"]
