"""Processing that never loses an upload, against moto over real HTTP: duplicate and late
notifications, transient failures that retry, retries that run out into the dead-letter
queue, the redrive that brings them back, and the events consumers see (each one validated
against its published schema)."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from local.faults import Faults
from local.lambda_runtime import LocalContext, LocalFunction
from local.poller import QueuePoller
from scripts.redrive import redrive
from tests.integration.conftest import Api, a_pdf, delivered_events, fail_calls, png, post_to_s3, upload
from tests.support.processing import current_etag, handle, process
from tests.support.template import function_timeout, max_receive_count, record_key

# processing mechanics (retries, faults, dead letters): the malware scan gate has tests of its own
pytestmark = pytest.mark.usefixtures("unscanned")


# --- helpers ---------------------------------------------------------------------------------


def poller(aws: Any, faults: Faults | None = None) -> QueuePoller:
    """The local stack's poller over the real ingest queue: failures come back at once."""
    from handlers import processor

    # the template's timeout, as the local stack's workers have it
    timeout = function_timeout("ProcessFunction", aws.template)
    function = LocalFunction("ProcessFunction", processor.lambda_handler, timeout=timeout)
    return QueuePoller(aws.sqs, aws.resources.ingest_queue_url, function, wait_seconds=0, retry_delay=0, faults=faults)


def drain(aws: Any, faults: Faults | None = None, rounds: int = 50) -> QueuePoller:
    """Deliver until the ingest queue is empty (messages that exhaust their receives move to the DLQ)."""
    p = poller(aws, faults)
    for _ in range(rounds):
        if p.poll_once() == 0 and p.poll_once() == 0:
            return p
    raise AssertionError("the ingest queue did not drain")


def per_upload(evts: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter((e["detail"]["uploadId"], e["detail-type"]) for e in evts)


def queue_depth(aws: Any, url: str) -> int:
    attrs = aws.sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )
    return sum(int(v) for v in attrs["Attributes"].values())


def record(api: Api, upload_id: str) -> dict[str, Any]:
    status, body, _ = api.call("GET", f"/uploads/{upload_id}")
    assert status == 200
    return body


def raw_item(aws: Any, upload_id: str) -> dict[str, Any]:
    reply = aws.dynamodb.get_item(TableName=aws.resources.uploads_table, Key=record_key(upload_id))
    return dict(reply["Item"])


def jpeg_with_gps() -> bytes:
    from PIL import ExifTags, Image

    exif = Image.Exif()
    exif[ExifTags.Base.GPSInfo] = {ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (52.0, 31.0, 12.0)}
    buf = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 30, 30)).save(buf, "JPEG", exif=exif.tobytes())
    return buf.getvalue()


# --- one outcome per upload --------------------------------------------------------------------


def test_duplicate_and_late_notifications_make_one_outcome_and_one_event(aws: Any, api: Api) -> None:
    # Given three uploads of different profiles whose notifications S3 sent, and sends again
    uploads = [
        upload(api, png(64, 48), "a.png", "image/png", "avatar"),
        upload(api, a_pdf(2), "b.pdf", "application/pdf", "document"),
        upload(api, b"plain text\n", "c.txt", "text/plain", "file"),
    ]
    notifications = [
        m
        for m in aws.sqs.receive_message(
            QueueUrl=aws.resources.ingest_queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0
        )["Messages"]
        if "Records" in json.loads(m["Body"])
    ]  # (S3 also sends one s3:TestEvent)
    assert len(notifications) == 3
    for message in notifications:  # a duplicate of each, at once
        aws.sqs.send_message(QueueUrl=aws.resources.ingest_queue_url, MessageBody=message["Body"])

    # When everything is delivered, and every notification arrives once more, late
    drain(aws)
    for message in notifications:
        aws.sqs.send_message(QueueUrl=aws.resources.ingest_queue_url, MessageBody=message["Body"])
    drain(aws)

    # Then each upload is PROCESSED once, with exactly one event, and nothing is left held
    for issued in uploads:
        assert record(api, issued["uploadId"])["status"] == "PROCESSED"
        assert "claim_by" not in raw_item(aws, issued["uploadId"])
    seen = delivered_events(aws)
    assert per_upload(seen) == Counter({(u["uploadId"], "Upload Processed"): 1 for u in uploads})
    by_id = {e["detail"]["uploadId"]: e["detail"] for e in seen}
    assert by_id[uploads[0]["uploadId"]]["result"]["width"] == 64
    assert by_id[uploads[1]["uploadId"]]["result"]["pages"] == 2
    assert by_id[uploads[2]["uploadId"]]["result"]["contentType"] is None  # plain text has no magic bytes
    # and no attempt holds any of them any more
    assert not [u for u in uploads if {"claim_by", "claim_etag"} & raw_item(aws, u["uploadId"]).keys()]


# bodies the ingest queue could be sent that name no object (anyone allowed to send to it, or a bug)
MALFORMED_BODIES = [
    "not json",
    "[]",
    '"text"',
    "{}",
    json.dumps({"type": "directupload:scan-deadline"}),
    json.dumps({"type": "directupload:scan-deadline", "bucket": 1, "key": 2, "etag": 3}),
    json.dumps({"type": "directupload:scan-deadline", "bucket": "b", "key": "incoming/x/y"}),
    json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {}}]}),
    json.dumps({"Records": [{"eventName": "ObjectCreated:Put"}]}),
    json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {}}}]}),
    json.dumps({"Records": {"eventName": "ObjectCreated:Put"}}),
    "[" * 100_000 + "]" * 100_000,  # deeper than the JSON parser goes
    json.dumps(
        {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {"key": "\ud800"}}}]}
    ),
    json.dumps({"source": "aws.s3", "detail-type": "Object Created", "detail": {"bucket": [], "object": "x"}}),
]


def test_a_message_that_names_no_object_goes_to_the_dead_letter_queue_and_the_rest_are_processed(
    aws: Any, api: Api
) -> None:
    # Given malformed messages in the ingest queue beside a real upload's notification, whose
    # fields processing can do without are of the wrong type (as if S3 had written them so)
    issued = upload(api, b"plain text\n", "c.txt", "text/plain", "file")
    queue = aws.resources.ingest_queue_url
    [real] = [
        m
        for m in aws.sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
        if "Records" in json.loads(m["Body"])
    ]  # (S3 also sends one s3:TestEvent)
    aws.sqs.delete_message(QueueUrl=queue, ReceiptHandle=real["ReceiptHandle"])
    notification = json.loads(real["Body"])
    notification["Records"][0]["s3"]["object"].update(eTag=["x"], size="big", sequencer={"a": 1})
    for body in [*MALFORMED_BODIES, json.dumps(notification)]:
        aws.sqs.send_message(QueueUrl=queue, MessageBody=body)

    # When everything is delivered
    with json_logs() as lines:
        drain(aws)

    # Then the upload is processed, and each malformed message waits in the dead-letter queue as sent
    assert record(api, issued["uploadId"])["status"] == "PROCESSED"
    dead: list[str] = []
    while batch := aws.sqs.receive_message(
        QueueUrl=aws.resources.dead_letter_queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60
    ).get("Messages", []):
        dead += [m["Body"] for m in batch]
    assert sorted(dead) == sorted(MALFORMED_BODIES)
    assert queue_depth(aws, queue) == 0
    # logged with the reason, never with the body (whoever sent it chose its bytes)
    malformed = [line for line in lines if line.get("message") == "malformed message sent to the dead-letter queue"]
    assert {line["reason"] for line in malformed} >= {"the body is not JSON", "the body is not a JSON object"}
    assert not [line for line in lines if "not json" in json.dumps(line) or "Traceback" in json.dumps(line)]


def test_a_duplicate_of_a_processed_uploads_notification_never_reads_the_object_again(aws: Any, api: Api) -> None:
    data = png()
    issued = upload(api, data, "a.png", "image/png", "avatar")
    assert process(aws, issued["key"], len(data)) == {"batchItemFailures": []}
    # S3 reads of the object now fail: a duplicate that reached the pipeline would be retried
    left = fail_calls("s3", "GetObject", 5, code="SlowDown")

    assert process(aws, issued["key"], len(data)) == {"batchItemFailures": []}
    assert left == [5]
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Processed"]


def test_a_new_version_of_the_notification_still_cannot_make_a_second_outcome(aws: Any, api: Api) -> None:
    # a notification of another ETag: the record's state machine decides
    data = png()
    issued = upload(api, data, "a.png", "image/png", "avatar")
    etag = current_etag(aws, issued["key"])
    process(aws, issued["key"], len(data), etag=etag)
    process(aws, issued["key"], len(data), etag="2" * 32)
    process(aws, issued["key"], len(data), etag=etag)
    assert record(api, issued["uploadId"])["status"] == "PROCESSED"
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Processed"]


def failing_with_its_claim_release(api: Api, aws: Any) -> tuple[bytes, dict[str, Any], str | None]:
    """An issued and sent image whose next attempt fails (its GetObject), and so does that
    attempt's release of its claim: the data, the issued upload, the staging version's ETag."""
    data = png()
    issued = upload(api, data, "a.png", "image/png", "avatar")
    fail_calls("s3", "GetObject", 1)
    release = "REMOVE claim_etag, claim_until, claim_by"
    fail_calls("dynamodb", "UpdateItem", 1, when=lambda p: p.get("UpdateExpression") == release)
    return data, issued, current_etag(aws, issued["key"])


def test_a_claim_left_by_a_failed_attempt_is_taken_up_by_its_own_retry_and_given_up_when_it_fails(
    aws: Any, api: Api
) -> None:
    # Given an attempt that failed and could not even give its claim up
    data, issued, etag = failing_with_its_claim_release(api, aws)
    assert process(aws, issued["key"], len(data), etag=etag)["batchItemFailures"]
    assert raw_item(aws, issued["uploadId"])["claim_by"] == {"S": "m0#0001"}

    # Then another message of the same notification waits for it
    assert process(aws, issued["key"], len(data), etag=etag, id_prefix="twin")["batchItemFailures"]
    # but the retry of the message that left it takes it up and reaches the outcome
    assert process(aws, issued["key"], len(data), etag=etag, receive_count=2) == {"batchItemFailures": []}
    assert record(api, issued["uploadId"])["status"] == "PROCESSED"
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Processed"]


def test_the_last_attempt_gives_up_its_claim_so_the_redriven_message_is_not_held_up(aws: Any, api: Api) -> None:
    # the last attempt fails, and its own release of the claim fails too
    data, issued, etag = failing_with_its_claim_release(api, aws)
    reply = process(aws, issued["key"], len(data), etag=etag, receive_count=max_receive_count())
    assert reply["batchItemFailures"]
    item = raw_item(aws, issued["uploadId"])
    assert item["status"] == {"S": "FAILED"} and "claim_by" not in item

    # the redrive sends the message again (another message): it is not held up by a claim
    assert process(aws, issued["key"], len(data), etag=etag, id_prefix="redriven") == {"batchItemFailures": []}
    assert record(api, issued["uploadId"])["status"] == "PROCESSED"
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Failed", "Upload Processed"]


def test_a_notification_that_arrives_before_the_object_is_retried_until_it_is_there(aws: Any, api: Api) -> None:
    data = b"early bird\n"
    status, issued, _ = api.call(
        "POST", "/uploads", {"profile": "file", "filename": "e.txt", "contentType": "text/plain", "size": len(data)}
    )
    assert status == 201
    # the notification overtakes the object (a reordered delivery)
    reply = process(aws, issued["key"], len(data))
    assert reply == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert record(api, issued["uploadId"])["status"] in ("PENDING", "UPLOADED")

    post_to_s3(issued, data)
    drain(aws)  # S3's own notification
    assert record(api, issued["uploadId"])["status"] == "PROCESSED"
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Processed"]


# --- transient failures retry ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "operation"),
    # the first delivery reads no record: its claim's UpdateItem is its first DynamoDB call
    [("s3", "GetObject"), ("s3", "PutObject"), ("s3", "CopyObject"), ("dynamodb", "UpdateItem")],
)
def test_a_throttled_call_fails_the_record_which_then_succeeds_on_retry(
    aws: Any, api: Api, service: str, operation: str
) -> None:
    data = png()
    issued = upload(api, data, "a.png", "image/png", "avatar")
    fail_calls(service, operation, 1)

    assert process(aws, issued["key"], len(data)) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert record(api, issued["uploadId"])["status"] in ("PENDING", "UPLOADED")
    assert delivered_events(aws) == []

    assert process(aws, issued["key"], len(data), receive_count=2) == {"batchItemFailures": []}
    assert record(api, issued["uploadId"])["status"] == "PROCESSED"
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Processed"]


def test_an_event_eventbridge_throttles_costs_the_processor_nothing_and_goes_out_once(aws: Any, api: Api) -> None:
    data = png()
    issued = upload(api, data, "a.png", "image/png", "avatar")
    left = fail_calls("events", "PutEvents", 1)
    assert process(aws, issued["key"], len(data)) == {"batchItemFailures": []}  # it never calls EventBridge
    assert left == [1]
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Processed"]  # the stream's retry
    assert left == [0]
    assert delivered_events(aws) == []


def test_events_wait_on_the_stream_while_eventbridge_is_down_and_go_out_in_order(aws: Any, api: Api) -> None:
    # Given EventBridge refusing every event for a while
    down = fail_calls("events", "PutEvents", 10_000)
    data = png()
    first = upload(api, data, "a.png", "image/png", "avatar")
    assert process(aws, first["key"], len(data)) == {"batchItemFailures": []}
    assert record(api, first["uploadId"])["status"] == "PROCESSED"
    assert delivered_events(aws) == []
    # (the owner deletes it meanwhile, and another upload is processed)
    assert api.call("DELETE", f"/uploads/{first['uploadId']}")[1]["status"] == "DELETED"
    second = upload(api, data, "b.png", "image/png", "avatar")
    assert process(aws, second["key"], len(data)) == {"batchItemFailures": []}
    assert delivered_events(aws) == []

    # When it is back, every owed event goes out once, in the order of the changes
    down[0] = 0
    seen = [(e["detail"]["uploadId"], e["detail-type"]) for e in delivered_events(aws)]
    assert seen == [
        (first["uploadId"], "Upload Processed"),
        (first["uploadId"], "Upload Deleted"),
        (second["uploadId"], "Upload Processed"),
    ]
    assert delivered_events(aws) == []


def test_a_rejection_whose_quarantine_copy_failed_is_recorded_by_the_retry(aws: Any, api: Api) -> None:
    data = b"MZ\x90\x00" + b"\x00" * 300
    issued = upload(api, data, "x.png", "image/png", "avatar")
    fail_calls("s3", "CopyObject", 1)  # the copy to quarantine/, made before the outcome's write
    assert process(aws, issued["key"], len(data))["batchItemFailures"]
    assert record(api, issued["uploadId"])["status"] == "UPLOADED"
    assert delivered_events(aws) == []

    assert process(aws, issued["key"], len(data), receive_count=2) == {"batchItemFailures": []}
    assert record(api, issued["uploadId"])["status"] == "REJECTED"
    keys = [o["Key"] for o in aws.s3.list_objects_v2(Bucket=aws.bucket).get("Contents", [])]
    assert keys == [f"quarantine/{issued['uploadId']}/x.png"]
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Rejected"]


def test_a_rejection_whose_staging_removal_failed_is_finished_by_the_retry(aws: Any, api: Api) -> None:
    data = b"MZ\x90\x00" + b"\x00" * 300
    issued = upload(api, data, "x.png", "image/png", "avatar")
    fail_calls("s3", "DeleteObject", 3)  # after the outcome's write: every try inside the attempt
    assert process(aws, issued["key"], len(data))["batchItemFailures"]
    assert record(api, issued["uploadId"])["status"] == "REJECTED"
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Rejected"]

    assert process(aws, issued["key"], len(data), receive_count=2) == {"batchItemFailures": []}
    keys = [o["Key"] for o in aws.s3.list_objects_v2(Bucket=aws.bucket).get("Contents", [])]
    assert keys == [f"quarantine/{issued['uploadId']}/x.png"]
    assert delivered_events(aws) == []


# --- permanent failures: rejected at once --------------------------------------------------------


def test_a_corrupt_image_is_rejected_at_once_without_retries(aws: Any, api: Api) -> None:
    data = png(200, 100)
    data = data[: len(data) // 2]  # cut short, and declared at that size
    issued = upload(api, data, "cut.png", "image/png", "avatar")

    p = drain(aws)

    assert p.failures == 0
    body = record(api, issued["uploadId"])
    assert body["status"] == "REJECTED" and body["error"]["code"] == "corrupt-image"
    keys = [o["Key"] for o in aws.s3.list_objects_v2(Bucket=aws.bucket).get("Contents", [])]
    assert keys == [f"quarantine/{issued['uploadId']}/cut.png"]
    seen = delivered_events(aws)
    assert [e["detail-type"] for e in seen] == ["Upload Rejected"]
    assert seen[0]["detail"]["error"]["code"] == "corrupt-image"
    assert queue_depth(aws, aws.resources.dead_letter_queue_url) == 0


def test_the_thumbnail_of_an_uploaded_jpeg_keeps_no_gps_position(aws: Any, api: Api) -> None:
    from PIL import Image

    data = jpeg_with_gps()
    issued = upload(api, data, "where.jpg", "image/jpeg", "avatar")
    drain(aws)
    result = record(api, issued["uploadId"])["result"]
    assert result["thumbnail"]["key"] == f"derived/{issued['uploadId']}/thumbnail.webp"
    thumb = aws.s3.get_object(Bucket=aws.bucket, Key=result["thumbnail"]["key"])["Body"].read()
    with Image.open(io.BytesIO(thumb)) as img:
        assert img.format == "WEBP" and not img.getexif() and "exif" not in img.info
    assert result["sha256"] == hashlib.sha256(data).hexdigest()


# --- retries run out: dead-letter queue, FAILED, redrive ------------------------------------------


def test_retries_run_out_into_the_dlq_as_failed_and_a_redrive_completes_the_upload(
    aws: Any, api: Api, tmp_path: Path
) -> None:
    from directupload import aws as clients

    max_receives = max_receive_count(aws.template)  # the IngestQueue's, as provisioned

    # Given an object every S3 read of which fails while the switch file exists
    switch = tmp_path / "faults-on"
    switch.touch()
    faults = Faults(poison=("*/stuck.txt",), switch=switch)
    faults.install({"s3": clients.client("s3")})
    data = b"stuck for now\n"
    issued = upload(api, data, "stuck.txt", "text/plain", "file")

    # When its notification is delivered until SQS gives up on it
    p = drain(aws, faults)

    # Then it tried MaxReceiveCount times, parked in the DLQ, and the record says FAILED and why
    assert p.failures == max_receives
    assert faults.counts["poison"] == max_receives
    assert queue_depth(aws, aws.resources.ingest_queue_url) == 0
    assert queue_depth(aws, aws.resources.dead_letter_queue_url) == 1
    body = record(api, issued["uploadId"])
    assert body["status"] == "FAILED"
    assert body["error"]["code"] == "processing-failed"
    # the cause (an exception's text) stays in the logs; clients and consumers get the code
    assert "SlowDown" not in json.dumps(body) and "Error" not in body["error"]["message"]
    failed = delivered_events(aws)
    assert [e["detail-type"] for e in failed] == ["Upload Failed"]
    assert failed[0]["detail"]["error"]["code"] == "processing-failed"
    assert "SlowDown" not in json.dumps(failed[0]["detail"])

    # When the cause is gone and the DLQ is redriven
    switch.unlink()
    report = redrive(aws.sqs, aws.resources.dead_letter_queue_url, aws.resources.ingest_queue_url)
    assert (report.moved, report.failed) == (1, [])
    drain(aws, faults)

    # Then the upload completes with its one terminal event
    assert record(api, issued["uploadId"])["status"] == "PROCESSED"
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Processed"]
    assert queue_depth(aws, aws.resources.dead_letter_queue_url) == 0


def test_two_messages_of_one_upload_running_out_send_one_failed_event(aws: Any, api: Api, tmp_path: Path) -> None:
    from directupload import aws as clients

    switch = tmp_path / "on"
    switch.touch()
    faults = Faults(poison=("*/twice.txt",), switch=switch)
    faults.install({"s3": clients.client("s3")})
    issued = upload(api, b"x\n", "twice.txt", "text/plain", "file")
    [message] = [
        m
        for m in aws.sqs.receive_message(
            QueueUrl=aws.resources.ingest_queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0
        )["Messages"]
        if "Records" in m["Body"]
    ]
    aws.sqs.send_message(QueueUrl=aws.resources.ingest_queue_url, MessageBody=message["Body"])

    drain(aws, faults)

    assert queue_depth(aws, aws.resources.dead_letter_queue_url) == 2
    assert record(api, issued["uploadId"])["status"] == "FAILED"
    assert per_upload(delivered_events(aws)) == Counter({(issued["uploadId"], "Upload Failed"): 1})

    switch.unlink()
    assert redrive(aws.sqs, aws.resources.dead_letter_queue_url, aws.resources.ingest_queue_url).moved == 2
    drain(aws, faults)
    assert record(api, issued["uploadId"])["status"] == "PROCESSED"
    assert per_upload(delivered_events(aws)) == Counter({(issued["uploadId"], "Upload Processed"): 1})


def test_the_last_attempt_records_failed_even_when_that_write_is_throttled_once(aws: Any, api: Api) -> None:
    max_receives = max_receive_count(aws.template)  # the IngestQueue's, as provisioned
    data = b"z\n"
    issued = upload(api, data, "z.txt", "text/plain", "file")
    fail_calls("s3", "HeadObject", 1, code="SlowDown")
    to_failed = fail_calls(
        "dynamodb", "UpdateItem", 1, when=lambda p: {"S": "FAILED"} in p.get("ExpressionAttributeValues", {}).values()
    )

    reply = process(aws, issued["key"], len(data), receive_count=max_receives)

    assert reply == {"batchItemFailures": [{"itemIdentifier": "m0"}]}  # it still moves to the DLQ
    assert to_failed == [0]
    assert record(api, issued["uploadId"])["status"] == "FAILED"
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Failed"]


def test_redrive_moves_every_message_in_batches_and_keeps_bodies(aws: Any) -> None:
    dlq, queue = aws.resources.dead_letter_queue_url, aws.resources.ingest_queue_url
    bodies = [json.dumps({"n": i}) for i in range(23)]
    for body in bodies:
        aws.sqs.send_message(QueueUrl=dlq, MessageBody=body)

    assert redrive(aws.sqs, dlq, queue, limit=5).moved == 5
    assert redrive(aws.sqs, dlq, queue).moved == 18

    moved = []
    while True:
        got = aws.sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            break
        moved += [m["Body"] for m in got if m["Body"].startswith('{"n"')]  # (not S3's s3:TestEvent)
    assert sorted(moved) == sorted(bodies)
    assert queue_depth(aws, dlq) == 0


# --- consumers and logs --------------------------------------------------------------------------


@contextmanager
def json_logs() -> Iterator[list[dict[str, Any]]]:
    """What the powertools Logger writes (at INFO), parsed: the lines CloudWatch would hold."""
    from directupload.observability import logger

    stream = io.StringIO()
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous, level = handler.setStream(stream), logger.log_level
    logger.setLevel("INFO")
    lines: list[dict[str, Any]] = []
    try:
        yield lines
    finally:
        handler.setStream(previous)
        logger.setLevel(level)
        lines.extend(json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{"))


def test_the_sample_consumer_takes_every_event_kind_with_the_upload_id_as_correlation_id(aws: Any, api: Api) -> None:
    from handlers import consumer

    max_receives = max_receive_count(aws.template)  # the IngestQueue's, as provisioned
    good = upload(api, png(), "ok.png", "image/png", "avatar")
    bad = upload(api, b"MZ\x90\x00" + bytes(100), "bad.png", "image/png", "avatar")
    drain(aws)
    gone = upload(api, b"q\n", "gone.txt", "text/plain", "file")
    aws.s3.delete_object(Bucket=aws.bucket, Key=gone["key"])  # the object vanished: every attempt fails
    process(aws, gone["key"], 2, receive_count=max_receives)
    seen = delivered_events(aws)
    assert sorted(e["detail-type"] for e in seen) == ["Upload Failed", "Upload Processed", "Upload Rejected"]

    with json_logs() as lines:
        for event in seen:
            assert consumer.lambda_handler(event, LocalContext("ConsumerFunction")) == {  # type: ignore[arg-type]  # LocalContext has its fields
                "uploadId": event["detail"]["uploadId"],
                "seen": event["detail-type"],
            }
    received = [line for line in lines if line.get("message") == "upload event received"]
    assert {(line["correlation_id"], line["detail_type"]) for line in received} == {
        (good["uploadId"], "Upload Processed"),
        (bad["uploadId"], "Upload Rejected"),
        (gone["uploadId"], "Upload Failed"),
    }


def test_processor_logs_carry_the_upload_id_as_correlation_id(aws: Any, api: Api) -> None:
    data = b"log me\n"
    issued = upload(api, data, "l.txt", "text/plain", "file")
    fail_calls("s3", "GetObject", 1, code="SlowDown")

    with json_logs() as lines:
        process(aws, issued["key"], len(data))
        process(aws, issued["key"], len(data), receive_count=2)

    handled = next(line for line in lines if line.get("message") == "notification handled")
    assert (handled["correlation_id"], handled["outcome"]) == (issued["uploadId"], "processed")
    warning = next(line for line in lines if line.get("message") == "processing attempt failed; will retry")
    assert warning["correlation_id"] == issued["uploadId"]
    assert warning["upload_id"] == issued["uploadId"] and warning["receive_count"] == 1
    assert "SlowDown" in warning["error"]


# --- quotas ----------------------------------------------------------------------------------------


def test_an_arrived_upload_gives_back_its_owners_pending_slot(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from directupload import wiring

    monkeypatch.setenv("QUOTA_MAX_PENDING", "2")
    wiring.reset()
    api = Api()
    if wiring.processor().quota is None:  # until wiring.processor() passes quota=quota()
        monkeypatch.setattr(wiring.processor(), "quota", wiring.quota())

    first = upload(api, b"1\n", "1.txt", "text/plain", "file")
    upload(api, b"2\n", "2.txt", "text/plain", "file")
    status, problem, _ = api.call(
        "POST", "/uploads", {"profile": "file", "filename": "3.txt", "contentType": "text/plain", "size": 2}
    )
    assert status == 429, problem

    drain(aws)

    assert record(api, first["uploadId"])["status"] == "PROCESSED"
    assert upload(api, b"3\n", "3.txt", "text/plain", "file")["uploadId"]


# --- the handler's own backoff -----------------------------------------------------------------


def test_a_failed_record_waits_out_its_backoff_and_the_last_goes_straight_to_the_dlq(aws: Any, api: Api) -> None:
    from handlers import processor
    from local.poller import sqs_event

    max_receives = max_receive_count(aws.template)  # the IngestQueue's, as provisioned

    # Given a real notification whose object every S3 read fails for
    issued = upload(api, b"slow\n", "slow.txt", "text/plain", "file")
    left = fail_calls("s3", "GetObject", 100, code="SlowDown")
    queue, arn = aws.resources.ingest_queue_url, poller(aws).queue_arn

    def attempt() -> dict[str, Any]:
        messages = [
            m
            for m in aws.sqs.receive_message(
                QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0
            ).get("Messages", [])
            if "Records" in m["Body"]
        ]
        assert len(messages) == 1
        reply = processor.lambda_handler(
            sqs_event(messages, arn, "us-east-1"), LocalContext("ProcessFunction", timeout_seconds=900)
        )
        assert reply == {"batchItemFailures": [{"itemIdentifier": messages[0]["MessageId"]}]}
        return messages[0]

    # When attempts fail, each sets a growing backoff on its message (made visible here to skip the waits)
    with json_logs() as lines:
        first = attempt()
        for _ in range(max_receives - 1):
            aws.sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0)
            first = attempt()
    waits = [line["retry_in"] for line in lines if line.get("message") == "processing attempt failed; will retry"]
    assert [round(w / (20 * 2**n)) for n, w in enumerate(waits)] == [1, 1, 1, 1]  # 20, 40, 80, 160 s +-20 %
    assert not any("could not set the retry backoff" in line.get("message", "") for line in lines)

    # Then the last attempt records FAILED and leaves the message visible, so SQS dead-letters it at once
    assert first["Attributes"]["ApproximateReceiveCount"] == str(max_receives)
    assert record(api, issued["uploadId"])["status"] == "FAILED"
    assert aws.sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0).get("Messages", []) == []  # moved now
    assert queue_depth(aws, aws.resources.dead_letter_queue_url) == 1
    assert left[0] == 100 - max_receives


def test_redrive_finds_the_queues_of_a_deployed_stack_from_its_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from botocore.stub import Stubber

    from scripts import redrive as cli

    cfn = boto3.client("cloudformation", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(cfn)
    stub.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "directupload-dev",
                    "CreationTime": "2026-01-01T00:00:00Z",
                    "StackStatus": "CREATE_COMPLETE",
                    "Outputs": [
                        {"OutputKey": "IngestQueueUrl", "OutputValue": "https://sqs/1/ingest"},
                        {"OutputKey": "DeadLetterQueueUrl", "OutputValue": "https://sqs/1/dlq"},
                        {"OutputKey": "Region", "OutputValue": "eu-west-1"},
                    ],
                }
            ]
        },
        {"StackName": "directupload-dev"},
    )
    monkeypatch.setattr(boto3, "client", lambda *a, **k: cfn)
    with stub:
        target = cli.resolve(
            cli.argparse.Namespace(
                queue=None,
                dlq=None,
                stack="directupload-dev",
                region="eu-west-1",
                endpoint_url=None,
                state=Path("/nonexistent"),
            )
        )
    assert target == cli.Target("https://sqs/1/ingest", "https://sqs/1/dlq", "eu-west-1")


def test_redrive_wants_both_queue_urls_or_neither() -> None:
    from scripts import redrive as cli

    with pytest.raises(SystemExit, match="go together"):
        cli.main(["--queue", "https://sqs/1/ingest"])


def test_records_are_not_started_with_too_little_of_the_invocation_left(aws: Any, api: Api) -> None:
    from tests.events import s3_notification

    data = png()
    first, second = (upload(api, data, f"{n}.png", "image/png", "avatar") for n in ("first", "second"))
    bodies = [s3_notification(aws.bucket, issued["key"], len(data)) for issued in (first, second)]

    # a batch with a minute left: its first record runs, the next goes back to the queue untouched
    reply = handle(*bodies, remaining_seconds=60)
    assert reply == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert [record(api, i["uploadId"])["status"] for i in (first, second)] == ["PROCESSED", "PENDING"]

    # and a fresh invocation processes it
    assert handle(*bodies)["batchItemFailures"] == []
    assert record(api, second["uploadId"])["status"] == "PROCESSED"
