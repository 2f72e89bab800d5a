"""A deletion beside another deletion, beside the processor finishing an outcome, or after a
failed publish: each event goes out once, in order (the outcome's before ``Upload Deleted``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from directupload import wiring
from directupload.processing.pipeline import ObjectRef
from local.lambda_runtime import LocalContext
from local.retention import TtlSweeper
from tests.integration.conftest import Api, delivered_events, fail_calls, png, upload
from tests.integration.test_read_side import before_call, keys_in, record, removals
from tests.support.processing import process, throttle_the_event
from tests.support.template import ttl_attribute


def kinds(aws: Any) -> list[str]:
    return [e["detail-type"] for e in delivered_events(aws)]


def aged(aws: Any, upload_id: str, minutes: int) -> None:
    """The clock moved on: the outcome's lease lapsed and the deletion's grace passed."""
    past = (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()
    aws.dynamodb.update_item(
        TableName=aws.resources.uploads_table,
        Key={"pk": {"S": f"upload#{upload_id}"}},
        UpdateExpression="SET updated_at = :u, claim_until = :c",
        ExpressionAttributeValues={":u": {"S": past}, ":c": {"S": past}},
    )


def unannounced(aws: Any, api: Api, name: str) -> tuple[dict[str, Any], bytes, str]:
    """A processed image whose Upload Processed did not go out, long enough ago that a DELETE
    announces it itself."""
    data = png(40, 30)
    issued = upload(api, data, name, "image/png", "avatar")
    etag = str(aws.s3.head_object(Bucket=aws.bucket, Key=issued["key"])["ETag"]).strip('"')
    throttle_the_event()
    assert process(aws, issued["key"], len(data), etag=etag)["batchItemFailures"]
    assert record(api, issued["uploadId"])["status"] == "PROCESSED"
    aged(aws, issued["uploadId"], 25)
    return issued, data, etag


def test_two_deletes_at_once_send_one_upload_deleted(aws: Any, api: Api) -> None:
    data = png()
    issued = upload(api, data, "twice.png", "image/png", "avatar")
    process(aws, issued["key"], len(data))
    delivered_events(aws)
    path = f"/uploads/{issued['uploadId']}"
    # a second DELETE (a retry after a timeout, a second tab) while the first is publishing
    second: list[Any] = []
    before_call("events", "PutEvents", lambda: second.append(api.call("DELETE", path)))
    first = api.call("DELETE", path)
    assert first[0] == 200 and second[0][0] == 200
    assert first[1]["status"] == second[0][1]["status"] == "DELETED"
    assert kinds(aws) == ["Upload Deleted"]


def test_an_upload_deleted_while_its_failure_is_announced_is_announced_failed_first(aws: Any, api: Api) -> None:
    data = png()
    issued = upload(api, data, "f.png", "image/png", "avatar")
    path = f"/uploads/{issued['uploadId']}"
    answers: list[Any] = []
    # the owner deletes it the moment it reads FAILED, before Upload Failed is out
    before_call("events", "PutEvents", lambda: answers.append(api.call("DELETE", path)))
    assert wiring.processor().fail(ObjectRef(aws.bucket, issued["key"], len(data)), "boom", by="m0#0005")
    assert answers[0][0] == 409, answers
    assert api.call("DELETE", path)[1]["status"] == "DELETED"
    assert kinds(aws) == ["Upload Failed", "Upload Deleted"]


def test_a_failure_left_unannounced_is_announced_by_its_deletion(aws: Any, api: Api) -> None:
    data = png()
    issued = upload(api, data, "g.png", "image/png", "avatar")
    fail_calls("events", "PutEvents", 3)  # the failure's publish and its retries
    assert wiring.processor().fail(ObjectRef(aws.bucket, issued["key"], len(data)), "boom", by="m0#0005")
    assert kinds(aws) == []
    aged(aws, issued["uploadId"], 20)
    assert api.call("DELETE", f"/uploads/{issued['uploadId']}")[1]["status"] == "DELETED"
    assert kinds(aws) == ["Upload Failed", "Upload Deleted"]


def test_a_delete_beside_a_redelivery_announces_the_owed_outcome_once(aws: Any, api: Api) -> None:
    issued, data, etag = unannounced(aws, api, "race.png")
    # SQS redelivers the notification while the DELETE, which read the record a moment
    # before, is announcing the owed outcome itself
    redelivered: list[Any] = []
    before_call(
        "events",
        "PutEvents",
        lambda: redelivered.append(process(aws, issued["key"], len(data), receive_count=2, etag=etag)),
    )
    assert api.call("DELETE", f"/uploads/{issued['uploadId']}")[1]["status"] == "DELETED"
    assert redelivered[0]["batchItemFailures"], "the redelivery waits for the lease the DELETE holds"
    assert kinds(aws) == ["Upload Processed", "Upload Deleted"]
    # its retry finds nothing owed
    assert process(aws, issued["key"], len(data), receive_count=3, etag=etag) == {"batchItemFailures": []}
    assert kinds(aws) == []


def test_a_delete_while_the_processor_holds_the_lease_waits_for_it(aws: Any, api: Api) -> None:
    issued, data, etag = unannounced(aws, api, "late.png")
    upload_id = issued["uploadId"]
    now = datetime.now(UTC)
    # a redelivery takes the lease (finish_owed's first step) just as the DELETE would announce
    leased = wiring.store().lease_owed(upload_id, by="m0#0002", now=now, until=now + timedelta(minutes=20))
    status, problem, _ = api.call("DELETE", f"/uploads/{upload_id}")
    assert status == 409 and "announced" in problem["detail"]
    assert keys_in(aws, "files/") != []
    # the redelivery announces it, then the DELETE goes through
    ref = ObjectRef(aws.bucket, issued["key"], len(data), etag=etag)
    wiring.processor().outcomes.settle(leased, ref, "m0#0002")
    assert api.call("DELETE", f"/uploads/{upload_id}")[1]["status"] == "DELETED"
    assert kinds(aws) == ["Upload Processed", "Upload Deleted"]


def test_an_upload_deleted_a_tombstone_still_owes_goes_out_when_the_tombstone_expires(aws: Any, api: Api) -> None:
    from handlers import retention  # (its import reads the settings the fixture sets)

    data = png()
    issued = upload(api, data, "owed.png", "image/png", "avatar")
    process(aws, issued["key"], len(data))
    delivered_events(aws)
    fail_calls("events", "PutEvents", 1)  # EventBridge refuses the Upload Deleted once
    assert api.call("DELETE", f"/uploads/{issued['uploadId']}")[0] == 503
    # the client does not retry; a day later TTL removes the tombstone
    sweeper = TtlSweeper(aws.dynamodb, aws.resources.uploads_table, attribute=ttl_attribute())
    assert sweeper.sweep(datetime.now(UTC) + timedelta(days=2)) >= 1
    stream = removals(aws)
    assert retention.lambda_handler(stream, LocalContext("RetentionFunction")) == {"batchItemFailures": []}
    assert kinds(aws) == ["Upload Deleted"]
    # the stream record delivered again sends nothing more
    assert retention.lambda_handler(stream, LocalContext("RetentionFunction")) == {"batchItemFailures": []}
    assert kinds(aws) == []
    assert keys_in(aws) == []
