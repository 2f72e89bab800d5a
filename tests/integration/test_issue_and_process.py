"""POST /uploads -> presigned POST -> S3 -> notification -> ProcessFunction -> status, with real boto3 against moto."""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import Api, delivered_events, png, post_to_s3
from tests.support.processing import process


def test_png_upload_is_processed_with_sha256_dimensions_and_thumbnail(aws: Any, api: Api) -> None:
    import hashlib

    data = png(40, 30)
    status, issued, _ = api.call(
        "POST",
        "/uploads",
        {"profile": "avatar", "filename": "holiday photo.png", "contentType": "image/png", "size": len(data)},
    )
    assert status == 201, issued
    assert issued["method"] == "POST"
    assert issued["key"] == f"incoming/{issued['uploadId']}/holiday photo.png"
    assert post_to_s3(issued, data).status_code == 204

    status, record, _ = api.call("GET", f"/uploads/{issued['uploadId']}")
    assert (status, record["status"]) == (200, "PENDING")

    assert process(aws, issued["key"], len(data)) == {"batchItemFailures": []}

    status, record, _ = api.call("GET", f"/uploads/{issued['uploadId']}")
    assert record["status"] == "PROCESSED"
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    assert record["result"]["width"] == 40 and record["result"]["height"] == 30
    assert record["result"]["contentType"] == "image/png"
    thumb = aws.s3.get_object(Bucket=aws.bucket, Key=record["result"]["thumbnail"]["key"])
    assert thumb["ContentType"] == "image/webp" and thumb["Body"].read()[8:12] == b"WEBP"

    events = delivered_events(aws)
    assert [e["detail-type"] for e in events] == ["Upload Processed"]
    assert events[0]["detail"]["uploadId"] == issued["uploadId"]
    assert events[0]["detail"]["sha256"] == record["sha256"]


def test_executable_declared_as_png_is_rejected_and_quarantined(aws: Any, api: Api) -> None:
    data = b"MZ\x90\x00\x03" + b"\x00" * 500
    _, issued, _ = api.call(
        "POST", "/uploads", {"profile": "avatar", "filename": "cat.png", "contentType": "image/png", "size": len(data)}
    )
    post_to_s3(issued, data)
    assert process(aws, issued["key"], len(data)) == {"batchItemFailures": []}

    _, record, _ = api.call("GET", f"/uploads/{issued['uploadId']}")
    assert record["status"] == "REJECTED"
    assert record["error"]["code"] == "type-mismatch"
    keys = [o["Key"] for o in aws.s3.list_objects_v2(Bucket=aws.bucket).get("Contents", [])]
    assert issued["key"] not in keys
    assert f"quarantine/{issued['uploadId']}/cat.png" in keys
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Rejected"]


def test_repeated_and_late_notifications_never_move_a_record_backwards(aws: Any, api: Api) -> None:
    data = png()
    _, issued, _ = api.call(
        "POST", "/uploads", {"profile": "avatar", "filename": "a.png", "contentType": "image/png", "size": len(data)}
    )
    post_to_s3(issued, data)
    process(aws, issued["key"], len(data))
    process(aws, issued["key"], len(data))  # S3 delivers at least once
    _, record, _ = api.call("GET", f"/uploads/{issued['uploadId']}")
    assert record["status"] == "PROCESSED"
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Processed"]


def test_key_with_spaces_and_plus_is_decoded_from_the_notification(aws: Any, api: Api) -> None:
    data = b"hello, world\n"
    _, issued, _ = api.call(
        "POST",
        "/uploads",
        {"profile": "file", "filename": "notes + ideas v2.txt", "contentType": "text/plain", "size": len(data)},
    )
    assert issued["key"].endswith("/notes + ideas v2.txt")
    post_to_s3(issued, data)
    process(aws, issued["key"], len(data))
    _, record, _ = api.call("GET", f"/uploads/{issued['uploadId']}")
    assert record["status"] == "PROCESSED", record
