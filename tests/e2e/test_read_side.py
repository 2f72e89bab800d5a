"""The read side on the local stack as a user runs it: the swap attack over real HTTP, the
verified file downloaded, listed, deleted, and removed by retention when its time is up."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from tests.conftest import Stack, emulator_client, start_stack, stop_stack, wait_for_status
from tests.support.samples import png
from tests.support.waiting import eventually, upload_events

EXECUTABLE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00"


def issue(stack: Stack, data: bytes, filename: str, content_type: str, profile: str) -> dict[str, Any]:
    body: dict[str, Any] = {"profile": profile, "filename": filename, "contentType": content_type, "size": len(data)}
    reply = requests.post(f"{stack.url}/uploads", json=body, timeout=10)
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


def post(issued: dict[str, Any], data: bytes, filename: str = "f") -> None:
    content_type = issued["fields"]["Content-Type"]
    files = {"file": (filename, data, content_type)}
    reply = requests.post(issued["url"], data=issued["fields"], files=files, timeout=30)
    assert reply.status_code == 204, reply.text


def bucket_keys(stack: Stack) -> list[str]:
    s3 = emulator_client(stack)
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=stack.info["bucket"]).get("Contents", []))


def download(stack: Stack, upload_id: str, variant: str | None = None) -> tuple[dict[str, Any], requests.Response]:
    query = f"?variant={variant}" if variant else ""
    signed = requests.get(f"{stack.url}/uploads/{upload_id}/download{query}", timeout=10)
    assert signed.status_code == 200, signed.text
    return signed.json(), requests.get(signed.json()["url"], timeout=30)


def events_of(stack: Stack, upload_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The upload's events, once one at least arrived."""
    return [(e["detail-type"], e["detail"]) for e in upload_events(stack, upload_id)]


@pytest.mark.parametrize("late", ["an executable of the same size", "the same bytes again"])
def test_a_verified_upload_cannot_be_swapped_by_resending_its_presigned_post(local_stack: Stack, late: str) -> None:
    # Given a PNG that was uploaded and verified
    data = png(64, 48)
    issued = issue(local_stack, data, "me.png", "image/png", "avatar")
    post(issued, data)
    processed = wait_for_status(local_stack.url, issued["uploadId"])
    assert processed["status"] == "PROCESSED"

    # When the same presigned POST is sent again
    post(issued, (EXECUTABLE + b"\x00" * len(data))[: len(data)] if late.startswith("an") else data)

    # Then the late bytes are removed from staging and nothing a client or consumer sees changes
    eventually(
        lambda: not [k for k in bucket_keys(local_stack) if k.startswith(f"incoming/{issued['uploadId']}")],
        "staging emptied",
    )
    assert wait_for_status(local_stack.url, issued["uploadId"]) == processed
    signed, got = download(local_stack, issued["uploadId"])
    assert signed["sha256"] == processed["sha256"]
    assert got.content == data and hashlib.sha256(got.content).hexdigest() == processed["sha256"]
    assert got.headers["Content-Type"] == "image/png"
    assert [kind for kind, _ in events_of(local_stack, issued["uploadId"])] == ["Upload Processed"]


def test_a_processed_upload_is_downloaded_listed_and_deleted(local_stack: Stack) -> None:
    data = png(300, 200)
    issued = issue(local_stack, data, "garden.png", "image/png", "avatar")
    post(issued, data)
    assert wait_for_status(local_stack.url, issued["uploadId"])["status"] == "PROCESSED"

    _, thumb = download(local_stack, issued["uploadId"], "thumbnail")
    assert thumb.headers["Content-Type"] == "image/webp" and thumb.content[8:12] == b"WEBP"
    listed = requests.get(f"{local_stack.url}/uploads?limit=100", timeout=10).json()["items"]
    assert issued["uploadId"] in [item["uploadId"] for item in listed]

    deleted = requests.delete(f"{local_stack.url}/uploads/{issued['uploadId']}", timeout=10)
    assert deleted.status_code == 200 and deleted.json()["status"] == "DELETED"
    assert not [k for k in bucket_keys(local_stack) if issued["uploadId"] in k]
    listed = requests.get(f"{local_stack.url}/uploads?limit=100", timeout=10).json()["items"]
    assert issued["uploadId"] not in [item["uploadId"] for item in listed]
    eventually(lambda: "Upload Deleted" in [k for k, _ in events_of(local_stack, issued["uploadId"])], "the event")


# --- retention --------------------------------------------------------------------------------------

PROFILES = {
    "brief": {
        "contentTypes": ["image/png"],
        "maxSize": 1024 * 1024,
        "steps": ["verify", "image"],
        "retainDays": 1,
    }
}


@pytest.fixture(scope="module")
def retaining_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("retention"), "--parameter", f"ProfilesJson={json.dumps(PROFILES)}")
    yield stack
    stop_stack(stack)


def test_retention_removes_file_thumbnail_and_record_when_its_days_are_up(retaining_stack: Stack) -> None:
    stack = retaining_stack
    data = png(300, 200)
    issued = issue(stack, data, "brief.png", "image/png", "brief")
    post(issued, data)
    processed = wait_for_status(stack.url, issued["uploadId"])
    assert processed["status"] == "PROCESSED"
    assert datetime.fromisoformat(processed["retainUntil"]) - datetime.now(UTC) <= timedelta(days=1)
    assert [k for k in bucket_keys(stack) if issued["uploadId"] in k]  # the file and its thumbnail

    # When DynamoDB's TTL runs two days from now
    moment = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    swept = requests.post(f"{stack.url}/local/ttl-sweep", json={"at": moment}, timeout=30)
    assert swept.status_code == 200 and swept.json()["removed"] >= 1

    # Then the stream consumer removes every object and tells consumers why
    eventually(lambda: not [k for k in bucket_keys(stack) if issued["uploadId"] in k], "objects removed")
    eventually(lambda: "Upload Deleted" in [k for k, _ in events_of(stack, issued["uploadId"])], "the event")
    deleted = [d for k, d in events_of(stack, issued["uploadId"]) if k == "Upload Deleted"]
    assert len(deleted) == 1 and deleted[0]["reason"] == "retention" and deleted[0]["key"] == processed["key"]
    gone = requests.get(f"{stack.url}/uploads/{issued['uploadId']}", timeout=10).json()
    assert gone["status"] == "DELETED"
    assert requests.get(f"{stack.url}/uploads/{issued['uploadId']}/download", timeout=10).status_code == 409


def test_the_ttl_sweep_route_refuses_a_time_without_an_offset(retaining_stack: Stack) -> None:
    reply = requests.post(f"{retaining_stack.url}/local/ttl-sweep", json={"at": "2030-01-01T00:00:00"}, timeout=10)
    assert reply.status_code == 400 and reply.json()["status"] == 400
