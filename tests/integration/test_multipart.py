"""Multipart uploads through every route, against moto over real HTTP: issue -> sign parts -> PUT
them to S3 with requests -> list -> complete -> S3's own notifications -> ProcessFunction -> status."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit

import pytest
import requests

from tests.integration.conftest import Api, delivered_events
from tests.support.processing import deliver_ingest_queue

MiB = 1024 * 1024
PART = 16 * MiB  # the `video` profile's part size; it goes multipart from 16 MiB
# An ISO BMFF `ftyp` box: what makes the sniffer see video/mp4.
FTYP = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"


def mp4_bytes(size: int) -> bytes:
    return FTYP + os.urandom(size - len(FTYP))


def issue_video(api: Api, size: int, filename: str = "clip.mp4") -> dict[str, Any]:
    status, issued, _ = api.call(
        "POST", "/uploads", {"profile": "video", "filename": filename, "contentType": "video/mp4", "size": size}
    )
    assert status == 201, issued
    return issued


def sign(api: Api, upload_id: str, numbers: list[int]) -> dict[int, str]:
    status, body, _ = api.call("POST", f"/uploads/{upload_id}/parts", {"partNumbers": numbers})
    assert status == 200, body
    return {p["partNumber"]: p["url"] for p in body["parts"]}


def put_part(url: str, data: bytes) -> str:
    """What a client does with a part URL: PUT the bytes, keep the ETag S3 answers."""
    reply = requests.put(url, data=data, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.headers["ETag"].strip('"')


def chunks(data: bytes, part_size: int = PART) -> dict[int, bytes]:
    return {i // part_size + 1: data[i : i + part_size] for i in range(0, len(data), part_size)}


def upload_parts(api: Api, upload_id: str, data: bytes, part_size: int = PART) -> list[dict[str, Any]]:
    pieces = chunks(data, part_size)
    urls = sign(api, upload_id, list(pieces))
    return [{"partNumber": n, "etag": put_part(urls[n], piece)} for n, piece in pieces.items()]


def created_events(aws: Any, key: str) -> list[str]:
    """The ObjectCreated notifications waiting in the ingest queue for ``key`` (left in place)."""
    names = []
    reply = aws.sqs.receive_message(
        QueueUrl=aws.resources.ingest_queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=0
    )
    for message in reply.get("Messages", []):
        for record in json.loads(message["Body"]).get("Records", []):
            if unquote_plus(record["s3"]["object"]["key"]) == key:  # S3 URL-encodes keys (+ for space)
                names.append(record["eventName"])
    return names


@pytest.fixture
def jwt_api(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    from directupload import wiring

    monkeypatch.setenv("AUTH_MODE", "jwt")
    wiring.reset()
    return aws


# --- the happy path ------------------------------------------------------------------------------


def test_multipart_upload_goes_to_processed_with_one_event(aws: Any, api: Api) -> None:
    # Given a video just over one part
    data = mp4_bytes(PART + 3 * MiB + 17)
    issued = issue_video(api, len(data), "holiday clip.mp4")
    assert issued["multipart"] == {"partSize": PART, "partCount": 2}
    assert "url" not in issued and "fields" not in issued
    assert issued["key"] == f"incoming/{issued['uploadId']}/holiday clip.mp4"
    upload_id = issued["uploadId"]

    # When the parts go to S3 (second one first: order does not matter) and the upload completes
    pieces = chunks(data)
    urls = sign(api, upload_id, [2, 1])
    etags = {n: put_part(urls[n], pieces[n]) for n in (2, 1)}
    status, listed, _ = api.call("GET", f"/uploads/{upload_id}/parts")
    assert status == 200
    assert listed["parts"] == [
        {"partNumber": 1, "etag": etags[1], "size": PART},
        {"partNumber": 2, "etag": etags[2], "size": len(data) - PART},
    ]
    status, record, _ = api.call(
        "POST",
        f"/uploads/{upload_id}/complete",
        {"parts": [{"partNumber": n, "etag": f'"{etags[n]}"'} for n in (1, 2)]},
    )
    assert status == 200, record
    assert record["status"] == "PENDING" and record["multipart"] == {"partSize": PART, "partCount": 2}

    # Then S3's notifications (moto sends two) make exactly one outcome and one event
    assert created_events(aws, issued["key"]) == ["ObjectCreated:Put", "ObjectCreated:CompleteMultipartUpload"]
    assert all(reply == {"batchItemFailures": []} for reply in deliver_ingest_queue(aws, scan=True))
    status, record, _ = api.call("GET", f"/uploads/{upload_id}")
    assert record["status"] == "PROCESSED", record
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    assert record["size"] == len(data) and record["result"]["contentType"] == "video/mp4"
    events = delivered_events(aws)
    assert [e["detail-type"] for e in events] == ["Upload Processed"]
    assert events[0]["detail"]["uploadId"] == upload_id


def test_etags_are_sent_to_s3_as_s3_listed_them_however_the_client_quoted_them(aws: Any, api: Api) -> None:
    from directupload import aws as clients

    data = mp4_bytes(PART + 100)
    issued = issue_video(api, len(data))
    etags = {p["partNumber"]: p["etag"] for p in upload_parts(api, issued["uploadId"], data)}
    sent: list[list[str]] = []

    def spy(params: dict[str, Any], **_: Any) -> None:
        sent.append([part["ETag"] for part in params["MultipartUpload"]["Parts"]])

    s3 = clients.client("s3")
    s3.meta.events.register("provide-client-params.s3.CompleteMultipartUpload", spy)
    try:
        quoted = [{"partNumber": n, "etag": f' "{etags[n]}" '} for n in (1, 2)]
        status, record, _ = api.call("POST", f"/uploads/{issued['uploadId']}/complete", {"parts": quoted})
    finally:
        s3.meta.events.unregister("provide-client-params.s3.CompleteMultipartUpload", spy)

    assert status == 200, record
    assert sent == [[f'"{etags[1]}"', f'"{etags[2]}"']]  # S3 takes exactly these (moto is laxer)


def test_a_lost_complete_reply_can_be_retried(aws: Any, api: Api) -> None:
    data = mp4_bytes(PART + 100)
    upload_id = issue_video(api, len(data))["uploadId"]
    parts = upload_parts(api, upload_id, data)
    first = api.call("POST", f"/uploads/{upload_id}/complete", {"parts": parts})
    again = api.call("POST", f"/uploads/{upload_id}/complete", {"parts": parts})
    assert first[0] == again[0] == 200
    assert first[1]["uploadId"] == again[1]["uploadId"] == upload_id
    # and once processed (the staging object promoted and gone), a replay answers from the record
    deliver_ingest_queue(aws, scan=True)
    late = api.call("POST", f"/uploads/{upload_id}/complete", {"parts": parts})
    assert (late[0], late[1]["status"]) == (200, "PROCESSED")


# --- signing parts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("numbers", "why"),
    [
        ([], "empty"),
        ([0], "below 1"),
        ([3], "beyond the part count"),
        ([10_001], "beyond S3's 10,000"),
        ([1, 2, 1], "duplicate"),
        (list(range(1, 1002)), "over 1000 per request"),
        ("1", "not a list"),
    ],
)
def test_sign_parts_refuses_bad_part_numbers(aws: Any, api: Api, numbers: Any, why: str) -> None:
    upload_id = issue_video(api, PART + 1)["uploadId"]
    status, body, headers = api.call("POST", f"/uploads/{upload_id}/parts", {"partNumbers": numbers})
    assert status == 422, (why, body)
    assert headers["Content-Type"] == "application/problem+json" and body["status"] == 422


def test_the_same_parts_can_be_signed_again_any_time(aws: Any, api: Api) -> None:
    data = mp4_bytes(PART + 1000)
    upload_id = issue_video(api, len(data))["uploadId"]
    pieces = chunks(data)

    first = sign(api, upload_id, [1])
    etag_1 = put_part(first[1], pieces[1])
    # after a part landed, before the others: sign it again and send it again
    again = sign(api, upload_id, [1, 2])
    assert put_part(again[1], pieces[1]) == etag_1
    etag_2 = put_part(again[2], pieces[2])
    assert set(sign(api, upload_id, [2])) == {2}

    status, record, _ = api.call(
        "POST",
        f"/uploads/{upload_id}/complete",
        {"parts": [{"partNumber": 1, "etag": etag_1}, {"partNumber": 2, "etag": etag_2}]},
    )
    assert status == 200, record


def test_a_single_post_upload_has_no_parts(aws: Any, api: Api) -> None:
    status, issued, _ = api.call(
        "POST", "/uploads", {"profile": "video", "filename": "short.mp4", "contentType": "video/mp4", "size": 1000}
    )
    assert status == 201 and issued["method"] == "POST" and "multipart" not in issued
    for method, path, body in [
        ("POST", "parts", {"partNumbers": [1]}),
        ("GET", "parts", None),
        ("POST", "complete", {"parts": [{"partNumber": 1, "etag": "x"}]}),
    ]:
        status, problem, _ = api.call(method, f"/uploads/{issued['uploadId']}/{path}", body)
        assert status == 409, problem
        assert "single POST" in problem["detail"]


# --- completing ----------------------------------------------------------------------------------


def test_complete_with_a_wrong_etag_is_refused_and_the_upload_stays_open(aws: Any, api: Api) -> None:
    data = mp4_bytes(PART + 10)
    upload_id = issue_video(api, len(data))["uploadId"]
    parts = upload_parts(api, upload_id, data)

    wrong = [parts[0], {"partNumber": 2, "etag": "0" * 32}]
    status, problem, _ = api.call("POST", f"/uploads/{upload_id}/complete", {"parts": wrong})
    assert status == 409, problem
    assert "ETags do not match" in problem["detail"] and "[2]" in problem["detail"]

    assert api.call("GET", f"/uploads/{upload_id}")[1]["status"] == "PENDING"
    assert api.call("POST", f"/uploads/{upload_id}/complete", {"parts": parts})[0] == 200


def test_complete_with_a_part_s3_never_received_is_refused(aws: Any, api: Api) -> None:
    data = mp4_bytes(PART + 10)
    upload_id = issue_video(api, len(data))["uploadId"]
    urls = sign(api, upload_id, [1])
    etag = put_part(urls[1], data[:PART])

    status, problem, _ = api.call(
        "POST",
        f"/uploads/{upload_id}/complete",
        {"parts": [{"partNumber": 1, "etag": etag}, {"partNumber": 2, "etag": "f" * 32}]},
    )
    assert status == 409, problem
    assert "S3 has not received parts [2]" in problem["detail"]


@pytest.mark.parametrize(
    ("listed", "why"),
    [
        ([1], "a part left out"),
        ([2, 1], "out of order"),
        ([1, 1, 2], "a part twice"),
        ([1, 2, 3], "a part beyond the plan"),
    ],
)
def test_complete_needs_every_planned_part_once_in_order(aws: Any, api: Api, listed: list[int], why: str) -> None:
    upload_id = issue_video(api, PART + 10)["uploadId"]
    body = {"parts": [{"partNumber": n, "etag": "a" * 32} for n in listed]}
    status, problem, _ = api.call("POST", f"/uploads/{upload_id}/complete", body)
    assert status == 422, (why, problem)
    assert "parts 1..2, each once, in order" in problem["detail"]


def test_complete_refuses_parts_that_do_not_add_up_to_the_declared_size(aws: Any, api: Api) -> None:
    declared = PART + 5000
    upload_id = issue_video(api, declared)["uploadId"]
    # the client sends less than it declared
    parts = upload_parts(api, upload_id, mp4_bytes(PART + 4000))

    status, problem, _ = api.call("POST", f"/uploads/{upload_id}/complete", {"parts": parts})
    assert status == 422, problem
    assert problem["detail"] == f"the parts hold {PART + 4000} bytes, the upload declared {declared}"
    assert aws.s3.list_objects_v2(Bucket=aws.bucket).get("KeyCount") == 0


def test_complete_refuses_a_first_part_under_s3s_minimum(aws: Any, api: Api) -> None:
    size = PART + 10
    upload_id = issue_video(api, size)["uploadId"]
    data = mp4_bytes(size)
    urls = sign(api, upload_id, [1, 2])
    # the right total, split wrongly: S3 would refuse it (EntityTooSmall); we say why first
    parts = [
        {"partNumber": 1, "etag": put_part(urls[1], data[:MiB])},
        {"partNumber": 2, "etag": put_part(urls[2], data[MiB:])},
    ]
    status, problem, _ = api.call("POST", f"/uploads/{upload_id}/complete", {"parts": parts})
    assert status == 422, problem
    assert "under S3's 5 MiB minimum" in problem["detail"]


def test_an_object_larger_than_declared_is_rejected_in_processing(aws: Any, api: Api) -> None:
    # Given parts that hold more than declared, assembled behind the API's back (a race, a bug)
    declared = PART + 10
    issued = issue_video(api, declared)
    data = mp4_bytes(PART + 2000)
    parts = upload_parts(api, issued["uploadId"], data)
    s3_upload_id = aws.s3.list_multipart_uploads(Bucket=aws.bucket)["Uploads"][0]["UploadId"]
    aws.s3.complete_multipart_upload(
        Bucket=aws.bucket,
        Key=issued["key"],
        UploadId=s3_upload_id,
        MultipartUpload={"Parts": [{"PartNumber": p["partNumber"], "ETag": f'"{p["etag"]}"'} for p in parts]},
    )

    # When S3's notifications reach the processor
    deliver_ingest_queue(aws, scan=True)

    # Then the upload is rejected, the object is not left where it could be served, one event
    _, record, _ = api.call("GET", f"/uploads/{issued['uploadId']}")
    assert record["status"] == "REJECTED"
    assert record["error"]["code"] == "size-mismatch"
    keys = [o["Key"] for o in aws.s3.list_objects_v2(Bucket=aws.bucket).get("Contents", [])]
    assert issued["key"] not in keys
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Rejected"]


# --- cancelling, and uploads S3 no longer has -----------------------------------------------------


def test_a_cancelled_upload_is_aborted_in_s3_and_closed_for_parts(aws: Any, api: Api) -> None:
    data = mp4_bytes(PART + 10)
    upload_id = issue_video(api, len(data))["uploadId"]
    parts = upload_parts(api, upload_id, data)

    status, record, _ = api.call("DELETE", f"/uploads/{upload_id}")
    assert (status, record["status"]) == (200, "CANCELLED")
    assert "Uploads" not in aws.s3.list_multipart_uploads(Bucket=aws.bucket)

    for method, path, body in [
        ("POST", "parts", {"partNumbers": [1]}),
        ("GET", "parts", None),
        ("POST", "complete", {"parts": parts}),
    ]:
        status, problem, _ = api.call(method, f"/uploads/{upload_id}/{path}", body)
        assert status == 409, problem
        assert "CANCELLED" in problem["detail"]
    # a second DELETE removes the cancelled upload's record for good
    status, record, _ = api.call("DELETE", f"/uploads/{upload_id}")
    assert (status, record["status"]) == (200, "DELETED")


def test_an_upload_s3_no_longer_has_answers_409(aws: Any, api: Api) -> None:
    # the bucket's lifecycle rule aborted it, say
    issued = issue_video(api, PART + 10)
    upload_id = issued["uploadId"]
    sign(api, upload_id, [1])  # S3's multipart upload exists from the first parts call on
    s3_upload_id = aws.s3.list_multipart_uploads(Bucket=aws.bucket)["Uploads"][0]["UploadId"]
    aws.s3.abort_multipart_upload(Bucket=aws.bucket, Key=issued["key"], UploadId=s3_upload_id)

    status, problem, _ = api.call("GET", f"/uploads/{upload_id}/parts")
    assert status == 409 and problem["detail"] == "S3 no longer has this multipart upload"
    status, problem, _ = api.call(
        "POST",
        f"/uploads/{upload_id}/complete",
        {"parts": [{"partNumber": 1, "etag": "a" * 32}, {"partNumber": 2, "etag": "b" * 32}]},
    )
    assert status == 409 and problem["detail"] == "S3 no longer has this multipart upload"
    # cancelling still works: there is nothing left to abort
    assert api.call("DELETE", f"/uploads/{upload_id}")[1]["status"] == "CANCELLED"


def test_storage_maps_a_missing_multipart_upload_as_s3_and_moto_answer_it(aws: Any) -> None:
    """S3 answers NoSuchUpload (404); moto answers CompleteMultipartUpload with a bare 500."""
    import boto3
    from botocore.config import Config

    from directupload.storage import NoSuchUpload, Storage

    client = boto3.client("s3", config=Config(signature_version="s3v4", retries={"max_attempts": 1}))
    storage = Storage(aws.bucket, client)
    with pytest.raises(NoSuchUpload):
        storage.list_parts("incoming/x/y", "no-such-upload")
    with pytest.raises(NoSuchUpload):
        storage.complete_multipart("incoming/x/y", "no-such-upload", [(1, "a" * 32)])
    storage.abort_multipart("incoming/x/y", "no-such-upload")  # nothing to abort is fine


# --- owners --------------------------------------------------------------------------------------


def test_someone_elses_multipart_upload_answers_exactly_like_a_missing_one(jwt_api: Any) -> None:
    alice, bob = Api(claims={"sub": "alice"}), Api(claims={"sub": "bob"})
    data = mp4_bytes(PART + 10)
    upload_id = issue_video(alice, len(data))["uploadId"]
    parts = upload_parts(alice, upload_id, data)
    missing_id = "0" * 32

    for method, suffix, body in [
        ("GET", "", None),
        ("POST", "/parts", {"partNumbers": [1]}),
        ("GET", "/parts", None),
        ("POST", "/complete", {"parts": parts}),
        ("DELETE", "", None),
    ]:
        theirs = bob.call(method, f"/uploads/{upload_id}{suffix}", body)
        missing = bob.call(method, f"/uploads/{missing_id}{suffix}", body)
        assert theirs[0] == missing[0] == 404, theirs
        assert theirs[1] == json.loads(json.dumps(missing[1]).replace(missing_id, upload_id))
        assert theirs[2] == missing[2]

    # bob changed nothing: alice's upload is open and completes
    assert alice.call("GET", f"/uploads/{upload_id}/parts")[1]["parts"][0]["etag"] == parts[0]["etag"]
    assert alice.call("POST", f"/uploads/{upload_id}/complete", {"parts": parts})[0] == 200


# --- part checksums: S3 refuses a part whose bytes differ -----------------------------------------


def b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_part_checksums_are_signed_into_each_url_and_named_at_completion(
    aws: Any, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a video whose client says it sends part checksums
    data = mp4_bytes(PART + 2 * MiB + 5)
    status, issued, _ = api.call(
        "POST",
        "/uploads",
        {
            "profile": "video",
            "filename": "clip.mp4",
            "contentType": "video/mp4",
            "size": len(data),
            "checksumSha256": hashlib.sha256(data).hexdigest(),
            "partChecksums": True,
        },
    )
    assert status == 201, issued
    assert issued["multipart"] == {"partSize": PART, "partCount": 2, "checksumAlgorithm": "SHA256"}
    upload_id = issued["uploadId"]

    # When it asks for the part URLs with each part's SHA-256
    pieces = chunks(data)
    checksums = {n: b64_sha256(piece) for n, piece in pieces.items()}
    status, body, _ = api.call(
        "POST",
        f"/uploads/{upload_id}/parts",
        {"parts": [{"partNumber": n, "checksumSha256": c} for n, c in checksums.items()]},
    )
    assert status == 200, body
    urls = {p["partNumber"]: p["url"] for p in body["parts"]}

    # Then each URL signs the checksum header (S3 refuses a body that does not hash to it, and a
    # request with another header value breaks the signature), besides the exact length
    for n, url in urls.items():
        query = parse_qs(urlsplit(url).query)
        assert query["X-Amz-SignedHeaders"] == ["content-length;host;x-amz-checksum-sha256"], n
        assert "x-amz-sdk-checksum-algorithm" not in url.lower() and "x-amz-checksum-crc" not in url.lower()

    # And completing names each part's checksum, which processing follows with the whole-file SHA-256
    completed: list[dict[str, Any]] = []
    from directupload import wiring

    client = wiring.upload_service().storage.client
    original = client.complete_multipart_upload

    def spy(**kwargs: Any) -> Any:
        completed.extend(kwargs["MultipartUpload"]["Parts"])
        return original(**kwargs)

    monkeypatch.setattr(client, "complete_multipart_upload", spy)
    etags = {
        n: requests.put(urls[n], data=piece, headers={"x-amz-checksum-sha256": checksums[n]}, timeout=60)
        .headers["ETag"]
        .strip('"')
        for n, piece in pieces.items()
    }
    parts = [{"partNumber": n, "etag": etags[n], "checksumSha256": checksums[n]} for n in (1, 2)]
    status, view, _ = api.call("POST", f"/uploads/{upload_id}/complete", {"parts": parts})
    assert status == 200, view
    assert [p.get("ChecksumSHA256") for p in completed] == [checksums[1], checksums[2]]
    deliver_ingest_queue(aws, scan=True)
    status, final, _ = api.call("GET", f"/uploads/{upload_id}")
    assert final["status"] == "PROCESSED", final
    assert final["sha256"] == hashlib.sha256(data).hexdigest()


def test_an_upload_with_part_checksums_needs_one_for_every_part(aws: Any, api: Api) -> None:
    status, issued, _ = api.call(
        "POST",
        "/uploads",
        {"profile": "video", "filename": "c.mp4", "contentType": "video/mp4", "size": PART + 1, "partChecksums": True},
    )
    assert status == 201, issued
    upload_id = issued["uploadId"]
    good = b64_sha256(b"part one")
    for body, why in [
        ({"partNumbers": [1]}, "no checksums at all"),
        ({"parts": [{"partNumber": 1, "checksumSha256": good}, {"partNumber": 2}]}, "part 2 has none"),
    ]:
        status, problem, headers = api.call("POST", f"/uploads/{upload_id}/parts", body)
        assert status == 422, why
        assert headers["Content-Type"] == "application/problem+json", why
        assert "partChecksums" in problem["detail"], why


@pytest.mark.parametrize(
    ("checksum", "why"),
    [
        ("a" * 64, "hex, not base64"),
        ("A" * 42 + "B=", "not canonical base64 (padding bits set)"),
        (base64.b64encode(b"x" * 31).decode(), "31 bytes"),
        (base64.b64encode(b"x" * 33).decode(), "33 bytes"),
        ("!" * 43 + "=", "not base64"),
        (12345, "not a string"),
    ],
)
def test_a_malformed_part_checksum_is_a_422_problem(aws: Any, api: Api, checksum: Any, why: str) -> None:
    status, issued, _ = api.call(
        "POST",
        "/uploads",
        {"profile": "video", "filename": "c.mp4", "contentType": "video/mp4", "size": PART + 1, "partChecksums": True},
    )
    status, _, headers = api.call(
        "POST", f"/uploads/{issued['uploadId']}/parts", {"parts": [{"partNumber": 1, "checksumSha256": checksum}]}
    )
    assert status == 422, why
    assert headers["Content-Type"] == "application/problem+json", why


def test_an_upload_without_part_checksums_signs_as_before_and_refuses_checksums(aws: Any, api: Api) -> None:
    issued = issue_video(api, PART + 1)
    assert "checksumAlgorithm" not in issued["multipart"]
    urls = sign(api, issued["uploadId"], [1, 2])
    assert parse_qs(urlsplit(urls[1]).query)["X-Amz-SignedHeaders"] == ["content-length;host"]
    status, problem, _ = api.call(
        "POST",
        f"/uploads/{issued['uploadId']}/parts",
        {"parts": [{"partNumber": 1, "checksumSha256": b64_sha256(b"x")}]},
    )
    assert status == 422 and "without partChecksums" in problem["detail"]
    status, problem, _ = api.call(
        "POST", f"/uploads/{issued['uploadId']}/parts", {"partNumbers": [1], "parts": [{"partNumber": 1}]}
    )
    assert status == 422, problem  # one or the other


# --- S3's multipart upload is created by the first parts call ---------------------------------------


def s3_multipart_ids(aws: Any) -> list[str]:
    return [u["UploadId"] for u in aws.s3.list_multipart_uploads(Bucket=aws.bucket).get("Uploads", [])]


def url_upload_id(url: str) -> str:
    return parse_qs(urlsplit(url).query)["uploadId"][0]


def test_issuing_creates_nothing_in_s3_until_the_first_parts_call(aws: Any, api: Api) -> None:
    # Given a 5 GiB upload just issued
    issued = issue_video(api, 5 * 1024 * MiB)
    upload_id = issued["uploadId"]
    assert issued["multipart"]["partCount"] == 320
    assert s3_multipart_ids(aws) == []

    # Then its parts can be listed (none), it cannot be completed, and no S3 call was needed
    status, listed, _ = api.call("GET", f"/uploads/{upload_id}/parts")
    assert (status, listed["parts"]) == (200, [])
    status, problem, _ = api.call(
        "POST", f"/uploads/{upload_id}/complete", {"parts": [{"partNumber": 1, "etag": "a" * 32}]}
    )
    assert status == 422, problem  # all 320 parts must be named
    parts = [{"partNumber": n, "etag": "a" * 32} for n in range(1, 321)]
    status, problem, _ = api.call("POST", f"/uploads/{upload_id}/complete", {"parts": parts})
    assert status == 409 and "has not received parts" in problem["detail"], problem
    assert s3_multipart_ids(aws) == []

    # When the first parts call comes, S3's multipart upload is created, once
    first = sign(api, upload_id, [1, 2])
    created = s3_multipart_ids(aws)
    assert len(created) == 1
    again = sign(api, upload_id, [3])
    assert s3_multipart_ids(aws) == created
    assert {url_upload_id(u) for u in [*first.values(), *again.values()]} == set(created)


def test_an_upload_never_started_cancels_with_nothing_to_abort(aws: Any, api: Api) -> None:
    upload_id = issue_video(api, PART + 10)["uploadId"]

    status, record, _ = api.call("DELETE", f"/uploads/{upload_id}")

    assert (status, record["status"]) == (200, "CANCELLED")
    assert s3_multipart_ids(aws) == []
    status, problem, _ = api.call("POST", f"/uploads/{upload_id}/parts", {"partNumbers": [1]})
    assert status == 409 and "CANCELLED" in problem["detail"]
    assert s3_multipart_ids(aws) == []


def test_concurrent_first_parts_calls_create_one_multipart_upload(aws: Any, api: Api) -> None:
    import threading

    from directupload import wiring
    from handlers.contract import ANONYMOUS

    # Given two first parts calls that both find no S3 multipart upload on the record and both
    # create one in S3 before either records it (a barrier holds each until the other created)
    upload_id = issue_video(api, 3 * PART)["uploadId"]
    storage = wiring.upload_service().storage
    create = storage.create_multipart
    both_created = threading.Barrier(2, timeout=30)

    def create_then_wait(*args: Any, **kwargs: Any) -> str:
        s3_upload_id = create(*args, **kwargs)
        both_created.wait()
        return s3_upload_id

    results: dict[int, Any] = {}
    service = wiring.upload_service()  # the service itself: the HTTP router is one request at a time

    def first_call(n: int) -> None:
        try:
            results[n] = service.sign_parts(ANONYMOUS, upload_id, [n])
        except Exception as exc:
            results[n] = exc

    storage.create_multipart = create_then_wait  # type: ignore[method-assign]
    try:
        threads = [threading.Thread(target=first_call, args=(n,)) for n in (1, 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        del storage.create_multipart

    # Then both are signed for the same S3 multipart upload, the loser's own was aborted
    assert all(isinstance(results.get(n), list) for n in (1, 2)), results
    signed = {url_upload_id(results[n][0].url) for n in (1, 2)}
    assert len(signed) == 1 and s3_multipart_ids(aws) == list(signed)

    # and the upload completes through it
    data = mp4_bytes(3 * PART)
    urls = sign(api, upload_id, [1, 2, 3])
    parts = [{"partNumber": n, "etag": put_part(urls[n], piece)} for n, piece in chunks(data).items()]
    status, record, _ = api.call("POST", f"/uploads/{upload_id}/complete", {"parts": parts})
    assert status == 200, record
    deliver_ingest_queue(aws, scan=True)
    status, record, _ = api.call("GET", f"/uploads/{upload_id}")
    assert record["status"] == "PROCESSED" and record["sha256"] == hashlib.sha256(data).hexdigest()


def test_expiry_times_have_one_format_on_every_route(aws: Any, api: Api) -> None:
    """expiresAt reads the same from POST /uploads, POST /uploads/{id}/parts and the record: ISO
    8601 in UTC with "Z" (a client parses one format, whichever route it came from)."""
    import re

    issued = issue_video(api, PART + 1000)
    status, parts, _ = api.call("POST", f"/uploads/{issued['uploadId']}/parts", {"partNumbers": [1]})
    assert status == 200, parts
    status, record, _ = api.call("GET", f"/uploads/{issued['uploadId']}")
    assert status == 200, record
    utc = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
    for where, value in (
        ("POST /uploads", issued["expiresAt"]),
        ("POST /parts", parts["parts"][0]["expiresAt"]),
        ("GET /uploads/{id}", record["expiresAt"]),
    ):
        assert utc.match(value), f"{where}: {value}"
