"""The local stack onto buckets it does not own (`make run BUCKETS=existing`): the buckets are made
outside the template, as their owner would, S3's EventBridge events reach the IngestQueue through
the template's rule, and each function runs with its role's grants, scoped to exactly those
buckets (the emulator's IAM gate enforces them)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import requests

from tests.conftest import Stack, emulator_client, start_stack, stop_stack, wait_for_status
from tests.e2e.test_local_stack import upload

DEFAULT_BUCKET = "acme-shared-uploads"
REPORTS_BUCKET = "acme-finance-reports"
PROFILES = {
    "file": {"contentTypes": ["text/plain", "application/pdf"], "maxSize": 1024 * 1024},
    "report": {"contentTypes": ["text/plain"], "maxSize": 1024 * 1024, "bucket": REPORTS_BUCKET},
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    started = start_stack(
        tmp_path_factory.mktemp("existing"),
        "--buckets",
        "existing",
        "--parameter",
        f"ExistingBuckets={DEFAULT_BUCKET},{REPORTS_BUCKET}",
        "--parameter",
        f"ProfilesJson={json.dumps(PROFILES)}",
    )
    yield started
    stop_stack(started)


def test_the_stack_creates_no_bucket_and_uses_the_existing_ones(stack: Stack) -> None:
    assert stack.info["bucketMode"] == "existing"
    assert stack.info["buckets"] == [DEFAULT_BUCKET, REPORTS_BUCKET]
    assert stack.info["bucket"] == DEFAULT_BUCKET
    names = {b["Name"] for b in emulator_client(stack).list_buckets()["Buckets"]}
    assert names == {DEFAULT_BUCKET, REPORTS_BUCKET}  # no bucket of the template's own


def test_an_upload_into_an_existing_bucket_is_scanned_and_processed_through_eventbridge(stack: Stack) -> None:
    # Given the bucket's notifications go to EventBridge only (its owner's setting): no S3 -> SQS
    s3 = emulator_client(stack)
    notifications = s3.get_bucket_notification_configuration(Bucket=DEFAULT_BUCKET)
    assert "EventBridgeConfiguration" in notifications
    ingest_arn = stack.info["ingestQueueUrl"].rsplit("/", 1)[1]
    assert not [q for q in notifications.get("QueueConfigurations", []) if q["QueueArn"].endswith(ingest_arn)]

    # When a file is uploaded with the presigned POST
    issued = upload(stack, b"quarterly figures, all fine\n", "q3 notes+draft.txt", "text/plain", profile="file")
    record = wait_for_status(stack.url, issued["uploadId"], timeout=60)

    # Then it is PROCESSED (after its malware scan) and promoted within that bucket
    assert record["status"] == "PROCESSED", record
    file_key = f"files/{issued['uploadId']}/{issued['key'].rsplit('/', 1)[1]}"
    assert s3.get_object(Bucket=DEFAULT_BUCKET, Key=file_key)["Body"].read() == b"quarterly figures, all fine\n"


def test_a_profile_naming_the_second_bucket_keeps_its_upload_there_until_deleted(stack: Stack) -> None:
    s3 = emulator_client(stack)
    issued = upload(stack, b"revenue up\n", "report.txt", "text/plain", profile="report")
    assert f"/{REPORTS_BUCKET}" in issued["url"]

    record = wait_for_status(stack.url, issued["uploadId"], timeout=60)
    assert record["status"] == "PROCESSED", record

    download = requests.get(f"{stack.url}/uploads/{issued['uploadId']}/download", timeout=10).json()
    assert f"/{REPORTS_BUCKET}/" in download["url"]
    assert requests.get(download["url"], timeout=10).content == b"revenue up\n"

    # (409 while the outcome's event is still being sent: a client asks again, as this does)
    deadline = time.monotonic() + 60
    while (deleted := requests.delete(f"{stack.url}/uploads/{issued['uploadId']}", timeout=10)).status_code == 409:
        assert time.monotonic() < deadline, deleted.text
        time.sleep(0.2)
    assert deleted.status_code == 200 and deleted.json()["status"] == "DELETED", deleted.text
    prefix = issued["uploadId"]
    left = [o["Key"] for o in s3.list_objects_v2(Bucket=REPORTS_BUCKET).get("Contents", []) if prefix in o["Key"]]
    assert left == []
