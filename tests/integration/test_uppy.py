"""The routes @uppy/aws-s3 6.x calls in companion mode, with its request shapes (as its
src/s3-client/CompanionS3.ts sends them), against moto over real HTTP."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from tests.integration.conftest import Api, delivered_events, fail_calls, png
from tests.integration.test_multipart import MiB, mp4_bytes
from tests.support.auth import use_jwt
from tests.support.processing import deliver_ingest_queue

UPPY_CHUNK = 5 * MiB  # Uppy's minimum chunk size, and what it uses for files under 50 GB


@pytest.fixture
def jwt_api(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    use_jwt(monkeypatch)
    return aws


def params_query(filename: str, file_type: str, meta: dict[str, Any]) -> str:
    """CompanionS3.putObject: filename, type, then metadata[k] = String(v)."""
    pairs = {"filename": filename, "type": file_type}
    pairs.update({f"metadata[{k}]": "null" if v is None else str(v) for k, v in meta.items()})
    return "/s3/params?" + urlencode(pairs)


def uppy_meta(name: str, file_type: str, **extra: Any) -> dict[str, Any]:
    """What Uppy puts in every file's meta, plus what the page adds."""
    return {"relativePath": None, "name": name, "type": file_type, **extra}


def post_form(params: dict[str, Any], data: bytes) -> requests.Response:
    """buildPostPolicyForm: every field, then the file last."""
    return requests.post(params["url"], data=params["fields"], files={"file": ("blob", data)}, timeout=60)


def put(url: str, data: bytes) -> str:
    reply = requests.put(url, data=data, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.headers["ETag"].strip('"')  # sanitizeETag


def upload_id_of(key: str) -> str:
    return key.split("/")[-2]  # (incoming/{id}/{name}, or incoming/scan/{id}/{name})


def assert_problem(reply: tuple[int, dict[str, Any], dict[str, str]], status: int) -> dict[str, Any]:
    code, body, headers = reply
    assert code == status, body
    assert headers["Content-Type"] == "application/problem+json" and body["status"] == status
    return body


# --- one POST: GET /s3/params ----------------------------------------------------------------------


def test_params_sign_a_post_that_uppy_sends_and_processing_accepts(aws: Any, api: Api) -> None:
    data = mp4_bytes(2 * MiB)
    meta = uppy_meta("beach.mp4", "video/mp4", profile="video", size=len(data), caption="at the beach")
    # Uppy goes multipart only over 100 MiB by default: smaller files come here, for one POST
    status, params, headers = api.call("GET", params_query("beach.mp4", "video/mp4", meta))

    assert status == 200, params
    assert headers["Content-Type"] == "application/json"
    assert params["method"] == "POST" and params["expires"] == 900
    key = params["fields"]["key"]
    upload_id = upload_id_of(key)
    assert key == f"incoming/{upload_id}/beach.mp4"
    assert params["fields"]["x-amz-meta-caption"] == "at the beach"
    assert not any(name.lower().endswith(("relativepath", "-name", "-size", "-profile")) for name in params["fields"])

    assert post_form(params, data).status_code == 204
    deliver_ingest_queue(aws, scan=True)
    _, record, _ = api.call("GET", f"/uploads/{upload_id}")
    assert record["status"] == "PROCESSED", record
    assert record["profile"] == "video" and record["metadata"] == {"caption": "at the beach"}
    assert record["sha256"] == hashlib.sha256(data).hexdigest()


def test_params_pin_the_declared_size_in_the_policy(aws: Any, api: Api) -> None:
    meta = uppy_meta("notes.txt", "text/plain", size=11)
    status, params, _ = api.call("GET", params_query("notes.txt", "text/plain", meta))
    assert status == 200
    from tests.policy_checker import decode_policy

    conditions = decode_policy(params["fields"])["conditions"]
    assert ["content-length-range", 11, 11] in conditions


def test_params_choose_one_post_even_where_the_profile_would_go_multipart(aws: Any, api: Api) -> None:
    # `video` goes multipart from 16 MiB; Uppy decides by its own threshold, so it gets a POST
    meta = uppy_meta("long.mp4", "video/mp4", profile="video", size=40 * MiB)
    status, params, _ = api.call("GET", params_query("long.mp4", "video/mp4", meta))
    assert status == 200 and params["method"] == "POST" and "url" in params


def test_params_without_a_size_admit_the_profiles_range_and_record_the_real_size(aws: Any, api: Api) -> None:
    from tests.policy_checker import decode_policy

    # Given stock Uppy, which sends no size: only the profile in its meta
    data = png(33, 21)
    status, params, _ = api.call(
        "GET", params_query("tiny.png", "image/png", uppy_meta("tiny.png", "image/png", profile="avatar"))
    )
    assert status == 200, params
    # Then the policy admits the profile's whole range, and the quota is charged at its ceiling
    conditions = decode_policy(params["fields"])["conditions"]
    assert ["content-length-range", 1, 5 * MiB] in conditions
    upload_id = upload_id_of(params["fields"]["key"])
    assert api.call("GET", f"/uploads/{upload_id}")[1]["size"] == 5 * MiB
    assert quota_bytes(aws, "anonymous") == 5 * MiB

    # When the small file is sent and processed
    assert post_form(params, data).status_code == 204
    deliver_ingest_queue(aws, scan=True)

    # Then the record holds the real size, and the quota keeps only what was used
    record = api.call("GET", f"/uploads/{upload_id}")[1]
    assert (record["status"], record["size"]) == ("PROCESSED", len(data))
    assert quota_bytes(aws, "anonymous") == len(data)
    assert [e["detail"]["size"] for e in delivered_events(aws)] == [len(data)]


def test_a_post_without_a_size_still_cannot_exceed_the_profile(aws: Any, api: Api) -> None:
    # moto does not enforce the policy's range (S3 does): processing refuses what S3 would have
    status, params, _ = api.call(
        "GET", params_query("big.png", "image/png", uppy_meta("big.png", "image/png", profile="avatar"))
    )
    assert status == 200
    post_form(params, png(8, 8) + b"\x00" * (5 * MiB))
    deliver_ingest_queue(aws, scan=True)
    record = api.call("GET", f"/uploads/{upload_id_of(params['fields']['key'])}")[1]
    assert record["status"] == "REJECTED" and record["error"]["code"] == "size-mismatch"


def quota_bytes(aws: Any, owner: str) -> int:
    item = aws.dynamodb.get_item(TableName=aws.resources.uploads_table, Key={"pk": {"S": f"owner#{owner}"}})["Item"]
    return int(item["bytes"]["N"])


def test_params_default_to_the_file_profile_and_drop_uppys_random_key_prefix(aws: Any, api: Api) -> None:
    query = params_query(
        "1b4e28ba-2fa1-11d2-883f-0016d3cca427-report final.csv", "text/csv; charset=utf-8", {"size": 20}
    )
    status, params, _ = api.call("GET", query)
    assert status == 200, params
    assert params["fields"]["key"].endswith("/report final.csv")
    assert params["fields"]["Content-Type"] == "text/csv"
    _, record, _ = api.call("GET", f"/uploads/{upload_id_of(params['fields']['key'])}")
    assert record["profile"] == "file"


@pytest.mark.parametrize(
    ("meta", "file_type", "status"),
    [
        ({"profile": "nope", "size": 10}, "text/plain", 422),
        ({"profile": "avatar", "size": 10}, "text/plain", 415),
        ({"profile": "avatar", "size": 6 * MiB}, "image/png", 413),
        ({"size": "ten"}, "text/plain", 422),
        ({"size": "9" * 4301}, "text/plain", 422),  # (more digits than int() reads)
        ({"size": 10, "Not-A-Key": "x"}, "text/plain", 422),
    ],
)
def test_params_refuse_what_the_profile_refuses(
    aws: Any, api: Api, meta: dict[str, Any], file_type: str, status: int
) -> None:
    assert_problem(api.call("GET", params_query("f", file_type, meta)), status)


def test_params_need_a_filename(aws: Any, api: Api) -> None:
    assert_problem(api.call("GET", "/s3/params?type=text/plain&metadata[size]=3"), 422)


@pytest.mark.parametrize(
    "meta", [{"size": "9" * 4301}, {"size": 10, "profile": ["video"]}, {"profile": 7}, {"size": 0}, {"size": "0"}]
)
def test_multipart_refuses_a_size_or_profile_it_cannot_use(aws: Any, api: Api, meta: dict[str, Any]) -> None:
    reply = api.call("POST", "/s3/multipart", {"filename": "a.bin", "type": "text/plain", "metadata": meta})
    body = assert_problem(reply, 422)
    assert "[" not in body["detail"], body  # the field is named, not a Python rendering of it


# --- multipart: POST /s3/multipart and the rest ------------------------------------------------------


def create(api: Api, filename: str, file_type: str, meta: dict[str, Any]) -> dict[str, Any]:
    status, created, headers = api.call(
        "POST", "/s3/multipart", {"filename": filename, "metadata": meta, "type": file_type}
    )
    assert status == 200, created
    assert headers["Content-Type"] == "application/json"
    return created


def sign_part(api: Api, created: dict[str, Any], number: int) -> dict[str, Any]:
    query = urlencode({"key": created["key"]})
    status, signed, _ = api.call("GET", f"/s3/multipart/{created['uploadId']}/{number}?{query}")
    assert status == 200, signed
    return signed


def upload_chunks(api: Api, created: dict[str, Any], data: bytes, chunk: int = UPPY_CHUNK) -> list[dict[str, Any]]:
    """S3Uploader: each chunk in turn, sign its URL, PUT it, keep the ETag."""
    parts = []
    for i, start in enumerate(range(0, len(data), chunk)):
        signed = sign_part(api, created, i + 1)
        parts.append({"PartNumber": i + 1, "ETag": put(signed["url"], data[start : start + chunk])})
    return parts


def complete(api: Api, created: dict[str, Any], parts: list[dict[str, Any]]) -> tuple[int, dict[str, Any], Any]:
    query = urlencode({"key": created["key"]})
    return api.call("POST", f"/s3/multipart/{created['uploadId']}/complete?{query}", {"parts": parts})


def test_multipart_in_uppys_own_chunks_for_a_file_the_profile_would_post(aws: Any, api: Api) -> None:
    # Given an 11 MiB file: `file` signs a single POST under 64 MiB, Uppy was told to go multipart
    data = mp4_bytes(11 * MiB + 123)
    created = create(api, "clip.mp4", "video/mp4", uppy_meta("clip.mp4", "video/mp4", album="summer"))
    upload_id = created["uploadId"]
    assert created["key"] == f"incoming/scan/{upload_id}/clip.mp4" and created["bucket"] == aws.bucket
    _, record, _ = api.call("GET", f"/uploads/{upload_id}")
    assert record["profile"] == "file" and record["status"] == "PENDING"
    assert record["size"] == 100 * MiB  # no size declared: the profile's maximum is the ceiling

    # When Uppy signs and sends its 5 MiB chunks, lists them (as on resume) and completes
    signed = sign_part(api, created, 1)
    assert set(signed) == {"url", "expires"} and signed["expires"] == 900
    parts = upload_chunks(api, created, data)
    status, listed, _ = api.call("GET", f"/s3/multipart/{upload_id}?{urlencode({'key': created['key']})}")
    assert status == 200
    assert listed == [
        {"PartNumber": p["PartNumber"], "ETag": f'"{p["ETag"]}"', "Size": size}
        for p, size in zip(parts, [UPPY_CHUNK, UPPY_CHUNK, MiB + 123], strict=True)
    ]
    status, done, _ = complete(api, created, parts)

    # Then the answer is Companion's, the real total is the size, and processing accepts it
    assert status == 200, done
    assert done["key"] == created["key"] and done["bucket"] == aws.bucket
    assert done["location"].endswith(f"/{aws.bucket}/incoming/scan/{upload_id}/clip.mp4")
    assert api.call("GET", f"/uploads/{upload_id}")[1]["size"] == len(data)
    deliver_ingest_queue(aws, scan=True)
    _, record, _ = api.call("GET", f"/uploads/{upload_id}")
    assert record["status"] == "PROCESSED", record
    assert record["sha256"] == hashlib.sha256(data).hexdigest() and record["metadata"] == {"album": "summer"}
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Processed"]


def test_multipart_resume_lists_what_s3_has_with_etags_uppy_can_complete_with(aws: Any, api: Api) -> None:
    data = mp4_bytes(6 * MiB)
    created = create(api, "a.mp4", "video/mp4", uppy_meta("a.mp4", "video/mp4", profile="video"))
    first = put(sign_part(api, created, 1)["url"], data[:UPPY_CHUNK])
    # the page reloads; Golden Retriever kept {uploadId, key}; Uppy lists the parts
    listed: Any = api.call("GET", f"/s3/multipart/{created['uploadId']}?key={created['key']}")[1]  # a JSON array
    assert [(p["PartNumber"], p["ETag"]) for p in listed] == [(1, f'"{first}"')]
    second = put(sign_part(api, created, 2)["url"], data[UPPY_CHUNK:])
    # listParts hands back S3's quoted ETag; the new part's is sanitised: both complete
    parts = [{"PartNumber": 1, "ETag": listed[0]["ETag"]}, {"PartNumber": 2, "ETag": second}]
    assert complete(api, created, parts)[0] == 200


def test_multipart_with_a_declared_size_refuses_parts_beyond_it(aws: Any, api: Api) -> None:
    data = mp4_bytes(6 * MiB)
    created = create(api, "a.mp4", "video/mp4", uppy_meta("a.mp4", "video/mp4", profile="video", size=6 * MiB - 1))
    parts = upload_chunks(api, created, data)
    # S3 holds more than the ceiling: no more part URLs for it
    assert "ceiling" in assert_problem(api.call("GET", f"/s3/multipart/{created['uploadId']}/2"), 413)["detail"]
    problem = assert_problem(complete(api, created, parts), 413)
    assert f"{6 * MiB} bytes" in problem["detail"]
    # and the oversize upload is aborted in S3, its parts gone
    assert "Uploads" not in aws.s3.list_multipart_uploads(Bucket=aws.bucket)


def test_multipart_refuses_chunks_under_s3s_minimum(aws: Any, api: Api) -> None:
    created = create(api, "a.mp4", "video/mp4", uppy_meta("a.mp4", "video/mp4"))
    parts = upload_chunks(api, created, mp4_bytes(3 * MiB), chunk=MiB)
    problem = assert_problem(complete(api, created, parts), 422)
    assert "5 MiB minimum" in problem["detail"]


def test_multipart_complete_needs_the_parts_in_order(aws: Any, api: Api) -> None:
    created = create(api, "a.mp4", "video/mp4", uppy_meta("a.mp4", "video/mp4"))
    parts = upload_chunks(api, created, mp4_bytes(6 * MiB))
    assert_problem(complete(api, created, list(reversed(parts))), 422)
    assert_problem(complete(api, created, []), 422)
    assert_problem(complete(api, created, [{"PartNumber": 1, "ETag": "x" * 32}, parts[1]]), 409)


def test_abort_answers_json_and_closes_the_upload(aws: Any, api: Api) -> None:
    created = create(api, "a.mp4", "video/mp4", uppy_meta("a.mp4", "video/mp4"))
    status, body, headers = api.call("DELETE", f"/s3/multipart/{created['uploadId']}?key={created['key']}")
    assert (status, body, headers["Content-Type"]) == (200, {}, "application/json")
    assert "Uploads" not in aws.s3.list_multipart_uploads(Bucket=aws.bucket)
    assert api.call("GET", f"/uploads/{created['uploadId']}")[1]["status"] == "CANCELLED"
    assert_problem(api.call("GET", f"/s3/multipart/{created['uploadId']}/1?key={created['key']}"), 409)
    # an abort repeated answers the same, and changes nothing
    again = api.call("DELETE", f"/s3/multipart/{created['uploadId']}?key={created['key']}")
    assert (again[0], again[1]) == (200, {})
    assert api.call("GET", f"/uploads/{created['uploadId']}")[1]["status"] == "CANCELLED"


def test_an_abort_that_failed_half_way_is_finished_when_it_is_sent_again(aws: Any, api: Api) -> None:
    created = create(api, "a.mp4", "video/mp4", uppy_meta("a.mp4", "video/mp4"))
    sign_part(api, created, 1)  # S3's multipart upload exists from here
    abort = f"/s3/multipart/{created['uploadId']}?key={created['key']}"

    def owner_holds_a_slot() -> bool:
        items = aws.dynamodb.scan(TableName=aws.resources.uploads_table)["Items"]
        (owner,) = [i for i in items if i["pk"]["S"].startswith("owner#")]
        return created["uploadId"] in owner.get("open", {}).get("M", {})

    # Given an abort that cancelled the upload but could not give its quota slot back (throttled)
    assert owner_holds_a_slot()
    fail_calls("dynamodb", "UpdateItem", 1, when=lambda params: "REMOVE #open" in str(params.get("UpdateExpression")))
    status, _, _ = api.call("DELETE", abort)
    assert status == 503
    assert api.call("GET", f"/uploads/{created['uploadId']}")[1]["status"] == "CANCELLED"
    assert owner_holds_a_slot()

    # When it is sent again, it answers as the first would have, and finishes the job
    assert api.call("DELETE", abort)[:2] == (200, {})
    assert not owner_holds_a_slot()
    assert "Uploads" not in aws.s3.list_multipart_uploads(Bucket=aws.bucket)


def test_s3s_multipart_upload_is_created_by_the_first_part_uppy_signs(aws: Any, api: Api) -> None:
    # Given Uppy's createMultipartUpload: our uploadId and key, and nothing in S3 yet
    created = create(api, "a.mp4", "video/mp4", uppy_meta("a.mp4", "video/mp4"))
    assert set(created) == {"key", "uploadId", "bucket"}
    assert "Uploads" not in aws.s3.list_multipart_uploads(Bucket=aws.bucket)
    query = urlencode({"key": created["key"]})
    status, listed, _ = api.call("GET", f"/s3/multipart/{created['uploadId']}?{query}")
    assert (status, listed) == (200, [])  # a resume before any part: nothing to skip

    # When Uppy signs its first part, S3's multipart upload is made (once) and holds the part
    signed = sign_part(api, created, 1)
    sign_part(api, created, 2)
    (s3_upload,) = aws.s3.list_multipart_uploads(Bucket=aws.bucket)["Uploads"]
    assert s3_upload["Key"] == created["key"]
    etag = put(signed["url"], mp4_bytes(UPPY_CHUNK))
    status, listed, _ = api.call("GET", f"/s3/multipart/{created['uploadId']}?{query}")
    assert isinstance(listed, list)
    assert [(p["PartNumber"], p["ETag"]) for p in listed] == [(1, f'"{etag}"')]

    # Then an abort aborts it in S3
    status, body, _ = api.call("DELETE", f"/s3/multipart/{created['uploadId']}?{query}")
    assert (status, body) == (200, {})
    assert "Uploads" not in aws.s3.list_multipart_uploads(Bucket=aws.bucket)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"type": "video/mp4", "metadata": {}}, 422),  # no filename
        ({"filename": "a.mp4", "type": "video/mp4", "metadata": {"profile": "avatar"}}, 415),
        ({"filename": "a.mp4", "type": "video/mp4", "metadata": {"profile": "nope"}}, 422),
        ({"filename": "a.mp4", "type": "video/mp4", "metadata": {"size": 6 * 1024**3, "profile": "video"}}, 413),
        ({"filename": "a.mp4", "type": "video/mp4", "metadata": {"size": -1}}, 422),
    ],
)
def test_create_multipart_refuses_what_the_profile_refuses(
    aws: Any, api: Api, body: dict[str, Any], status: int
) -> None:
    assert_problem(api.call("POST", "/s3/multipart", body), status)


def test_part_numbers_are_checked(aws: Any, api: Api) -> None:
    # no size: the profile's maximum is the ceiling (100 MiB), which Uppy's chunks (5 MiB at
    # least) fill in 20 parts
    created = create(api, "a.mp4", "video/mp4", uppy_meta("a.mp4", "video/mp4"))
    for bad in ("0", "21", "10001", "batch", "%2B1", "0_1", "%201", "01%20"):
        assert_problem(api.call("GET", f"/s3/multipart/{created['uploadId']}/{bad}?key={created['key']}"), 422)
    assert sign_part(api, created, 20)["url"]
    # the video profile's 5 GiB: 1,024 parts
    video = create(api, "b.mp4", "video/mp4", uppy_meta("b.mp4", "video/mp4", profile="video"))
    assert sign_part(api, video, 1024)["url"]
    assert_problem(api.call("GET", f"/s3/multipart/{video['uploadId']}/1025?key={video['key']}"), 422)


def test_a_small_ceiling_gets_no_more_part_urls_than_it_can_need(aws: Any, api: Api) -> None:
    # Given an upload whose declared size is one byte: one part can hold it
    meta = uppy_meta("a.mp4", "video/mp4", profile="video", size="1")
    created = create(api, "a.mp4", "video/mp4", meta)

    # Then its first part is signed, and no other: each URL takes a part of any size (S3 signs
    # no range of lengths), so a thousand of them could stage a thousand parts of 5 GiB
    assert sign_part(api, created, 1)["url"]
    problem = assert_problem(api.call("GET", f"/s3/multipart/{created['uploadId']}/2?key={created['key']}"), 422)
    assert "1..1" in problem["detail"]
    many = {"partNumbers": list(range(1, 1001))}
    assert_problem(api.call("POST", f"/uploads/{created['uploadId']}/parts", many), 422)


def test_unknown_upload_ids_answer_404_problems(aws: Any, api: Api) -> None:
    missing = "0" * 32
    for method, path, body in [
        ("GET", f"/s3/multipart/{missing}", None),
        ("GET", f"/s3/multipart/{missing}/1", None),
        ("POST", f"/s3/multipart/{missing}/complete", {"parts": [{"PartNumber": 1, "ETag": "x"}]}),
        ("DELETE", f"/s3/multipart/{missing}", None),
    ]:
        assert_problem(api.call(method, path + "?key=incoming/x/y", body), 404)
    assert_problem(api.call("GET", "/s3/multipart/not-an-id"), 422)


def test_someone_elses_uppy_upload_answers_exactly_like_a_missing_one(jwt_api: Any) -> None:
    alice, bob = Api(claims={"sub": "alice"}), Api(claims={"sub": "bob"})
    created = create(alice, "a.mp4", "video/mp4", uppy_meta("a.mp4", "video/mp4"))
    upload_id, missing_id = created["uploadId"], "0" * 32
    for method, suffix, body in [
        ("GET", "", None),
        ("GET", "/1", None),
        ("POST", "/complete", {"parts": [{"PartNumber": 1, "ETag": "x"}]}),
        ("DELETE", "", None),
    ]:
        theirs = bob.call(method, f"/s3/multipart/{upload_id}{suffix}?key={created['key']}", body)
        missing = bob.call(method, f"/s3/multipart/{missing_id}{suffix}?key={created['key']}", body)
        assert theirs[0] == missing[0] == 404
        assert theirs[1] == json.loads(json.dumps(missing[1]).replace(missing_id, upload_id))
    assert alice.call("GET", f"/uploads/{upload_id}")[1]["status"] == "PENDING"
    # without a verified subject (Uppy's companion mode sends no token), nothing at all
    assert_problem(Api(claims=None).call("POST", "/s3/multipart", {"filename": "a", "type": "video/mp4"}), 401)
    assert_problem(Api(claims=None).call("GET", params_query("a", "text/plain", {"size": 1})), 401)


def test_the_uppy_routes_are_in_the_openapi_document(aws: Any, api: Api) -> None:
    _, document, _ = api.call("GET", "/openapi.json")
    assert {
        "/s3/params",
        "/s3/multipart",
        "/s3/multipart/{upload_id}",
        "/s3/multipart/{upload_id}/{part_number}",
        "/s3/multipart/{upload_id}/complete",
    } <= set(document["paths"])


def test_a_complete_naming_ten_thousand_parts_is_read_not_refused_as_too_large(aws: Any, api: Api) -> None:
    # Uppy's 5 MiB chunks make a 5 GiB video ~1,000 parts; S3 allows 10,000: every such list is read
    created = create(api, "long.mp4", "video/mp4", uppy_meta("long.mp4", "video/mp4", profile="video"))
    parts = [{"PartNumber": n, "ETag": f'"{n:032x}"'} for n in range(1, 10_001)]
    assert len(json.dumps({"parts": parts})) > 500_000

    status, problem, _ = complete(api, created, parts)

    assert status == 409 and "has not received parts" in problem["detail"], problem


def test_two_completes_at_once_settle_the_quota_once(aws: Any, api: Api) -> None:
    import threading

    # Given an upload Uppy sizes itself, charged at the video profile's 5 GiB ceiling
    data = mp4_bytes(6 * MiB)
    created = create(api, "twice.mp4", "video/mp4", uppy_meta("twice.mp4", "video/mp4", profile="video"))
    parts = upload_chunks(api, created, data)
    assert quota_bytes(aws, "anonymous") == 5 * 1024 * MiB

    # When its complete is sent twice at the same moment
    barrier, replies = threading.Barrier(2), []

    def send() -> None:
        barrier.wait()
        replies.append(complete(api, created, parts)[0])

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then both answer, and the quota holds the real size: refunded once, never below it
    assert 200 in replies and set(replies) <= {200, 409}, replies
    assert quota_bytes(aws, "anonymous") == len(data)


def test_a_retried_outcome_settles_a_ceilings_quota_once(aws: Any, api: Api) -> None:
    from tests.integration.conftest import fail_calls
    from tests.support.processing import process

    data = png(20, 20)
    status, params, _ = api.call(
        "GET", params_query("a.png", "image/png", uppy_meta("a.png", "image/png", profile="avatar"))
    )
    assert status == 200 and post_form(params, data).status_code == 204
    key = params["fields"]["key"]
    # the PROCESSED write fails once: the attempt is retried
    fail_calls(
        "dynamodb",
        "UpdateItem",
        1,
        when=lambda p: {"S": "PROCESSED"} in p.get("ExpressionAttributeValues", {}).values(),
    )
    assert process(aws, key, len(data))["batchItemFailures"]
    assert process(aws, key, len(data), receive_count=2) == {"batchItemFailures": []}

    assert quota_bytes(aws, "anonymous") == len(data)
