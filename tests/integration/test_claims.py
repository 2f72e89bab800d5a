"""One delivery at a time holds an upload (store.py's claim, decision 0006): what happens when
deliveries meet. SQS may deliver a copy of a message beside the first (the same message id), S3
a twin of a notification (another message); a write may be applied while its reply is lost; a
transaction at issue may conflict with another on the same owner's item."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.conftest import Api, delivered_events, fail_calls, png, post_to_s3, upload
from tests.support.processing import current_etag, process
from tests.support.template import max_receive_count, record_key

pytestmark = pytest.mark.usefixtures("unscanned")
HOLDER = "m0#0001"  # the first receive of message m0, as the processor handler names it


def ref_of(aws: Any, issued: dict[str, Any], size: int) -> Any:
    from directupload.processing.pipeline import ObjectRef

    etag = current_etag(aws, issued["key"])
    return ObjectRef(bucket=aws.bucket, key=issued["key"], size=size, etag=etag, sequencer="0055AED6DCD90281E5")


def executable(size: int) -> bytes:
    """``size`` bytes that sniff as a Windows executable: what an image profile rejects."""
    return (b"MZ\x90\x00" + b"\x00" * size)[:size]


def item(aws: Any, upload_id: str) -> dict[str, Any]:
    return dict(aws.dynamodb.get_item(TableName=aws.resources.uploads_table, Key=record_key(upload_id))["Item"])


def test_a_copy_of_the_message_beside_the_first_waits_instead_of_processing_again(aws: Any, api: Api) -> None:
    from directupload import aws as clients
    from directupload import wiring
    from directupload.processing.pipeline import ClaimHeldError

    data = png()
    issued = upload(api, data, "a.png", "image/png", "avatar")
    ref = ref_of(aws, issued, len(data))
    copy: dict[str, Any] = {}

    def copy_arrives(**_: Any) -> None:  # while the first promotes, the copy (same id, same receive) runs
        if not copy:
            try:
                copy["outcome"] = wiring.processor().process(ref, by=HOLDER)
            except ClaimHeldError as exc:
                copy["outcome"] = exc

    clients.client("s3").meta.events.register("before-call.s3.CopyObject", copy_arrives)
    assert wiring.processor().process(ref, by=HOLDER) == "processed"
    assert isinstance(copy["outcome"], ClaimHeldError)
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Processed"]


def test_a_copy_that_fails_beside_the_first_never_removes_what_the_first_verified(aws: Any, api: Api) -> None:
    from botocore.awsrequest import AWSResponse

    from directupload import aws as clients
    from directupload import wiring
    from directupload.processing.pipeline import ClaimHeldError

    data = png(400, 300)
    issued = upload(api, data, "a.png", "image/png", "avatar")
    ref = ref_of(aws, issued, len(data))
    copy: dict[str, Any] = {}

    def copy_runs_then_this_fails(**_: Any) -> Any:
        if copy:
            return None
        try:
            copy["outcome"] = wiring.processor().process(ref, by=HOLDER)
        except ClaimHeldError as exc:
            copy["outcome"] = exc
        parsed = {"Error": {"Code": "SlowDown", "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": 503}}
        return AWSResponse("", 503, {}, None), parsed

    clients.client("s3").meta.events.register_first("before-call.s3.CopyObject", copy_runs_then_this_fails)
    with pytest.raises(Exception, match="SlowDown"):
        wiring.processor().process(ref, by=HOLDER)
    assert isinstance(copy["outcome"], ClaimHeldError)  # the copy never ran beside it

    # the message's next receive reaches the outcome, and everything the record names is there
    assert wiring.processor().process(ref, by="m0#0002") == "processed"
    record = wiring.store().get(issued["uploadId"])
    assert record is not None and record.status.value == "PROCESSED" and record.variants
    for key in [record.file_key, *(v.key for v in record.variants.values())]:
        aws.s3.head_object(Bucket=aws.bucket, Key=key)


def sent_image(aws: Any, api: Api) -> tuple[bytes, dict[str, Any], str]:
    """An image sent to S3 and not processed yet: its bytes, the issue's reply, its ETag."""
    data = png()
    issued = upload(api, data, "a.png", "image/png", "avatar")
    etag = current_etag(aws, issued["key"])
    assert etag is not None
    return data, issued, etag


def held_upload(aws: Any, api: Api, holder: str) -> tuple[bytes, dict[str, Any], str]:
    """An image sent, whose staging version another delivery (``holder``) is working on right now."""
    from directupload import wiring

    data, issued, etag = sent_image(aws, api)
    assert etag is not None
    now = datetime.now(UTC)
    wiring.store().claim_arrival(
        issued["uploadId"], issued["key"], etag, by=holder, now=now, until=now + timedelta(minutes=20)
    )
    return data, issued, etag


def test_a_twin_delivery_waits_while_another_attempt_holds_the_upload(aws: Any, api: Api) -> None:
    from directupload import wiring

    data, issued, etag = held_upload(aws, api, "other#0001")

    # When a twin of its notification (S3 delivers at least once: another message) arrives
    left = fail_calls("s3", "GetObject", 1)
    reply = process(aws, issued["key"], len(data), etag=etag)

    # Then it neither reads the object nor records anything: it is retried later
    assert reply == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert left == [1]
    held = item(aws, issued["uploadId"])
    assert held["status"] == {"S": "UPLOADED"} and held["claim_by"] == {"S": "other#0001"}
    assert delivered_events(aws) == []
    left[0] = 0

    # and once the holder is gone (it gave the claim up), the retry reaches the one outcome
    wiring.store().release(issued["uploadId"], etag, "other#0001")
    assert process(aws, issued["key"], len(data), etag=etag, receive_count=2) == {"batchItemFailures": []}
    assert item(aws, issued["uploadId"])["status"] == {"S": "PROCESSED"}
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Processed"]


def test_a_twin_out_of_retries_is_left_to_the_delivery_holding_its_version(aws: Any, api: Api) -> None:
    # a long attempt (say, a 5 GiB copy) holds the upload
    data, issued, etag = held_upload(aws, api, "h0#0001")

    # a twin of its notification on its last receive: redundant, the holder's own message settles it
    reply = process(aws, issued["key"], len(data), etag=etag, id_prefix="twin", receive_count=max_receive_count())
    assert reply == {"batchItemFailures": []}  # done with: not dead-lettered for nothing
    assert item(aws, issued["uploadId"])["status"] == {"S": "UPLOADED"}
    assert delivered_events(aws) == []

    assert process(aws, issued["key"], len(data), etag=etag, id_prefix="h", receive_count=2) == {
        "batchItemFailures": []
    }
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Processed"]


def test_a_copy_of_the_holders_own_message_on_its_last_receive_leaves_the_message_to_the_holder(
    aws: Any, api: Api
) -> None:
    # SQS handed the last receive of message h0 out twice: one copy holds the upload
    last = max_receive_count()
    data, issued, etag = held_upload(aws, api, f"h0#{last:04d}")

    # the other copy neither fails the upload over its twin's live attempt nor takes the message
    # from it (done with, it would be deleted under the holder)
    reply = process(aws, issued["key"], len(data), etag=etag, id_prefix="h", receive_count=last)
    assert reply["batchItemFailures"]
    record = item(aws, issued["uploadId"])
    assert record["status"] == {"S": "UPLOADED"}
    assert record["claim_by"] == {"S": f"h0#{last:04d}"}
    assert delivered_events(aws) == []


def test_a_notification_of_another_version_out_of_retries_never_fails_an_upload_another_delivery_holds(
    aws: Any, api: Api
) -> None:
    data, issued, _ = held_upload(aws, api, "h0#0001")

    # bytes sent again (another ETag) while the first version is verified: its own notification,
    # on its last receive, goes to the dead-letter queue (a redrive decides it) and fails nothing
    other = "0" * 32
    reply = process(aws, issued["key"], len(data), etag=other, id_prefix="v2", receive_count=max_receive_count())
    assert reply["batchItemFailures"]
    assert item(aws, issued["uploadId"])["status"] == {"S": "UPLOADED"}
    assert delivered_events(aws) == []


def test_an_outcome_written_whose_reply_was_lost_is_still_announced(aws: Any, api: Api) -> None:
    import requests
    from botocore.awsrequest import AWSResponse

    from directupload import aws as clients

    data, issued, etag = sent_image(aws, api)
    lost = [1]

    class Raw:
        def __init__(self, body: bytes) -> None:
            self.body = body

        def stream(self, **_: Any) -> Any:
            yield self.body

    def apply_then_lose_the_reply(request: Any, **_: Any) -> Any:
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
        if lost[0] and "pending_event" in body:
            lost[0] = 0
            requests.post(request.url, headers=dict(request.headers), data=request.body, timeout=30)
            return AWSResponse(request.url, 500, {}, Raw(b'{"__type":"InternalServerError","message":"lost"}'))
        return None

    clients.client("dynamodb").meta.events.register("before-send.dynamodb.UpdateItem", apply_then_lose_the_reply)
    assert process(aws, issued["key"], len(data), etag=etag) == {"batchItemFailures": []}
    assert lost == [0]  # the outcome's write was applied and its reply lost (botocore retried it: refused)
    written = item(aws, issued["uploadId"])
    assert written["status"] == {"S": "PROCESSED"} and "claim_by" not in written
    assert current_etag(aws, issued["key"]) is None, "the staging copy was removed"
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Processed"]


def test_a_conflicting_issue_whose_record_cannot_be_written_gives_its_quota_back(aws: Any, api: Api) -> None:
    from botocore.awsrequest import AWSResponse

    from directupload import aws as clients

    body = {"profile": "file", "filename": "a.txt", "contentType": "text/plain", "size": 10}
    assert api.call("POST", "/uploads", body)[0] == 201  # the owner's item exists
    conflicts = [1]

    def conflict(**_: Any) -> Any:  # another transaction on the owner's item was under way
        if conflicts[0]:
            conflicts[0] = 0
            parsed = {
                "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                "CancellationReasons": [{"Code": "TransactionConflict"}, {"Code": "None"}],
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }
            return AWSResponse("", 400, {}, None), parsed
        return None

    clients.client("dynamodb").meta.events.register_first("before-call.dynamodb.TransactWriteItems", conflict)
    fail_calls("dynamodb", "PutItem", 1)  # the record's write, one after the other, is throttled
    status, _, _ = api.call("POST", "/uploads", {**body, "filename": "b.txt", "size": 1000})
    assert status >= 500 and conflicts == [0]

    items = aws.dynamodb.scan(TableName=aws.resources.uploads_table)["Items"]
    (owner,) = [i for i in items if i["pk"]["S"].startswith("owner#")]
    assert len([i for i in items if i["pk"]["S"].startswith("upload#")]) == 1
    assert len(owner["open"]["M"]) == 1 and int(owner["bytes"]["N"]) == 10  # nothing of the failed one charged

    # and without the fault, the same request is issued, the two writes one after the other
    conflicts[0] = 1
    assert api.call("POST", "/uploads", {**body, "filename": "b.txt", "size": 1000})[0] == 201


def test_a_message_out_of_retries_gives_up_the_claim_an_earlier_receive_of_it_left(aws: Any, api: Api) -> None:
    # an earlier receive of message m0 failed and could not give its claim up (the release was
    # throttled); the last receive fails before it takes the claim up (its claim is throttled)
    last = max_receive_count()
    data, issued, etag = held_upload(aws, api, "m0#0001")
    fail_calls("dynamodb", "UpdateItem", 1, when=lambda params: "claim_until" in str(params.get("UpdateExpression")))
    reply = process(aws, issued["key"], len(data), etag=etag, receive_count=last)
    assert reply["batchItemFailures"]  # on to the dead-letter queue
    record = item(aws, issued["uploadId"])
    assert record["status"] == {"S": "FAILED"}
    assert "claim_by" not in record, "the claim the message left is given up with it"

    # so its redrive (another message) is not held up until that claim lapses: it completes
    assert process(aws, issued["key"], len(data), etag=etag, id_prefix="redriven") == {"batchItemFailures": []}
    assert item(aws, issued["uploadId"])["status"] == {"S": "PROCESSED"}
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Failed", "Upload Processed"]


def a_release(params: dict[str, Any]) -> bool:
    return str(params.get("UpdateExpression")).startswith("REMOVE")


def test_a_twin_out_of_retries_on_an_upload_already_failed_leaves_no_claim_behind(aws: Any, api: Api) -> None:
    last = max_receive_count()
    data, issued, etag = sent_image(aws, api)

    # one message's last receive fails the upload
    fail_calls("s3", "GetObject", 1)
    assert process(aws, issued["key"], len(data), etag=etag, id_prefix="first", receive_count=last)["batchItemFailures"]
    assert item(aws, issued["uploadId"])["status"] == {"S": "FAILED"}

    # a twin's last receive takes the claim of the FAILED upload, fails, and cannot give it up
    # (the release is throttled): FAILED already, it records nothing, but it must let go
    fail_calls("s3", "GetObject", 1)
    fail_calls("dynamodb", "UpdateItem", 1, when=a_release)
    assert process(aws, issued["key"], len(data), etag=etag, id_prefix="twin", receive_count=last)["batchItemFailures"]
    record = item(aws, issued["uploadId"])
    assert record["status"] == {"S": "FAILED"}
    assert "claim_by" not in record and "claim_etag" not in record

    # the redrive completes at once
    assert process(aws, issued["key"], len(data), etag=etag, id_prefix="redriven") == {"batchItemFailures": []}
    assert item(aws, issued["uploadId"])["status"] == {"S": "PROCESSED"}
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Failed", "Upload Processed"]


def test_a_last_receive_that_could_not_remove_the_staging_copy_leaves_it_to_the_redrive(aws: Any, api: Api) -> None:
    last = max_receive_count()
    data, issued, etag = sent_image(aws, api)

    # the last receive reaches the outcome, but S3 throttles every try to remove the staging copy
    throttled = fail_calls("s3", "DeleteObject", 100)
    assert process(aws, issued["key"], len(data), etag=etag, receive_count=last)["batchItemFailures"]
    record = item(aws, issued["uploadId"])
    assert record["status"] == {"S": "PROCESSED"} and "claim_by" not in record
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Processed"], "recorded, so announced"
    assert current_etag(aws, issued["key"]) == etag

    # its redrive (another message) removes it, and announces nothing again
    throttled[0] = 0
    assert process(aws, issued["key"], len(data), etag=etag, id_prefix="redriven") == {"batchItemFailures": []}
    assert current_etag(aws, issued["key"]) is None
    assert item(aws, issued["uploadId"])["status"] == {"S": "PROCESSED"}
    assert delivered_events(aws) == []


def a_failing_copy_beside(aws: Any, issued: dict[str, Any], ref: Any, by: str) -> dict[str, Any]:
    """A copy of receive ``by`` (SQS handed it out twice) that fails on its own (its first write
    throttled) while the other copy holds the upload, and ends as the handler ends a last receive."""
    from directupload import wiring
    from directupload.processing.pipeline import still_holding

    seen: dict[str, Any] = {}

    def copy_fails(**_: Any) -> None:
        if "held" in seen:
            return
        seen["held"] = item(aws, issued["uploadId"]).get("claim_by")
        fail_calls("dynamodb", "UpdateItem", 1)
        try:
            wiring.processor().process(ref, by=by)
        except Exception as exc:  # the handler on a last receive: fail(), as for any error
            wiring.processor().fail(ref, repr(exc), by=by, holding=still_holding(exc))
        seen["after"] = item(aws, issued["uploadId"]).get("claim_by")

    seen["hook"] = copy_fails
    return seen


def test_a_copy_of_the_last_receive_failing_after_the_outcome_changes_nothing(aws: Any, api: Api) -> None:
    from directupload import aws as clients
    from directupload import wiring

    last = f"m0#{max_receive_count():04d}"
    data = png()
    issued = upload(api, data, "a.png", "image/png", "avatar")
    ref = ref_of(aws, issued, len(data))
    seen = a_failing_copy_beside(aws, issued, ref, last)
    # the holder recorded the outcome and removes the staging copy; the copy fails beside it
    clients.client("s3").meta.events.register("before-call.s3.DeleteObject", seen["hook"])
    assert wiring.processor().process(ref, by=last) == "processed"
    assert seen["held"] is None and seen["after"] is None, "the outcome's write gave the claim up"
    assert item(aws, issued["uploadId"])["status"] == {"S": "PROCESSED"}
    # so a twin (another message) arriving later finds it final and sends nothing again
    assert wiring.processor().process(ref, by="twin#0001") == "duplicate"
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Processed"]


def test_a_copy_of_a_redrive_s_last_receive_failing_beside_it_leaves_its_claim_alone(aws: Any, api: Api) -> None:
    from directupload import aws as clients
    from directupload import wiring

    last = f"r0#{max_receive_count():04d}"
    data = png()
    issued = upload(api, data, "a.png", "image/png", "avatar")
    ref = ref_of(aws, issued, len(data))
    assert wiring.processor().fail(ref, "the first message ran out of receives", by="m0#0005")
    seen = a_failing_copy_beside(aws, issued, ref, last)
    # the redriven message's last receive holds the FAILED upload and promotes it; the copy fails
    clients.client("s3").meta.events.register("before-call.s3.CopyObject", seen["hook"])
    assert wiring.processor().process(ref, by=last) == "processed"
    assert seen["held"] == seen["after"] == {"S": last}, "the claim stayed with the holder"
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Failed", "Upload Processed"]


def test_a_last_receive_whose_outcome_write_failed_gives_up_its_claim(aws: Any, api: Api) -> None:
    last = max_receive_count()
    data, issued, etag = sent_image(aws, api)

    # the last receive verified and promoted the image, but its outcome write is throttled
    def the_outcome_write(params: dict[str, Any]) -> bool:
        named = "pending_event" in str(params.get("ExpressionAttributeNames"))
        return named and "Upload Processed" in str(params.get("ExpressionAttributeValues"))

    throttled = fail_calls("dynamodb", "UpdateItem", 100, when=the_outcome_write)
    assert process(aws, issued["key"], len(data), etag=etag, receive_count=last)["batchItemFailures"]
    record = item(aws, issued["uploadId"])
    assert record["status"] == {"S": "FAILED"}
    assert "claim_by" not in record, "the claim its attempt kept goes with the message"

    # so its redrive completes at once
    throttled[0] = 0
    assert process(aws, issued["key"], len(data), etag=etag, id_prefix="redriven") == {"batchItemFailures": []}
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Failed", "Upload Processed"]


def test_a_last_receive_whose_quarantine_copy_failed_gives_up_its_claim(aws: Any, api: Api) -> None:
    last = max_receive_count()
    data = executable(300)  # named a PNG: rejected
    issued = upload(api, data, "x.png", "image/png", "avatar")
    etag = current_etag(aws, issued["key"])

    # the last receive rejects it, but S3 throttles every try to copy it to quarantine/
    throttled = fail_calls("s3", "CopyObject", 100)
    assert process(aws, issued["key"], len(data), etag=etag, receive_count=last)["batchItemFailures"]
    record = item(aws, issued["uploadId"])
    assert record["status"] == {"S": "FAILED"}
    assert "claim_by" not in record, "the claim goes with the message"

    # so its redrive decides at once, and the rejected bytes are kept as evidence
    throttled[0] = 0
    assert process(aws, issued["key"], len(data), etag=etag, id_prefix="redriven") == {"batchItemFailures": []}
    assert item(aws, issued["uploadId"])["status"] == {"S": "REJECTED"}
    kept = aws.s3.get_object(Bucket=aws.bucket, Key=f"quarantine/{issued['uploadId']}/x.png")["Body"].read()
    assert kept == data
    assert current_etag(aws, issued["key"]) is None
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Failed", "Upload Rejected"]


def test_a_rejected_version_written_over_before_its_copy_leaves_the_decision_to_the_newer_bytes(
    aws: Any, api: Api
) -> None:
    from directupload import aws as clients
    from directupload import wiring

    newer = png()
    bad = executable(len(newer))  # of the same size, rejected
    issued = upload(api, bad, "x.png", "image/png", "avatar")
    ref = ref_of(aws, issued, len(bad))
    replaced: list[int] = []

    def resent(**_: Any) -> None:  # the grant is sent again with other bytes just before the copy
        if not replaced:
            replaced.append(1)
            post_to_s3(issued, newer)

    clients.client("s3").meta.events.register("before-call.s3.CopyObject", resent)
    # the copy is pinned to the rejected version: it fails, and the attempt stands down
    assert wiring.processor().process(ref, by=HOLDER) == "superseded"
    assert item(aws, issued["uploadId"])["status"] == {"S": "UPLOADED"}
    assert aws.s3.list_objects_v2(Bucket=aws.bucket, Prefix="quarantine/").get("KeyCount") == 0
    # the newer bytes' own notification decides: a rejection never names bytes it did not reject
    later = ref_of(aws, issued, len(newer))
    assert wiring.processor().process(later, by="m1#0001") == "processed"
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Processed"]


def test_bytes_sent_after_a_rejection_never_replace_its_quarantined_evidence(aws: Any, api: Api) -> None:
    from directupload import wiring

    newer = png()
    bad = executable(len(newer))
    issued = upload(api, bad, "x.png", "image/png", "avatar")
    assert wiring.processor().process(ref_of(aws, issued, len(bad)), by=HOLDER) == "rejected"
    evidence = f"quarantine/{issued['uploadId']}/x.png"
    assert aws.s3.get_object(Bucket=aws.bucket, Key=evidence)["Body"].read() == bad

    post_to_s3(issued, newer)  # the grant, still valid, sent again with other bytes
    assert wiring.processor().process(ref_of(aws, issued, len(newer)), by="m1#0001") == "late"
    assert current_etag(aws, issued["key"]) is None
    assert aws.s3.get_object(Bucket=aws.bucket, Key=evidence)["Body"].read() == bad, "the evidence is what was rejected"
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Rejected"]
