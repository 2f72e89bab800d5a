"""What the emulator's own patches to moto (local/moto_fixes.py) promise, through real boto3 calls."""

from __future__ import annotations

import uuid
from collections import Counter
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


def test_a_refused_transaction_puts_back_what_its_writes_changed(aws: Any) -> None:
    """moto applies a transaction's writes one by one and undoes them if one is refused: an
    update, a deletion and a new item are undone, and the stream shows none of them."""
    table = aws.env["UPLOADS_TABLE"]
    for pk in ("item#kept", "item#gone"):
        aws.dynamodb.put_item(TableName=table, Item={"pk": {"S": pk}, "v": {"S": "before"}, "n": {"N": "1"}})
    streamed = len(stream_records(aws))

    refused = [
        {
            "Update": {
                "TableName": table,
                "Key": {"pk": {"S": "item#kept"}},
                "UpdateExpression": "SET v = :after REMOVE n",
                "ExpressionAttributeValues": {":after": {"S": "after"}},
            }
        },
        {"Delete": {"TableName": table, "Key": {"pk": {"S": "item#gone"}}}},
        put(aws, "item#new", "never"),
        {
            "ConditionCheck": {
                "TableName": table,
                "Key": {"pk": {"S": "nothing"}},
                "ConditionExpression": "attribute_exists(pk)",
            }
        },
    ]
    with pytest.raises(aws.dynamodb.exceptions.TransactionCanceledException):
        aws.dynamodb.transact_write_items(TransactItems=refused)

    def item(pk: str) -> Any:
        return aws.dynamodb.get_item(TableName=table, Key={"pk": {"S": pk}}, ConsistentRead=True).get("Item")

    assert item("item#kept") == {"pk": {"S": "item#kept"}, "v": {"S": "before"}, "n": {"N": "1"}}
    assert item("item#gone") == {"pk": {"S": "item#gone"}, "v": {"S": "before"}, "n": {"N": "1"}}
    assert item("item#new") is None
    assert len(stream_records(aws)) == streamed


def test_a_stream_reader_never_sees_the_writes_of_a_refused_transaction(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto writes a transaction's items one by one before it finds one refused: a stream read
    in between returned the first write's record, and the reader then skipped the real record
    that took its sequence number after the undoing."""
    import threading
    import time

    from moto.dynamodb.models import DynamoDBBackend

    table = aws.env["UPLOADS_TABLE"]
    streams = aws_client("dynamodbstreams")
    arn = aws.dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="LATEST")["ShardIterator"]

    original = DynamoDBBackend.get_item
    reads = {"nothing": 0}
    written = threading.Event()

    def get_item(self: DynamoDBBackend, table_name: str, key: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if key.get("pk", {}).get("S") == "item#nothing":
            reads["nothing"] += 1
            if reads["nothing"] == 2:  # moto's own check of the refused entry: the Put is written
                written.set()
                time.sleep(0.5)
        return original(self, table_name, key, *args, **kwargs)

    monkeypatch.setattr(DynamoDBBackend, "get_item", get_item)
    refused = {
        "ConditionCheck": {
            "TableName": table,
            "Key": {"pk": {"S": "item#nothing"}},
            "ConditionExpression": "attribute_exists(pk)",
        }
    }
    failed: list[BaseException] = []

    def transaction() -> None:
        try:
            aws_client("dynamodb").transact_write_items(TransactItems=[put(aws, "item#phantom", "never"), refused])
        except BaseException as exc:  # the refusal is expected: kept to check
            failed.append(exc)

    worker = threading.Thread(target=transaction)
    worker.start()
    assert written.wait(10)
    seen = streams.get_records(ShardIterator=iterator, Limit=100)  # lands inside the transaction
    worker.join(10)
    assert failed and "TransactionCanceled" in str(failed[0])
    aws.dynamodb.put_item(TableName=table, Item={"pk": {"S": "item#real"}, "v": {"S": "after"}})
    later = streams.get_records(ShardIterator=seen["NextShardIterator"], Limit=100)

    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in seen["Records"] + later["Records"]] == ["item#real"]


def test_a_transaction_copies_no_table(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A transaction costs what its items cost, not what the table holds (moto deep-copied every
    table it touched: 75 ms a transaction at 3,000 records)."""
    from moto.dynamodb.models.table import Table

    def refuse(self: Table, memo: Any) -> Table:
        raise AssertionError(f"the table {self.name} was copied")

    monkeypatch.setattr(Table, "__deepcopy__", refuse, raising=False)
    table = aws.env["UPLOADS_TABLE"]
    aws.dynamodb.transact_write_items(TransactItems=[put(aws, "item#a", "one"), put(aws, "item#b", "two")])
    with pytest.raises(aws.dynamodb.exceptions.TransactionCanceledException):
        aws.dynamodb.transact_write_items(
            TransactItems=[
                put(aws, "item#c", "never"),
                {"Put": {**put(aws, "item#a", "again")["Put"], "ConditionExpression": "attribute_not_exists(pk)"}},
            ]
        )
    assert "Item" not in aws.dynamodb.get_item(TableName=table, Key={"pk": {"S": "item#c"}})


def test_the_server_finds_a_hosts_backend_once(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto listed its package directory on every request to find the backend; once a service
    has been called, its requests no longer do."""
    from moto import backends

    table = aws.env["UPLOADS_TABLE"]
    aws.dynamodb.describe_table(TableName=table)
    aws.s3.list_objects_v2(Bucket=aws.bucket, MaxKeys=1)

    def listed() -> Any:
        raise AssertionError("moto listed its modules again")

    monkeypatch.setattr(backends, "list_of_moto_modules", listed)
    assert aws.dynamodb.describe_table(TableName=table)["Table"]["TableName"] == table
    assert aws.s3.list_objects_v2(Bucket=aws.bucket, MaxKeys=1)["Name"] == aws.bucket


# --- SQS: each call that changes a queue is one step -----------------------------------------


def slowed(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, seconds: float = 0.3) -> None:
    """Make ``owner.name`` (a moto internal) take ``seconds`` first: a thread switch at the worst moment."""
    import time

    original = getattr(owner, name)

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(seconds)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, slow)


def test_a_send_does_not_walk_the_messages_already_queued(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto counted every message of a queue on each send to it (its attributes, for one flag)."""
    from moto.sqs.models import Message

    url = aws.sqs.create_queue(QueueName=f"undrained-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    for n in range(3):
        aws.sqs.send_message(QueueUrl=url, MessageBody=f"queued {n}")

    def walked(self: Message) -> bool:
        raise AssertionError("a send looked at the messages already queued")

    with monkeypatch.context() as patched:
        patched.setattr(Message, "delayed", property(walked))
        patched.setattr(Message, "visible", property(walked))
        aws.sqs.send_message(QueueUrl=url, MessageBody="one more")

    counts = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert counts["Attributes"]["ApproximateNumberOfMessages"] == "4"  # counting still counts


def test_a_message_sent_while_another_is_deleted_is_kept(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    from moto.sqs.models import Queue

    url = aws.sqs.create_queue(QueueName="emulator-delete-race")["QueueUrl"]
    aws.sqs.send_message(QueueUrl=url, MessageBody="handled")
    handled = aws.sqs.receive_message(QueueUrl=url)["Messages"][0]
    # the deletion stalls just before it puts back the queue's list of messages
    prop = Queue.__dict__["_messages"]

    def stall(queue: Queue, messages: Any) -> None:
        time.sleep(0.4)
        prop.fset(queue, messages)

    monkeypatch.setattr(Queue, "_messages", property(prop.fget, stall))

    deleting = threading.Thread(
        target=aws.sqs.delete_message, kwargs={"QueueUrl": url, "ReceiptHandle": handled["ReceiptHandle"]}
    )
    deleting.start()
    time.sleep(0.1)  # the deletion is under way
    aws.sqs.send_message(QueueUrl=url, MessageBody="new")  # an S3 notification, say
    deleting.join()
    monkeypatch.setattr(Queue, "_messages", prop)

    bodies = [m["Body"] for m in aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]]
    assert bodies == ["new"]


def test_two_receives_at_once_never_hand_out_the_same_message(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from moto.sqs.models import Message

    url = aws.sqs.create_queue(QueueName="emulator-receive-race")["QueueUrl"]
    aws.sqs.send_message(QueueUrl=url, MessageBody="one notification")
    # the first receive stalls after it saw the message visible, before it marks it received
    slowed(monkeypatch, Message, "mark_received")

    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(lambda _: aws.sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0), range(2)))

    got = [m["Body"] for reply in replies for m in reply.get("Messages", [])]
    assert got == ["one notification"]  # once: a second receive waits for the first, then sees it in flight


# --- EventBridge -------------------------------------------------------------------------------


def test_a_rule_delivers_each_event_without_compiling_its_input_paths_again(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto compiled its eight input-path expressions (parser and all) for every event and target;
    once they have been compiled, an event is delivered whole without compiling them again."""
    import json

    from jsonpath_ng.ext.parser import ExtendedJsonPathParser

    events, sqs = aws_client("events"), aws.sqs
    name = f"emulator-paths-{uuid.uuid4().hex[:10]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.create_event_bus(Name=name)
    events.put_rule(Name=name, EventBusName=name, EventPattern=json.dumps({"source": ["emulator.test"]}))
    events.put_targets(Rule=name, EventBusName=name, Targets=[{"Id": "queue", "Arn": arn}])

    def put(n: int) -> None:
        entry = {"Source": "emulator.test", "DetailType": "Step", "Detail": json.dumps({"n": n}), "EventBusName": name}
        assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0

    put(1)

    def compiled(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an input path was compiled again")

    with monkeypatch.context() as patched:
        patched.setattr(ExtendedJsonPathParser, "parse", compiled)
        put(2)

    got: list[dict[str, Any]] = []
    while len(got) < 2 and (reply := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)):
        got += [json.loads(m["Body"]) for m in reply.get("Messages", [])]
        if not reply.get("Messages"):
            break
    assert sorted((e["detail-type"], e["detail"]["n"], e["source"]) for e in got) == [
        ("Step", 1, "emulator.test"),
        ("Step", 2, "emulator.test"),
    ]


def test_dynamodb_answers_written_directly_are_the_ones_moto_would_have_sent(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every item operation, with every kind of attribute value, answered and checked against
    # moto's own serialiser (local/moto_fixes.py CHECK_JSON)
    from local import moto_fixes

    monkeypatch.setattr(moto_fixes, "CHECK_JSON", True)
    monkeypatch.setattr(moto_fixes, "JSON_MISMATCHES", [])
    monkeypatch.setattr(moto_fixes, "JSON_CHECKED", Counter())
    ddb, table = aws.dynamodb, aws.env["UPLOADS_TABLE"]
    item = {
        "pk": {"S": "item#kinds"},
        "n": {"N": "12.50"},
        "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2"]},
        "m": {"M": {"nested": {"L": [{"S": "x"}, {"BOOL": True}, {"NULL": True}, {"N": "-3"}]}}},
        "text": {"S": 'ünïcode \u2028 "quoted" \\ slash'},
    }
    ddb.put_item(TableName=table, Item=item)
    assert ddb.get_item(TableName=table, Key={"pk": item["pk"]}, ConsistentRead=True)["Item"] == item
    updated = ddb.update_item(
        TableName=table,
        Key={"pk": item["pk"]},
        UpdateExpression="SET #n = #n + :one, #m.#new = :v REMOVE ss",
        ExpressionAttributeNames={"#n": "n", "#m": "m", "#new": "added"},
        ExpressionAttributeValues={":one": {"N": "1"}, ":v": {"S": "new"}},
        ReturnValues="ALL_NEW",
        ReturnConsumedCapacity="TOTAL",
    )
    assert float(updated["Attributes"]["n"]["N"]) == 13.5 and "ss" not in updated["Attributes"]
    assert updated["ConsumedCapacity"]["TableName"] == table
    old = ddb.update_item(
        TableName=table,
        Key={"pk": item["pk"]},
        UpdateExpression="SET #n = :zero",
        ExpressionAttributeNames={"#n": "n"},
        ExpressionAttributeValues={":zero": {"N": "0"}},
        ReturnValues="UPDATED_OLD",
    )
    assert list(old["Attributes"]) == ["n"] and float(old["Attributes"]["n"]["N"]) == 13.5
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException) as refused:  # an error: moto's own way
        ddb.update_item(
            TableName=table,
            Key={"pk": item["pk"]},
            UpdateExpression="SET #n = :zero",
            ConditionExpression="attribute_not_exists(pk)",
            ExpressionAttributeNames={"#n": "n"},
            ExpressionAttributeValues={":zero": {"N": "0"}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    assert refused.value.response["Item"]["n"] == {"N": "0"}
    binary = {
        "pk": {"S": "item#binary"},
        "b": {"B": b"\x00\xff"},
        "bs": {"BS": [b"\x01"]},
        "nested": {"M": {"inner": {"L": [{"B": b"\x02"}]}}},
    }
    ddb.put_item(TableName=table, Item=binary)  # binary values: moto's own way
    assert ddb.get_item(TableName=table, Key={"pk": binary["pk"]})["Item"] == binary
    for n in range(5):
        ddb.put_item(TableName=table, Item={"pk": {"S": f"item#{n}"}, "v": {"N": str(n)}})
    page = ddb.query(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "item#3"}},
        ReturnConsumedCapacity="TOTAL",
    )
    assert page["Items"] == [{"pk": {"S": "item#3"}, "v": {"N": "3"}}] and page["Count"] == 1
    scanned = ddb.scan(TableName=table, Limit=2)
    assert len(scanned["Items"]) == 2 and "LastEvaluatedKey" in scanned
    got = ddb.batch_get_item(RequestItems={table: {"Keys": [{"pk": {"S": f"item#{n}"}} for n in range(3)]}})
    assert sorted(i["v"]["N"] for i in got["Responses"][table]) == ["0", "1", "2"]
    ddb.batch_write_item(RequestItems={table: [{"DeleteRequest": {"Key": {"pk": {"S": "item#4"}}}}]})
    both = ddb.transact_get_items(TransactItems=[{"Get": {"TableName": table, "Key": {"pk": {"S": "item#1"}}}}])
    assert both["Responses"] == [{"Item": {"pk": {"S": "item#1"}, "v": {"N": "1"}}}]
    ddb.transact_write_items(TransactItems=[put(aws, "item#t", "one")])
    gone = ddb.delete_item(TableName=table, Key={"pk": {"S": "item#t"}}, ReturnValues="ALL_OLD")
    assert gone["Attributes"] == {"pk": {"S": "item#t"}, "v": {"S": "one"}}

    assert moto_fixes.JSON_MISMATCHES == []
    # each operation the emulator answers directly was answered so (the binary item's answers and
    # the refusal went moto's way) and found equal to moto's own
    assert set(moto_fixes.JSON_CHECKED) == moto_fixes.ITEM_OPERATIONS


def test_a_receive_reads_the_clock_once_however_many_messages_wait_delayed(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto asked each queued message whether it was visible and delayed, reading the clock for each."""
    from moto.sqs.models import Message

    url = aws.sqs.create_queue(QueueName=f"delayed-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    for n in range(5):
        aws.sqs.send_message(QueueUrl=url, MessageBody=f"later {n}", DelaySeconds=900)
    aws.sqs.send_message(QueueUrl=url, MessageBody="now")

    def asked(self: Message) -> bool:
        raise AssertionError("a receive asked a queued message whether it is visible or delayed")

    with monkeypatch.context() as patched:
        patched.setattr(Message, "delayed", property(asked))
        got = aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30)["Messages"]
        # the one that is due, once; the delayed ones stay delayed, the received one in flight
        assert [m["Body"] for m in got] == ["now"]
        assert "Messages" not in aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    counts = aws.sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    assert counts == {"ApproximateNumberOfMessagesDelayed": "5", "ApproximateNumberOfMessagesNotVisible": "1"}
