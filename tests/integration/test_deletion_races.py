"""A deletion beside another deletion, right after an outcome, or while EventBridge refuses
events: each event goes out once, in the order of the upload's changes (the outcome's before
``Upload Deleted``), because each is sent from the table's stream (handlers/publisher.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from directupload import wiring
from directupload.processing.pipeline import ObjectRef
from local.lambda_runtime import LocalContext
from local.retention import TtlSweeper
from tests.integration.conftest import Api, delivered_events, fail_calls, png, upload
from tests.integration.test_read_side import before_call, keys_in, removals
from tests.support.processing import process
from tests.support.template import ttl_attribute


def kinds(aws: Any) -> list[str]:
    return [e["detail-type"] for e in delivered_events(aws)]


def processed(aws: Any, api: Api, name: str) -> dict[str, Any]:
    """A processed image whose event is not published yet (the stream holds it)."""
    data = png(40, 30)
    issued = upload(api, data, name, "image/png", "avatar")
    assert process(aws, issued["key"], len(data)) == {"batchItemFailures": []}
    return issued


def test_two_deletes_at_once_send_one_upload_deleted(aws: Any, api: Api) -> None:
    issued = processed(aws, api, "twice.png")
    path = f"/uploads/{issued['uploadId']}"
    # a second DELETE (a retry after a timeout, a second tab) while the first removes the objects
    second: list[Any] = []
    before_call("s3", "DeleteObjects", lambda: second.append(api.call("DELETE", path)))
    first = api.call("DELETE", path)
    assert first[0] == 200 and second[0][0] == 200
    assert first[1]["status"] == second[0][1]["status"] == "DELETED"
    assert kinds(aws) == ["Upload Processed", "Upload Deleted"]
    assert keys_in(aws) == []


def test_an_upload_deleted_the_moment_it_failed_is_announced_failed_first(aws: Any, api: Api) -> None:
    data = png()
    issued = upload(api, data, "f.png", "image/png", "avatar")
    assert wiring.processor().fail(ObjectRef(aws.bucket, issued["key"], len(data)), "boom", by="m0#0005")
    # the owner deletes it the moment it reads FAILED, before anything was published
    assert api.call("DELETE", f"/uploads/{issued['uploadId']}")[1]["status"] == "DELETED"
    assert kinds(aws) == ["Upload Failed", "Upload Deleted"]


def test_events_eventbridge_refuses_wait_and_go_out_in_order(aws: Any, api: Api) -> None:
    issued = processed(aws, api, "refused.png")
    assert api.call("DELETE", f"/uploads/{issued['uploadId']}")[1]["status"] == "DELETED"
    refused = fail_calls("events", "PutEvents", 2)  # the first two tries of the batch
    assert kinds(aws) == ["Upload Processed", "Upload Deleted"]
    assert refused == [0]
    assert kinds(aws) == []  # and once


def test_a_redelivery_after_the_deletion_changes_nothing(aws: Any, api: Api) -> None:
    data = png(40, 30)
    issued = upload(api, data, "late.png", "image/png", "avatar")
    etag = str(aws.s3.head_object(Bucket=aws.bucket, Key=issued["key"])["ETag"]).strip('"')
    assert process(aws, issued["key"], len(data), etag=etag) == {"batchItemFailures": []}
    assert api.call("DELETE", f"/uploads/{issued['uploadId']}")[1]["status"] == "DELETED"
    assert process(aws, issued["key"], len(data), receive_count=2, etag=etag) == {"batchItemFailures": []}
    assert kinds(aws) == ["Upload Processed", "Upload Deleted"]
    assert keys_in(aws) == []


def test_a_delete_that_stopped_half_way_is_finished_by_the_next_with_one_event(aws: Any, api: Api) -> None:
    issued = processed(aws, api, "half.png")
    path = f"/uploads/{issued['uploadId']}"
    fail_calls("s3", "DeleteObjects", 1)  # S3 throttles the objects' removal (botocore gave up)
    status, problem, _ = api.call("DELETE", path)
    assert status == 503, problem
    assert api.call("GET", path)[1]["status"] == "DELETING"  # no download is signed meanwhile
    assert api.call("DELETE", path)[1]["status"] == "DELETED"
    assert kinds(aws) == ["Upload Processed", "Upload Deleted"]
    assert keys_in(aws) == []


def test_a_processed_upload_removed_by_retention_is_announced_once(aws: Any, api: Api) -> None:
    from handlers import retention  # (its import reads the settings the fixture sets)

    issued = processed(aws, api, "kept.png")
    assert kinds(aws) == ["Upload Processed"]
    # its record's TTL lapses (a profile's retainDays): TTL removes it
    sweeper = TtlSweeper(aws.dynamodb, aws.resources.uploads_table, attribute=ttl_attribute())
    aws.dynamodb.update_item(
        TableName=aws.resources.uploads_table,
        Key={"pk": {"S": f"upload#{issued['uploadId']}"}},
        UpdateExpression="SET #t = :t",
        ExpressionAttributeNames={"#t": ttl_attribute()},
        ExpressionAttributeValues={":t": {"N": str(int((datetime.now(UTC) - timedelta(days=1)).timestamp()))}},
    )
    assert sweeper.sweep(datetime.now(UTC)) >= 1
    stream = removals(aws)
    assert retention.lambda_handler(stream, LocalContext("RetentionFunction")) == {"batchItemFailures": []}
    # the stream record delivered again puts no second tombstone
    assert retention.lambda_handler(stream, LocalContext("RetentionFunction")) == {"batchItemFailures": []}
    events = delivered_events(aws)
    assert [e["detail-type"] for e in events] == ["Upload Deleted"]
    assert events[0]["detail"]["reason"] == "retention"
    assert keys_in(aws) == []
    assert api.call("GET", f"/uploads/{issued['uploadId']}")[1]["status"] == "DELETED"
