"""Buckets the stack does not own (ExistingBuckets), several of them: S3's EventBridge events reach
the processor through the template's rule, one parser reads both notification shapes, and a profile
that names its bucket keeps every object of its uploads there."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_plus, urlparse

import pytest
import requests

from tests.conftest import Aws, provisioned
from tests.integration.conftest import Api, delivered_events, post_to_s3
from tests.support.aws_events import s3_eventbridge_event, s3_notification
from tests.support.processing import deliver_ingest_queue, handle
from tests.support.template import record_key

PROFILES = {
    "file": {"contentTypes": ["text/plain"], "maxSize": 1024, "scan": "off"},
    "report": {"contentTypes": ["text/plain"], "maxSize": 1024, "scan": "off", "bucket": "BUCKET_B"},
}


@pytest.fixture
def existing(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    """Two existing buckets, configured by their owner as docs/existing-buckets.md says; the
    profile ``report`` names the second."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    buckets = f"{prefix}-owned-a,{prefix}-owned-b"
    profiles = json.dumps(PROFILES).replace("BUCKET_B", f"{prefix}-owned-b")
    parameters = {"Stage": "dev", "ExistingBuckets": buckets, "ProfilesJson": profiles, "MalwareProtection": "disabled"}
    yield from provisioned(moto_server, monkeypatch, parameters, prefix)


@pytest.fixture
def dropped(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The metrics the processor adds, by name."""
    from handlers import processor

    names: list[str] = []
    monkeypatch.setattr(processor.metrics, "add_metric", lambda name, **_: names.append(name))
    return names


def issue(api: Api, profile: str, filename: str = "notes for q3+q4.txt", size: int = 11) -> dict[str, Any]:
    status, issued, _ = api.call(
        "POST", "/uploads", {"profile": profile, "filename": filename, "contentType": "text/plain", "size": size}
    )
    assert status == 201, issued
    return issued


def test_one_parser_reads_s3_notifications_and_eventbridge_events_each_with_its_key_encoding(existing: Aws) -> None:
    from handlers import processor

    # Given a key with a space and a plus, as S3 names it in each shape
    key = f"incoming/{'a' * 32}/notes for q3+q4.txt"
    bucket_a, bucket_b = existing.resources.buckets
    notification = s3_notification(bucket_a, key, 11, etag="e1")  # URL-encoded: notes+for+q3%2Bq4.txt
    event = s3_eventbridge_event(bucket_b, key, 11, etag="e2")  # as it is

    # When
    (from_sqs,) = processor.object_refs(json.dumps(notification))
    (from_eventbridge,) = processor.object_refs(json.dumps(event))

    # Then both name the real key, bucket and version
    assert notification["Records"][0]["s3"]["object"]["key"] == quote_plus(key, safe="/")
    assert (from_sqs.bucket, from_sqs.key, from_sqs.etag, from_sqs.size) == (bucket_a, key, "e1", 11)
    assert (from_eventbridge.bucket, from_eventbridge.key, from_eventbridge.etag) == (bucket_b, key, "e2")
    assert from_eventbridge.sequencer == event["detail"]["object"]["sequencer"]
    # and other S3 events (a deletion) are not objects to process
    assert (
        processor.object_refs(json.dumps(s3_eventbridge_event(bucket_a, key, 11, detail_type="Object Deleted"))) == []
    )


@pytest.mark.parametrize("shape", ["eventbridge", "s3-notification"])
def test_an_object_of_a_bucket_the_stack_does_not_serve_is_dropped_counted_and_not_retried(
    existing: Aws, dropped: list[str], shape: str
) -> None:
    # Given an upload issued for a configured bucket, and its key written to someone else's bucket
    api = Api()
    issued = issue(api, "file")
    build = s3_eventbridge_event if shape == "eventbridge" else s3_notification
    body = build("someone-elses-bucket", issued["key"], 11, etag="0" * 32)

    # When the processor gets that event
    reply = handle(body)

    # Then the message is done (no retry), counted, and the upload untouched
    assert reply["batchItemFailures"] == []
    assert dropped.count("NotificationsDropped") == 1
    assert api.call("GET", f"/uploads/{issued['uploadId']}")[1]["status"] == "PENDING"


def test_an_object_outside_staging_is_dropped_counted_and_not_retried(existing: Aws, dropped: list[str]) -> None:
    # Given an object written straight under files/ of a configured bucket (never a client's to write)
    bucket = existing.resources.bucket
    key = f"files/{'b' * 32}/planted.txt"
    existing.s3.put_object(Bucket=bucket, Key=key, Body=b"planted")

    # When its event reaches the processor
    reply = handle(s3_eventbridge_event(bucket, key, 7))

    # Then it is dropped, counted, and left alone (the bucket policy is what keeps writers out)
    assert reply["batchItemFailures"] == []
    assert dropped == ["NotificationsDropped"]
    assert existing.s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == 7


def test_uploads_into_an_existing_bucket_arrive_through_eventbridge_and_are_processed(existing: Aws) -> None:
    # Given an upload of the default profile, sent to the default existing bucket
    api = Api()
    issued = issue(api, "file")
    assert urlparse(issued["url"]).path.strip("/").split("/")[0] == existing.resources.bucket
    assert post_to_s3(issued, b"hello world").status_code == 204

    # When the IngestQueue's messages (S3 -> EventBridge -> ObjectCreatedRule) reach the processor
    replies = deliver_ingest_queue(existing)

    # Then it is PROCESSED, from an EventBridge event
    assert replies and all(reply["batchItemFailures"] == [] for reply in replies)
    assert api.call("GET", f"/uploads/{issued['uploadId']}")[1]["status"] == "PROCESSED"


def test_a_profile_that_names_its_bucket_keeps_the_upload_there_from_issue_to_deletion(existing: Aws) -> None:
    # Given the profile report, whose bucket is the second one
    api = Api()
    default_bucket, report_bucket = existing.resources.buckets
    issued = issue(api, "report")
    assert urlparse(issued["url"]).path.strip("/").split("/")[0] == report_bucket

    # When it is uploaded and processed
    assert post_to_s3(issued, b"q3 and q4 !").status_code == 204
    deliver_ingest_queue(existing)
    status, upload, _ = api.call("GET", f"/uploads/{issued['uploadId']}")

    # Then it is PROCESSED, promoted within that bucket, and the outcome event names it
    assert (status, upload["status"]) == (200, "PROCESSED")
    file_key = f"files/{issued['uploadId']}/{issued['key'].rsplit('/', 1)[1]}"
    assert existing.s3.get_object(Bucket=report_bucket, Key=file_key)["Body"].read() == b"q3 and q4 !"
    assert existing.s3.list_objects_v2(Bucket=default_bucket).get("KeyCount", 0) == 0
    (processed,) = [e for e in delivered_events(existing) if e["detail-type"] == "Upload Processed"]
    assert processed["detail"]["bucket"] == report_bucket

    # and its download is signed for that bucket and gives the bytes
    status, download, _ = api.call("GET", f"/uploads/{issued['uploadId']}/download")
    assert status == 200 and urlparse(download["url"]).path.startswith(f"/{report_bucket}/")
    assert requests.get(download["url"], timeout=10).content == b"q3 and q4 !"

    # and its deletion removes the object from that bucket
    status, _, _ = api.call("DELETE", f"/uploads/{issued['uploadId']}")
    assert status in (200, 204)
    assert existing.s3.list_objects_v2(Bucket=report_bucket, Prefix=file_key).get("KeyCount", 0) == 0
    (deleted,) = [e for e in delivered_events(existing) if e["detail-type"] == "Upload Deleted"]
    assert deleted["detail"]["bucket"] == report_bucket


def test_a_record_written_before_records_named_their_bucket_means_the_default_bucket(existing: Aws) -> None:
    # Given a processed upload whose record has no bucket (as records written by an older version)
    api = Api()
    issued = issue(api, "file")
    post_to_s3(issued, b"hello world")
    deliver_ingest_queue(existing)
    table = existing.resources.uploads_table
    existing.dynamodb.update_item(
        TableName=table,
        Key=record_key(issued["uploadId"]),
        UpdateExpression="REMOVE #b",
        ExpressionAttributeNames={"#b": "bucket"},
    )

    # When its download is signed
    status, download, _ = api.call("GET", f"/uploads/{issued['uploadId']}/download")

    # Then it comes from the default bucket
    assert status == 200 and urlparse(download["url"]).path.startswith(f"/{existing.resources.bucket}/")
    assert requests.get(download["url"], timeout=10).content == b"hello world"
