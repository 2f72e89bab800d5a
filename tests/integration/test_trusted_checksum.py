"""A SHA-256 the client declared is pinned in its POST policy as S3's checksum field: S3 refuses
other bytes and keeps the checksum it verified (FULL_OBJECT SHA256). The processor then trusts
it and reads only the head it sniffs; without a declaration it hashes every byte."""

from __future__ import annotations

import hashlib
from typing import Any

from tests.integration.conftest import Api, delivered_events, post_to_s3
from tests.support.processing import process

TEXT = b"".join(b"line %06d of a text file that S3 already verified\n" % i for i in range(4000))  # ~200 KiB


def issue(api: Api, data: bytes, checksum: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"profile": "file", "filename": "notes.txt", "contentType": "text/plain", "size": len(data)}
    if checksum is not None:
        body["checksumSha256"] = checksum
    status, issued, _ = api.call("POST", "/uploads", body)
    assert status == 201, issued
    return issued


def bytes_read_processing(aws: Any, issued: dict[str, Any], data: bytes) -> int:
    """Bytes of object bodies the processor read while handling the upload's notification."""
    from directupload import wiring

    storage = wiring.storage()  # the processor's Storage adapter
    before = storage.bytes_read
    assert process(aws, issued["key"], len(data)) == {"batchItemFailures": []}
    return storage.bytes_read - before


def test_a_declared_checksum_s3_verified_is_recorded_without_reading_the_body(aws: Any, api: Api) -> None:
    from directupload.sniff import HEAD_BYTES

    # Given an upload whose client declared its SHA-256, posted with exactly those bytes
    sha256 = hashlib.sha256(TEXT).hexdigest()
    issued = issue(api, TEXT, sha256)
    assert post_to_s3(issued, TEXT).status_code == 204
    stored = aws.s3.get_object(Bucket=aws.bucket, Key=issued["key"], ChecksumMode="ENABLED")
    stored["Body"].close()
    assert stored["ChecksumType"] == "FULL_OBJECT"  # what S3 keeps of a POST with the checksum field

    # When it is processed
    read = bytes_read_processing(aws, issued, TEXT)

    # Then it is PROCESSED with S3's (the declared) SHA-256 and S3's size, and only heads were read
    _, record, _ = api.call("GET", f"/uploads/{issued['uploadId']}")
    assert record["status"] == "PROCESSED", record
    assert record["sha256"] == sha256 and record["size"] == len(TEXT)
    assert read > 0 and read % HEAD_BYTES == 0 and read <= 2 * HEAD_BYTES < len(TEXT)  # a head per attempt
    assert [e["detail"]["sha256"] for e in delivered_events(aws)] == [sha256]


def test_a_declared_checksum_the_bytes_do_not_match_is_refused_by_s3(aws: Any, api: Api) -> None:
    issued = issue(api, TEXT, hashlib.sha256(b"other bytes").hexdigest())

    reply = post_to_s3(issued, TEXT)

    assert reply.status_code == 400 and "BadDigest" in reply.text
    keys = [o["Key"] for o in aws.s3.list_objects_v2(Bucket=aws.bucket).get("Contents", [])]
    assert issued["key"] not in keys


def test_without_a_declared_checksum_every_byte_is_hashed(aws: Any, api: Api) -> None:
    issued = issue(api, TEXT, None)
    assert post_to_s3(issued, TEXT).status_code == 204

    read = bytes_read_processing(aws, issued, TEXT)

    _, record, _ = api.call("GET", f"/uploads/{issued['uploadId']}")
    assert record["status"] == "PROCESSED", record
    assert record["sha256"] == hashlib.sha256(TEXT).hexdigest()
    assert read >= len(TEXT)
