"""The promotion copy of a verify-only upload is made while its bytes are read and hashed (S3
copies the version the processor reads): what ends under ``files/`` is still only ever the bytes
verified, and an attempt that does not end PROCESSED leaves nothing there."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from tests.integration.conftest import Api, delivered_events, fail_calls, upload
from tests.support.processing import process
from tests.support.template import record_key

pytestmark = pytest.mark.usefixtures("unscanned")  # verification and promotion; scans: test_scanning.py

NOTES = b"".join(b"line %06d of a report kept as a plain file\n" % i for i in range(6000))  # ~260 KiB


def keys_in(aws: Any, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in aws.s3.list_objects_v2(Bucket=aws.bucket, Prefix=prefix).get("Contents", []))


def record(api: Api, upload_id: str) -> dict[str, Any]:
    status, body, _ = api.call("GET", f"/uploads/{upload_id}")
    assert status == 200, body
    return body


def copies_to_files() -> list[dict[str, Any]]:
    """Every CopyObject the functions' own client sends to ``files/`` from now on (its parameters)."""
    from directupload import aws as clients

    seen: list[dict[str, Any]] = []

    def hook(params: dict[str, Any], **_: Any) -> None:
        if str(params.get("Key", "")).startswith("files/"):
            seen.append(params)

    clients.client("s3").meta.events.register("provide-client-params.s3.CopyObject", hook)
    return seen


def test_the_promoted_object_is_the_verified_one_with_s3s_sha256_of_it(aws: Any, api: Api) -> None:
    # Given a plain file, uploaded through the API (the verify-only profile)
    issued = upload(api, NOTES, "notes.txt", "text/plain", "file")
    copies = copies_to_files()

    # When it is processed
    assert process(aws, issued["key"], len(NOTES)) == {"batchItemFailures": []}

    # Then it is PROCESSED and promoted once, conditioned on the version read
    final = record(api, issued["uploadId"])
    sha256 = hashlib.sha256(NOTES).hexdigest()
    assert final["status"] == "PROCESSED" and final["sha256"] == sha256
    [copy] = copies
    assert copy["CopySourceIfMatch"].strip('"') == hashlib.md5(NOTES).hexdigest()  # the ETag of those bytes
    # and the promoted object carries S3's SHA-256 of its bytes (the verified one), its type, its upload
    [promoted] = keys_in(aws, "files/")
    stored = aws.s3.get_object(Bucket=aws.bucket, Key=promoted, ChecksumMode="ENABLED")
    assert stored["Body"].read() == NOTES
    assert base64.b64decode(stored["ChecksumSHA256"]).hex() == sha256
    assert stored["ContentType"] == "text/plain" and stored["Metadata"] == {"upload-id": issued["uploadId"]}
    assert keys_in(aws, "incoming/") == []


def test_bytes_that_fail_their_checksum_after_the_copy_began_leave_nothing_under_files(aws: Any, api: Api) -> None:
    # Given an upload whose record declares a SHA-256 its bytes do not have (as a multipart
    # upload's whole-file declaration can: S3 keeps only a COMPOSITE checksum, so it is hashed here)
    issued = upload(api, NOTES, "notes.txt", "text/plain", "file")
    aws.dynamodb.update_item(
        TableName=aws.resources.uploads_table,
        Key=record_key(issued["uploadId"]),
        UpdateExpression="SET checksum_sha256 = :other",
        ExpressionAttributeValues={":other": {"S": hashlib.sha256(b"other bytes").hexdigest()}},
    )
    copies = copies_to_files()

    # When it is processed: its size, metadata and head pass, so the copy starts beside the hash
    assert process(aws, issued["key"], len(NOTES)) == {"batchItemFailures": []}

    # Then it is REJECTED for its checksum, and the copy that was made is gone again
    final = record(api, issued["uploadId"])
    assert final["status"] == "REJECTED" and final["error"]["code"] == "checksum-mismatch", final
    assert len(copies) == 1
    assert keys_in(aws, "files/") == []
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Rejected"]


def test_a_file_whose_head_is_refused_is_never_copied(aws: Any, api: Api) -> None:
    # Given a "plain file" that is an executable
    binary = (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00" + b"\x00" * 70_000)[:70_000]
    issued = upload(api, binary, "tool.bin", "application/octet-stream", "file")
    copies = copies_to_files()

    # When it is processed
    assert process(aws, issued["key"], len(binary)) == {"batchItemFailures": []}

    # Then it is REJECTED for its type, and nothing was ever copied to files/
    final = record(api, issued["uploadId"])
    assert final["status"] == "REJECTED" and final["error"]["code"] == "type-mismatch", final
    assert copies == [] and keys_in(aws, "files/") == []


def test_a_copy_that_fails_fails_the_attempt_and_its_retry_promotes(aws: Any, api: Api) -> None:
    # Given a plain file, and S3 throttling the first promotion copy (made in its own thread)
    issued = upload(api, NOTES, "notes.txt", "text/plain", "file")
    fail_calls("s3", "CopyObject", times=1)

    # When it is processed, the failure comes back to the attempt: the record fails and is retried
    first = process(aws, issued["key"], len(NOTES))
    assert len(first["batchItemFailures"]) == 1
    assert record(api, issued["uploadId"])["status"] == "UPLOADED"
    assert keys_in(aws, "files/") == []

    # Then the retry promotes it, once
    assert process(aws, issued["key"], len(NOTES), receive_count=2) == {"batchItemFailures": []}
    final = record(api, issued["uploadId"])
    assert final["status"] == "PROCESSED" and final["sha256"] == hashlib.sha256(NOTES).hexdigest()
    assert len(keys_in(aws, "files/")) == 1
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Processed"]
