"""The read side, with real boto3 against moto: verified objects stay verified (the swap
attack), downloads, listing, deletion and retention."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from tests.integration.conftest import Api, a_pdf, delivered_events, fail_calls, png, post_to_s3, upload
from tests.support.auth import use_jwt
from tests.support.processing import process
from tests.support.template import record_key, ttl_attribute

EXECUTABLE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00"


def keys_in(aws: Any, prefix: str = "") -> list[str]:
    return sorted(o["Key"] for o in aws.s3.list_objects_v2(Bucket=aws.bucket, Prefix=prefix).get("Contents", []))


def record(api: Api, upload_id: str) -> dict[str, Any]:
    status, body, _ = api.call("GET", f"/uploads/{upload_id}")
    assert status == 200, body
    return body


def fetch(api: Api, upload_id: str, variant: str | None = None) -> tuple[dict[str, Any], requests.Response]:
    """The download route's answer, and what its URL serves."""
    path = f"/uploads/{upload_id}/download" + (f"?variant={variant}" if variant else "")
    status, signed, _ = api.call("GET", path)
    assert status == 200, signed
    return signed, requests.get(signed["url"], timeout=30)


def padded(data: bytes, size: int) -> bytes:
    return (data + b"\x00" * size)[:size]


def before_call(service: str, operation: str, action: Callable[[], object], times: int = 1) -> None:
    """Run ``action`` just before the functions' own client sends ``operation`` (once, by default)."""
    from directupload import aws as clients

    left = [times]

    def hook(**_: Any) -> None:
        if left[0] > 0:
            left[0] -= 1
            action()

    clients.client(service).meta.events.register(f"before-call.{service}.{operation}", hook)


# --- verified objects stay verified -------------------------------------------------------------


def test_a_presigned_post_resent_after_processing_cannot_swap_the_verified_file(aws: Any, api: Api) -> None:
    # Given a PNG that was verified and processed
    data = png(40, 30)
    issued = upload(api, data, "me.png", "image/png", "avatar")
    assert process(aws, issued["key"], len(data)) == {"batchItemFailures": []}
    processed = record(api, issued["uploadId"])
    assert processed["status"] == "PROCESSED" and processed["key"].startswith("files/")
    assert keys_in(aws, "incoming/") == []  # staging is emptied on promotion

    # When the same still-valid POST is sent again with an executable of the same size
    assert post_to_s3(issued, padded(EXECUTABLE, len(data))).status_code == 204
    assert process(aws, issued["key"], len(data)) == {"batchItemFailures": []}

    # Then the late bytes are gone, nothing changed, and the download is what was verified
    assert keys_in(aws, "incoming/") == []
    assert record(api, issued["uploadId"]) == processed
    signed, got = fetch(api, issued["uploadId"])
    assert hashlib.sha256(got.content).hexdigest() == processed["sha256"] == signed["sha256"]
    assert got.content == data
    events = delivered_events(aws)
    assert [e["detail-type"] for e in events] == ["Upload Processed"]
    event_key = events[0]["detail"]["key"]
    stored = aws.s3.get_object(Bucket=aws.bucket, Key=event_key)["Body"].read()
    assert event_key == processed["key"] and hashlib.sha256(stored).hexdigest() == processed["sha256"]


def test_a_presigned_post_resent_after_a_rejection_leaves_nothing_in_staging(aws: Any, api: Api) -> None:
    bad = padded(EXECUTABLE, 200)
    issued = upload(api, bad, "x.png", "image/png", "avatar")
    process(aws, issued["key"], len(bad))
    assert record(api, issued["uploadId"])["status"] == "REJECTED"

    post_to_s3(issued, bad)  # the same bytes again: another write, another sequencer
    process(aws, issued["key"], len(bad), sequencer="0055AED6DCD90281F0")

    assert record(api, issued["uploadId"])["status"] == "REJECTED"
    assert keys_in(aws, "incoming/") == []
    assert keys_in(aws, "files/") == []
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Rejected"]


@pytest.mark.usefixtures("unscanned")  # the race is in verification; scans: test_scanning.py
def test_a_version_written_during_verification_is_never_promoted_over_by_the_older_one(aws: Any, api: Api) -> None:
    # Given upload A, and a second version B of the same size sent with the same grant while A
    # is being verified, just before A would be promoted
    a, b = b"version A of the notes\n", b"version B of the notes\n"
    issued = upload(api, a, "race.txt", "text/plain", "file")
    etag_a = str(aws.s3.head_object(Bucket=aws.bucket, Key=issued["key"])["ETag"]).strip('"')
    before_call("s3", "CopyObject", lambda: post_to_s3(issued, b))

    # When A's notification is handled, then B's
    assert process(aws, issued["key"], len(a), etag=etag_a) == {"batchItemFailures": []}
    assert record(api, issued["uploadId"])["status"] == "UPLOADED"  # A stood down: B decides
    assert process(aws, issued["key"], len(b)) == {"batchItemFailures": []}

    # Then exactly one verified object, B's, one terminal event, and nothing left in staging
    final = record(api, issued["uploadId"])
    assert final["status"] == "PROCESSED" and final["sha256"] == hashlib.sha256(b).hexdigest()
    assert fetch(api, issued["uploadId"])[1].content == b
    assert keys_in(aws, "incoming/") == []
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Processed"]


def test_bytes_written_after_the_outcome_but_before_staging_is_cleared_are_removed(aws: Any, api: Api) -> None:
    a = png(40, 30)
    issued = upload(api, a, "late.png", "image/png", "avatar")
    etag_a = str(aws.s3.head_object(Bucket=aws.bucket, Key=issued["key"])["ETag"]).strip('"')
    evil = padded(EXECUTABLE, len(a))
    # B lands after A was promoted and recorded, just before A's staging copy is deleted
    before_call("s3", "DeleteObject", lambda: post_to_s3(issued, evil))

    process(aws, issued["key"], len(a), etag=etag_a)
    process(aws, issued["key"], len(a))  # B's own notification

    final = record(api, issued["uploadId"])
    assert final["status"] == "PROCESSED" and final["sha256"] == hashlib.sha256(a).hexdigest()
    assert fetch(api, issued["uploadId"])[1].content == a
    assert keys_in(aws, "incoming/") == []
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Processed"]


# --- downloads ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "filename", "content_type", "data", "served_as", "disposition"),
    [
        ("avatar", "face.png", "image/png", png(20, 10), "image/png", "inline"),
        ("document", "report.pdf", "application/pdf", a_pdf(1), "application/pdf", "attachment"),
        ("file", "notes.txt", "text/plain", b"plain words\n", "text/plain", "attachment"),
        # an image the image step never decoded (the file profile has no image step) is an attachment
        ("file", "photo.png", "image/png", png(20, 10), "image/png", "attachment"),
    ],
)
def test_downloads_pin_the_sniffed_type_and_show_inline_only_decoded_raster_images(
    aws: Any,
    api: Api,
    profile: str,
    filename: str,
    content_type: str,
    data: bytes,
    served_as: str | None,
    disposition: str,
) -> None:
    issued = upload(api, data, filename, content_type, profile)
    process(aws, issued["key"], len(data))
    final = record(api, issued["uploadId"])
    assert final["status"] == "PROCESSED", final

    signed, got = fetch(api, issued["uploadId"])

    assert got.status_code == 200 and got.content == data
    assert signed["disposition"] == disposition
    assert got.headers["Content-Disposition"].startswith(disposition + ";")
    assert f"filename*=UTF-8''{filename}" in got.headers["Content-Disposition"]
    assert got.headers["Content-Type"] == signed["contentType"]
    if served_as is not None:
        assert signed["contentType"] == served_as
    assert signed["contentType"] != "image/svg+xml" or signed["disposition"] == "attachment"
    expires = datetime.fromisoformat(signed["expiresAt"])
    assert timedelta(0) < expires - datetime.now(UTC) <= timedelta(seconds=300)


def test_the_thumbnail_variant_is_a_webp_shown_inline_and_unknown_variants_are_404(aws: Any, api: Api) -> None:
    data = png(600, 400)
    issued = upload(api, data, "wide.png", "image/png", "avatar")
    process(aws, issued["key"], len(data))
    assert record(api, issued["uploadId"])["variants"] == ["thumbnail"]

    signed, got = fetch(api, issued["uploadId"], "thumbnail")
    assert got.content[8:12] == b"WEBP" and got.headers["Content-Type"] == "image/webp"
    assert signed["sha256"] == hashlib.sha256(got.content).hexdigest() and signed["size"] == len(got.content)
    assert signed["disposition"] == "inline" and "wide-thumbnail.webp" in got.headers["Content-Disposition"]

    for variant, expected in [("poster", 404), ("../files", 422), ("THUMB", 422)]:
        status, problem, _ = api.call("GET", f"/uploads/{issued['uploadId']}/download?variant={variant}")
        assert status == expected and problem["status"] == expected, problem


def test_only_a_processed_upload_can_be_downloaded(aws: Any, api: Api) -> None:
    data = png()
    _, issued, _ = api.call(
        "POST", "/uploads", {"profile": "avatar", "filename": "a.png", "contentType": "image/png", "size": len(data)}
    )
    status, problem, headers = api.call("GET", f"/uploads/{issued['uploadId']}/download")
    assert (status, headers["Content-Type"]) == (409, "application/problem+json")
    assert "PENDING" in problem["detail"]

    bad = padded(EXECUTABLE, 100)
    rejected = upload(api, bad, "b.png", "image/png", "avatar")
    process(aws, rejected["key"], len(bad))
    assert api.call("GET", f"/uploads/{rejected['uploadId']}/download")[0] == 409
    assert api.call("GET", f"/uploads/{'f' * 32}/download")[0] == 404
    assert api.call("GET", "/uploads/nope/download")[0] == 422


# --- listing --------------------------------------------------------------------------------------


@pytest.fixture
def owners(aws: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Api, Api]:
    monkeypatch.setenv("QUOTA_MAX_PENDING", "50")
    use_jwt(monkeypatch)
    return Api(claims={"sub": "alice"}), Api(claims={"sub": "bob"})


def issue(api: Api, filename: str, profile: str = "avatar", content_type: str = "image/png") -> str:
    status, issued, _ = api.call(
        "POST", "/uploads", {"profile": profile, "filename": filename, "contentType": content_type, "size": 10}
    )
    assert status == 201, issued
    return str(issued["uploadId"])


def test_listing_pages_through_the_callers_own_uploads_newest_first(owners: tuple[Api, Api]) -> None:
    alice, bob = owners
    mine = [issue(alice, f"a{i}.png") for i in range(5)]
    theirs = [issue(bob, "b.png")]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page, _ = alice.call("GET", f"/uploads{query}")
        assert status == 200, page
        assert len(page["items"]) <= 2
        seen += [item["uploadId"] for item in page["items"]]
        pages += 1
        cursor = page.get("nextCursor")
        if not cursor:
            break
    assert seen == list(reversed(mine)) and pages == 3
    status, page, _ = bob.call("GET", "/uploads")
    assert [item["uploadId"] for item in page["items"]] == theirs
    assert all("owner" not in item for item in page["items"])


def test_listing_filters_by_status_and_profile(aws: Any, owners: tuple[Api, Api]) -> None:
    alice, _ = owners
    pending = issue(alice, "p.png")
    document = issue(alice, "d.pdf", "document", "application/pdf")
    cancelled = issue(alice, "c.png")
    assert alice.call("DELETE", f"/uploads/{cancelled}")[1]["status"] == "CANCELLED"

    def ids(query: str) -> list[str]:
        status, page, _ = alice.call("GET", f"/uploads?{query}")
        assert status == 200, page
        return [item["uploadId"] for item in page["items"]]

    assert ids("status=CANCELLED") == [cancelled]
    assert ids("profile=document") == [document]
    assert ids("status=PENDING&profile=avatar") == [pending]
    assert ids("status=PROCESSED") == []


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("limit=0", 422),
        ("limit=101", 422),
        ("limit=ten", 422),
        # what Python's int() would read as a number is no count in a query string
        ("limit=%2B5", 422),
        ("limit=5_0", 422),
        ("limit=%205", 422),
        ("limit=%EF%BC%95", 422),  # a full-width digit
        ("status=DONE", 422),
        ("profile=Not A Profile", 422),
        ("cursor=not-a-cursor", 400),
        ("cursor=" + "A" * 300, 422),
        # well-formed base64 of JSON that names no position
        ("cursor=eyJ1IjoiLi4vLi4ifQ", 400),
        ("cursor=W10", 400),
    ],
)
def test_bad_listing_parameters_get_a_problem(owners: tuple[Api, Api], query: str, expected: int) -> None:
    alice, _ = owners
    status, problem, headers = alice.call("GET", f"/uploads?{query}")
    assert status == expected, problem
    assert headers["Content-Type"] == "application/problem+json" and problem["status"] == expected


def test_a_cursor_edited_to_name_another_owners_upload_reveals_nothing(owners: tuple[Api, Api]) -> None:
    import base64

    alice, bob = owners
    issue(alice, "a.png")
    secret = issue(bob, "secret.png")
    status, bobs, _ = bob.call("GET", "/uploads")
    created = bobs["items"][0]["createdAt"].replace("Z", "+00:00")
    forged = base64.urlsafe_b64encode(json.dumps({"u": secret, "c": created}).encode()).decode().rstrip("=")

    status, page, _ = alice.call("GET", f"/uploads?cursor={forged}")
    assert status in (200, 400)
    assert secret not in json.dumps(page)


# --- deletion -------------------------------------------------------------------------------------


def test_deleting_a_processed_upload_removes_every_object_and_announces_it_once(aws: Any, api: Api) -> None:
    data = png(300, 200)
    issued = upload(api, data, "gone.png", "image/png", "avatar")
    process(aws, issued["key"], len(data))
    delivered_events(aws)
    assert keys_in(aws) != []

    status, deleted, _ = api.call("DELETE", f"/uploads/{issued['uploadId']}")
    assert (status, deleted["status"]) == (200, "DELETED")
    assert keys_in(aws) == []  # verified file, thumbnail, staging: all gone
    again = api.call("DELETE", f"/uploads/{issued['uploadId']}")
    assert again[0] == 200 and again[1] == deleted  # idempotent: the same answer

    events = delivered_events(aws)
    assert [e["detail-type"] for e in events] == ["Upload Deleted"]
    assert events[0]["detail"]["reason"] == "owner" and events[0]["detail"]["uploadId"] == issued["uploadId"]
    assert record(api, issued["uploadId"])["status"] == "DELETED"
    assert api.call("GET", f"/uploads/{issued['uploadId']}/download")[0] == 409
    status, page, _ = api.call("GET", "/uploads")
    assert issued["uploadId"] not in [item["uploadId"] for item in page["items"]]


def test_deleting_a_rejected_upload_removes_its_quarantined_bytes(aws: Any, api: Api) -> None:
    bad = padded(EXECUTABLE, 100)
    issued = upload(api, bad, "q.png", "image/png", "avatar")
    process(aws, issued["key"], len(bad))
    assert keys_in(aws, "quarantine/") != []

    assert api.call("DELETE", f"/uploads/{issued['uploadId']}")[1]["status"] == "DELETED"
    assert keys_in(aws) == []


def test_an_upload_being_processed_cannot_be_deleted_yet(aws: Any, api: Api) -> None:
    from directupload import wiring

    data = png()
    issued = upload(api, data, "busy.png", "image/png", "avatar")
    record_ = wiring.store().get(issued["uploadId"])
    assert record_ is not None
    now = datetime.now(UTC)
    wiring.store().claim(
        record_, "e" * 32, by="in-flight", now=now, until=now + timedelta(minutes=5)
    )  # UPLOADED, as in flight

    status, problem, _ = api.call("DELETE", f"/uploads/{issued['uploadId']}")
    assert status == 409 and "UPLOADED" in problem["detail"]


def test_someone_elses_upload_cannot_be_downloaded_or_deleted(aws: Any, owners: tuple[Api, Api]) -> None:
    alice, bob = owners
    upload_id = issue(alice, "mine.png")
    for method, path in [("GET", f"/uploads/{upload_id}/download"), ("DELETE", f"/uploads/{upload_id}")]:
        status, problem, _ = bob.call(method, path)
        assert status == 404 and problem["detail"] == f"no upload {upload_id!r}"
    assert alice.call("GET", f"/uploads/{upload_id}")[1]["status"] == "PENDING"


def test_a_deletion_that_stops_half_way_is_finished_by_the_next_delete(aws: Any, api: Api) -> None:
    data = png()
    issued = upload(api, data, "half.png", "image/png", "avatar")
    process(aws, issued["key"], len(data))
    delivered_events(aws)

    # the write that would make the record DELETED keeps failing, after the objects are gone
    def to_deleted(params: dict[str, Any]) -> bool:
        return {"S": "DELETED"} in params.get("ExpressionAttributeValues", {}).values()

    left = fail_calls("dynamodb", "UpdateItem", 1, when=to_deleted)

    status, problem, headers = api.call("DELETE", f"/uploads/{issued['uploadId']}")
    assert (status, headers.get("Retry-After"), left) == (503, "1", [0])  # busy, not the client's fault
    assert problem["status"] == 503
    assert record(api, issued["uploadId"])["status"] == "DELETING"
    assert api.call("GET", f"/uploads/{issued['uploadId']}/download")[0] == 409

    status, deleted, _ = api.call("DELETE", f"/uploads/{issued['uploadId']}")
    assert (status, deleted["status"]) == (200, "DELETED")
    assert keys_in(aws) == []
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Deleted"]


def test_bytes_sent_after_a_deletion_are_removed_and_change_nothing(aws: Any, api: Api) -> None:
    data = png()
    issued = upload(api, data, "undead.png", "image/png", "avatar")
    process(aws, issued["key"], len(data))
    api.call("DELETE", f"/uploads/{issued['uploadId']}")
    delivered_events(aws)

    post_to_s3(issued, data)  # the grant is still valid
    process(aws, issued["key"], len(data), sequencer="0055AED6DCD90281F0")

    assert record(api, issued["uploadId"])["status"] == "DELETED"
    assert keys_in(aws) == []
    assert delivered_events(aws) == []


# --- retention ------------------------------------------------------------------------------------


@pytest.fixture
def retained(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    from directupload import wiring

    profiles = {
        "avatar": {
            "contentTypes": ["image/png"],
            "maxSize": 5 * 1024 * 1024,
            "steps": ["verify", "image"],
            "retainDays": 1,
        }
    }
    monkeypatch.setenv("PROFILES_JSON", json.dumps(profiles))
    wiring.reset()
    return aws


def removals(aws: Any) -> dict[str, Any]:
    """Every REMOVE record on the uploads table's stream, as Lambda hands them to RetentionFunction."""
    from local.lambda_runtime import LocalFunction
    from local.retention import StreamPoller

    streams = __import__("tests.conftest", fromlist=["aws_client"]).aws_client("dynamodbstreams")
    arn = aws.dynamodb.describe_table(TableName=aws.resources.uploads_table)["Table"]["LatestStreamArn"]
    poller = StreamPoller(streams, arn, LocalFunction("RetentionFunction", lambda e, c: None), [], 25, 10)
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    return {"Records": [poller._lambda_record(r) for r in records if r["eventName"] == "REMOVE"]}


def test_a_lapsed_retention_removes_object_derived_files_and_record_with_one_event(retained: Any, api: Api) -> None:
    from handlers import retention
    from local.lambda_runtime import LocalContext
    from local.retention import TtlSweeper

    aws = retained
    data = png(300, 200)
    issued = upload(api, data, "brief.png", "image/png", "avatar")
    process(aws, issued["key"], len(data))
    final = record(api, issued["uploadId"])
    retain_until = datetime.fromisoformat(final["retainUntil"])
    assert timedelta(hours=23) < retain_until - datetime.now(UTC) <= timedelta(days=1)
    delivered_events(aws)

    # When DynamoDB's TTL removes the record (the clock played 2 days forward)
    sweeper = TtlSweeper(aws.dynamodb, aws.resources.uploads_table, attribute=ttl_attribute())
    assert sweeper.sweep(datetime.now(UTC) + timedelta(days=2)) >= 1
    event = removals(aws)
    assert event["Records"], "the stream has the removal"
    # and the stream consumer runs, twice (a retried batch), then once more
    for _ in range(2):
        assert retention.lambda_handler(event, LocalContext("RetentionFunction")) == {"batchItemFailures": []}

    # Then nothing of the upload is left, and consumers heard of it once
    assert keys_in(aws) == []
    assert record(api, issued["uploadId"])["status"] == "DELETED"  # a tombstone, for a day
    deleted = delivered_events(aws)
    assert [(e["detail-type"], e["detail"]["reason"]) for e in deleted] == [("Upload Deleted", "retention")]
    assert deleted[0]["detail"]["key"] == final["key"]


def test_no_processed_upload_expires_without_a_retention(aws: Any, api: Api) -> None:
    data = png()
    issued = upload(api, data, "kept.png", "image/png", "avatar")
    process(aws, issued["key"], len(data))
    item = aws.dynamodb.get_item(TableName=aws.resources.uploads_table, Key=record_key(issued["uploadId"]))["Item"]
    assert ttl_attribute() not in item and "retainUntil" not in record(api, issued["uploadId"])


# --- findings of the attacker review, kept as regression tests --------------------------------------

CORPUS = __import__("pathlib").Path(__file__).resolve().parent.parent / "corpus"


@pytest.mark.usefixtures("unscanned")  # the race is in verification; scans: test_scanning.py
def test_bytes_with_the_same_md5_cannot_be_promoted_in_place_of_the_verified_ones(aws: Any, api: Api) -> None:
    # Given two different files with one MD5 (hence one S3 ETag): a classic collision pair
    tail = b"\nthe same tail for both; anything can follow a colliding prefix\n" * 4
    good = (CORPUS / "md5-collision-a.bin").read_bytes() + tail
    evil = (CORPUS / "md5-collision-b.bin").read_bytes() + tail
    assert hashlib.md5(good).digest() == hashlib.md5(evil).digest() and good != evil
    issued = upload(api, good, "report.bin", "application/octet-stream", "file")

    # When the grant is used again with the twin after `good` was verified, just before promotion
    before_call("s3", "CopyObject", lambda: post_to_s3(issued, evil))
    assert process(aws, issued["key"], len(good)) == {"batchItemFailures": []}
    process(aws, issued["key"], len(evil), sequencer="0055AED6DCD90281F0")  # the twin's own notification

    # Then whatever is recorded is what is served, byte for byte
    final = record(api, issued["uploadId"])
    assert final["status"] == "PROCESSED"
    signed, got = fetch(api, issued["uploadId"])
    assert hashlib.sha256(got.content).hexdigest() == final["sha256"] == signed["sha256"]
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Processed"]
    assert keys_in(aws, "incoming/") == []


def test_an_attempt_that_does_not_end_processed_leaves_no_derived_objects(aws: Any, api: Api) -> None:
    # Given a PNG whose thumbnail was stored, then a non-image of the same size sent before promotion
    a = png(300, 200)
    issued = upload(api, a, "me.png", "image/png", "avatar")
    etag_a = str(aws.s3.head_object(Bucket=aws.bucket, Key=issued["key"])["ETag"]).strip('"')
    before_call("s3", "CopyObject", lambda: post_to_s3(issued, padded(EXECUTABLE, len(a))))
    process(aws, issued["key"], len(a), etag=etag_a)
    process(aws, issued["key"], len(a))
    assert record(api, issued["uploadId"])["status"] == "REJECTED"

    assert keys_in(aws, "derived/") == []
    assert api.call("DELETE", f"/uploads/{issued['uploadId']}")[1]["status"] == "DELETED"
    assert keys_in(aws) == []


def test_identical_bytes_resent_just_after_the_outcome_send_no_second_event(aws: Any, api: Api) -> None:
    from directupload import wiring
    from directupload.processing.pipeline import ObjectRef

    data = png(40, 30)
    issued = upload(api, data, "me.png", "image/png", "avatar")

    def attacker() -> None:  # same bytes, same grant: same ETag, a new write (new sequencer)
        post_to_s3(issued, data)
        etag = str(aws.s3.head_object(Bucket=aws.bucket, Key=issued["key"])["ETag"]).strip('"')
        wiring.processor().process(ObjectRef(aws.bucket, issued["key"], len(data), etag=etag, sequencer="00FF"))

    before_call("s3", "DeleteObject", attacker)  # between the PROCESSED write and the staging copy's removal
    process(aws, issued["key"], len(data))

    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Processed"]
    assert keys_in(aws, "incoming/") == []


def test_an_upload_deleted_before_its_outcome_is_announced_is_announced_processed_first(aws: Any, api: Api) -> None:
    data = png(40, 30)
    issued = upload(api, data, "me.png", "image/png", "avatar")
    process(aws, issued["key"], len(data))
    assert record(api, issued["uploadId"])["status"] == "PROCESSED"
    # the owner deletes it at once, before the stream has carried the outcome to the publisher
    assert api.call("DELETE", f"/uploads/{issued['uploadId']}")[1]["status"] == "DELETED"
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Processed", "Upload Deleted"]


ODD_QUERIES = [
    "cursor=%ff%fe",
    "cursor=====",
    "limit=1&limit=2",
    "status=",
    "profile=",
    "limit=-1",
    "limit=1e2",
    "limit=99999999999999999999999",
    "status=deleting",
    "cursor=" + __import__("base64").urlsafe_b64encode(b"[" * 180).decode().rstrip("="),
    "cursor=" + __import__("base64").urlsafe_b64encode(b'{"u":"' + b"a" * 32 + b'","c":"\xff"}').decode().rstrip("="),
]


@pytest.mark.parametrize("query", ODD_QUERIES)
def test_odd_listing_queries_get_a_problem_never_a_500(aws: Any, api: Api, query: str) -> None:
    status, body, headers = api.call("GET", f"/uploads?{query}")
    assert status < 500, body
    assert status == 200 or headers["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("profile", "filename", "content_type", "data", "saved_as"),
    [
        # a PNG named as a page: shown as the image it is, saved as one
        ("avatar", "x.html", "image/png", png(8, 8), "x.png"),
        # text whose name says HTML: served as text/plain, saved as text
        ("file", "page.html", "text/plain", b"plain words, whatever the name says\n", "page.txt"),
        # bytes nothing recognises, named to run: saved so that nothing runs them
        ("file", "setup.exe", "application/octet-stream", b"\x00\x01 unknown bytes", "setup.exe.bin"),
    ],
)
def test_a_download_is_saved_under_a_name_that_says_what_it_was_checked_as(
    aws: Any, api: Api, profile: str, filename: str, content_type: str, data: bytes, saved_as: str
) -> None:
    issued = upload(api, data, filename, content_type, profile)
    process(aws, issued["key"], len(data))
    assert record(api, issued["uploadId"])["status"] == "PROCESSED"

    signed, got = fetch(api, issued["uploadId"])

    assert signed["filename"] == saved_as
    assert f"filename*=UTF-8''{saved_as}" in got.headers["Content-Disposition"]
    assert got.content == data


def test_the_name_a_client_without_rfc_8187_saves_under_is_checked_too(aws: Any, api: Api) -> None:
    # a letter that is not ASCII inside the extension: dropping it would name an .exe
    data = b"\x00\x01 bytes nothing recognises"
    issued = upload(api, data, "pay.eéxe", "application/octet-stream", "file")
    process(aws, issued["key"], len(data))

    signed, got = fetch(api, issued["uploadId"])

    header = got.headers["Content-Disposition"]
    assert 'filename="pay.eexe"' in header, header
    assert "filename*=UTF-8''pay.e%C3%A9xe" in header
    assert signed["filename"] == "pay.eéxe" and got.content == data


SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.domain)</script></svg>'


def test_active_content_is_refused_unless_a_profile_opts_in_and_then_only_downloaded(
    aws: Any, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from directupload import wiring

    # `image/*` does not admit SVG: refused at issue
    body = {"profile": "file", "filename": "logo.svg", "contentType": "image/svg+xml", "size": len(SVG)}
    status, problem, _ = api.call("POST", "/uploads", body)
    assert status == 415, problem
    # and SVG or HTML bytes declared as text are refused when processed
    for name, data in [("logo.txt", SVG), ("page.txt", b"<!DOCTYPE html><html><body onload=alert(1)>")]:
        issued = upload(api, data, name, "text/plain", "file")
        process(aws, issued["key"], len(data))
        final = record(api, issued["uploadId"])
        assert (final["status"], final["error"]["code"]) == ("REJECTED", "type-mismatch"), name
        assert "active content" in final["error"]["message"]

    # a profile that opts in takes SVG, and serves it as an attachment only
    logos = {"logo": {"contentTypes": ["image/svg+xml"], "maxSize": 100_000, "allowActiveContent": True}}
    monkeypatch.setenv("PROFILES_JSON", json.dumps(logos))
    wiring.reset()
    issued = upload(api, SVG, "logo.svg", "image/svg+xml", "logo")
    process(aws, issued["key"], len(SVG))
    assert record(api, issued["uploadId"])["status"] == "PROCESSED"
    signed, got = fetch(api, issued["uploadId"])
    assert signed["disposition"] == "attachment" and got.headers["Content-Disposition"].startswith("attachment;")
    assert got.content == SVG


def test_text_that_only_mentions_a_tag_is_still_text(aws: Any, api: Api) -> None:
    data = b"To embed it, write <script src=app.js></script> in your page.\n"
    issued = upload(api, data, "howto.txt", "text/plain", "file")
    process(aws, issued["key"], len(data))
    assert record(api, issued["uploadId"])["status"] == "PROCESSED"


def test_a_rejected_object_over_the_single_copy_limit_is_quarantined_in_parts(aws: Any, api: Api) -> None:
    from directupload import wiring

    # CopyObject stops at 5 GiB; here the limit is 5 MiB so a 6 MiB object takes the same path
    wiring.storage().single_copy_limit = 5 * 1024 * 1024
    data = padded(EXECUTABLE, 6 * 1024 * 1024)
    issued = upload(api, data, "big.bin", "application/octet-stream", "file")

    assert process(aws, issued["key"], len(data)) == {"batchItemFailures": []}

    assert record(api, issued["uploadId"])["status"] == "REJECTED"
    quarantined = f"quarantine/{issued['uploadId']}/big.bin"
    assert keys_in(aws) == [quarantined]
    assert aws.s3.get_object(Bucket=aws.bucket, Key=quarantined)["Body"].read() == data
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Rejected"]


def test_an_object_over_the_single_copy_limit_is_promoted_in_parts_unchanged(aws: Any, api: Api) -> None:
    from directupload import wiring

    wiring.storage().single_copy_limit = 5 * 1024 * 1024  # as 5 GiB is for CopyObject
    data = b"0123456789abcdef" * (6 * 1024 * 1024 // 16)
    issued = upload(api, data, "big.txt", "text/plain", "file")

    assert process(aws, issued["key"], len(data)) == {"batchItemFailures": []}

    final = record(api, issued["uploadId"])
    assert final["status"] == "PROCESSED" and final["key"] == f"files/{issued['uploadId']}/big.txt"
    assert hashlib.sha256(fetch(api, issued["uploadId"])[1].content).hexdigest() == final["sha256"]
    assert keys_in(aws, "incoming/") == []
