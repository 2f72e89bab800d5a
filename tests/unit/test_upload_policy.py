"""The signed POST policy refuses everything it must, for every profile (S3 enforces it; moto does not)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config

from directupload.models import IssueUploadRequest
from directupload.profiles import BUILTIN_PROFILES, Profile
from directupload.uploads import UploadService
from tests.policy_checker import decode_policy, evaluate

BUCKET = "uploads-bucket"


class MemoryStore:
    def __init__(self) -> None:
        self.records: dict[str, Any] = {}

    def create(self, record: Any) -> None:
        self.records[record.upload_id] = record


class NoStorage:
    bucket = BUCKET

    def in_bucket(self, name: str | None) -> NoStorage:
        assert name in (None, BUCKET)
        return self


def concrete_type(profile: Profile) -> str:
    pattern = profile.content_types[0]
    return pattern.replace("*", "png") if pattern.endswith("/*") else pattern


def single_part_size(profile: Profile) -> int:
    return min(profile.max_size, (profile.multipart_threshold or profile.max_size + 1) - 1, 1234)


def issue(profile: Profile, now: datetime, checksum_sha256: str | None = None) -> tuple[dict[str, Any], Any]:
    s3 = boto3.session.Session().client("s3", config=Config(signature_version="s3v4"))  # fresh credentials
    service = UploadService(
        profiles=BUILTIN_PROFILES,
        store=MemoryStore(),  # type: ignore[arg-type]  # a fake: the methods issuing calls
        storage=NoStorage(),  # type: ignore[arg-type]  # a fake: the methods issuing calls
        s3=s3,
        clock=lambda: now,
    )
    request = IssueUploadRequest(
        profile=profile.name,
        filename="report final.bin",
        content_type=concrete_type(profile),
        size=single_part_size(profile),
        metadata={"album": "summer"},
        checksum_sha256=checksum_sha256,
    )
    issued = service.issue("alice", request).wire()
    return issued, request


PROFILES = [pytest.param(p, id=name) for name, p in BUILTIN_PROFILES.items()]


def _with(fields: dict[str, str], **changes: str) -> dict[str, str]:
    return {**fields, **changes}


ABUSE: dict[str, Any] = {
    "wrong content type": lambda f, size: (_with(f, **{"Content-Type": "text/html"}), size),
    "different key": lambda f, size: (_with(f, key="incoming/someone-else/index.html"), size),
    "key outside incoming/": lambda f, size: (_with(f, key="derived/x/thumbnail.webp"), size),
    # a profile without a scan posting under the scanner's prefix, or a scanned one leaving it
    "key moved in or out of incoming/scan/": lambda f, size: (
        _with(
            f,
            key=f["key"].replace("incoming/scan/", "incoming/", 1)
            if f["key"].startswith("incoming/scan/")
            else f["key"].replace("incoming/", "incoming/scan/", 1),
        ),
        size,
    ),
    # the scanner's verdict tag set by the client (the processor trusts that tag at a scan deadline)
    "client-set scan tag": lambda f, size: (
        _with(
            f,
            tagging="<Tagging><TagSet><Tag><Key>GuardDutyMalwareScanStatus</Key>"
            "<Value>NO_THREATS_FOUND</Value></Tag></TagSet></Tagging>",
        ),
        size,
    ),
    "changed upload id metadata": lambda f, size: (_with(f, **{"x-amz-meta-upload-id": "0" * 32}), size),
    "changed user metadata": lambda f, size: (_with(f, **{"x-amz-meta-album": "other"}), size),
    "added metadata": lambda f, size: (_with(f, **{"x-amz-meta-role": "admin"}), size),
    "public ACL": lambda f, size: (_with(f, acl="public-read"), size),
    "redirect": lambda f, size: (_with(f, success_action_redirect="https://attacker.test/"), size),
    "one byte too many": lambda f, size: (f, size + 1),
    "one byte too few": lambda f, size: (f, size - 1),
    "empty file": lambda f, size: (f, 0),
}


@pytest.mark.parametrize("profile", PROFILES)
def test_the_issued_policy_pins_key_size_type_and_upload_id(profile: Profile, fake_credentials: dict[str, str]) -> None:
    now = datetime.now(UTC)
    issued, request = issue(profile, now)
    policy = decode_policy(issued["fields"])
    conditions = policy["conditions"]

    assert {"bucket": BUCKET} in conditions
    assert {"key": issued["key"]} in conditions
    # staged where the malware scanner looks exactly when the profile needs a scan
    staging = "incoming/scan/" if profile.scan == "required" else "incoming/"
    assert issued["key"] == f"{staging}{issued['uploadId']}/report final.bin"
    assert {"Content-Type": request.content_type} in conditions
    assert {"x-amz-meta-upload-id": issued["uploadId"]} in conditions
    assert ["content-length-range", request.size, request.size] in conditions
    assert {"x-amz-algorithm": "AWS4-HMAC-SHA256"} in conditions  # SigV4, never legacy SigV2
    # no starts-with anywhere: nothing is left for the client to choose
    assert not [c for c in conditions if isinstance(c, list) and c[0] == "starts-with"]


@pytest.mark.parametrize("profile", PROFILES)
def test_the_policy_expires_within_the_profile_lifetime(profile: Profile, fake_credentials: dict[str, str]) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    issued, _ = issue(profile, now)
    signed_by = datetime.now(UTC)  # the signer reads the clock itself, a moment (under load, seconds) later
    expiration = datetime.fromisoformat(decode_policy(issued["fields"])["expiration"].replace("Z", "+00:00"))
    ttl = timedelta(seconds=profile.url_ttl_seconds)
    assert now + ttl - timedelta(seconds=1) <= expiration <= signed_by + ttl + timedelta(seconds=1)
    assert expiration - now <= timedelta(hours=1)  # minutes, not hours
    assert issued["expiresAt"].startswith(str((now + timedelta(seconds=profile.url_ttl_seconds)).date()))


@pytest.mark.parametrize("profile", PROFILES)
def test_the_genuine_form_is_accepted(profile: Profile, fake_credentials: dict[str, str]) -> None:
    issued, request = issue(profile, datetime.now(UTC))
    assert (
        evaluate(
            issued["fields"],
            bucket=BUCKET,
            file_size=request.size,
            secret_key=fake_credentials["AWS_SECRET_ACCESS_KEY"],
        )
        == []
    )


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("abuse", list(ABUSE))
def test_the_policy_refuses_abuse(profile: Profile, abuse: str, fake_credentials: dict[str, str]) -> None:
    issued, request = issue(profile, datetime.now(UTC))
    fields, size = ABUSE[abuse](issued["fields"], request.size)
    problems = evaluate(fields, bucket=BUCKET, file_size=size, secret_key=fake_credentials["AWS_SECRET_ACCESS_KEY"])
    assert problems, f"S3 would accept a form with {abuse}"


@pytest.mark.parametrize("profile", PROFILES)
def test_an_expired_policy_is_refused(profile: Profile, fake_credentials: dict[str, str]) -> None:
    issued, request = issue(profile, datetime.now(UTC))
    expiration = datetime.fromisoformat(decode_policy(issued["fields"])["expiration"].replace("Z", "+00:00"))
    secret = fake_credentials["AWS_SECRET_ACCESS_KEY"]
    assert (
        evaluate(
            issued["fields"],
            bucket=BUCKET,
            file_size=request.size,
            secret_key=secret,
            now=expiration - timedelta(seconds=1),
        )
        == []
    )
    problems = evaluate(
        issued["fields"],
        bucket=BUCKET,
        file_size=request.size,
        secret_key=secret,
        now=expiration + timedelta(seconds=1),
    )
    assert any("expired" in p for p in problems)


@pytest.mark.parametrize("profile", PROFILES)
def test_a_rewritten_policy_breaks_the_signature(profile: Profile, fake_credentials: dict[str, str]) -> None:
    issued, request = issue(profile, datetime.now(UTC))
    policy = decode_policy(issued["fields"])
    policy["conditions"] = [
        c for c in policy["conditions"] if not (isinstance(c, list) and c[0] == "content-length-range")
    ]
    policy["conditions"].append(["content-length-range", 0, 5 * 1024**3])
    forged = _with(issued["fields"], policy=base64.b64encode(json.dumps(policy).encode()).decode())
    problems = evaluate(
        forged, bucket=BUCKET, file_size=request.size * 100, secret_key=fake_credentials["AWS_SECRET_ACCESS_KEY"]
    )
    assert problems == ["signature does not match the policy"]


def test_the_checker_itself_catches_a_wrong_secret(fake_credentials: dict[str, str]) -> None:
    issued, request = issue(BUILTIN_PROFILES["avatar"], datetime.now(UTC))
    assert evaluate(issued["fields"], bucket=BUCKET, file_size=request.size, secret_key="another") == [
        "signature does not match the policy"
    ]


@pytest.mark.parametrize("profile", PROFILES)
def test_a_declared_checksum_is_a_pinned_form_field_so_s3_refuses_other_bytes(
    profile: Profile, fake_credentials: dict[str, str]
) -> None:
    # Given a client that declares its file's SHA-256 (hex, as the API takes it)
    size = single_part_size(profile)
    body = bytes(range(256)) * (size // 256) + bytes(size % 256)
    digest = hashlib.sha256(body)
    issued, _ = issue(profile, datetime.now(UTC), checksum_sha256=digest.hexdigest())
    fields, secret = issued["fields"], fake_credentials["AWS_SECRET_ACCESS_KEY"]

    # Then the form carries it as S3 takes it (base64 of the 32 bytes), pinned by the policy
    b64 = base64.b64encode(digest.digest()).decode()
    assert fields["x-amz-checksum-sha256"] == b64
    assert {"x-amz-checksum-sha256": b64} in decode_policy(fields)["conditions"]
    assert evaluate(fields, bucket=BUCKET, file_size=size, secret_key=secret, body=body) == []
    # and S3 refuses other bytes of the same size, or the form with another checksum
    other = bytes([body[0] ^ 1]) + body[1:]
    assert evaluate(fields, bucket=BUCKET, file_size=size, secret_key=secret, body=other) == [
        "BadDigest: the file does not hash to x-amz-checksum-sha256"
    ]
    forged = _with(fields, **{"x-amz-checksum-sha256": base64.b64encode(hashlib.sha256(other).digest()).decode()})
    assert evaluate(forged, bucket=BUCKET, file_size=size, secret_key=secret, body=other)


def test_without_a_declared_checksum_the_form_has_no_checksum_field(fake_credentials: dict[str, str]) -> None:
    issued, _ = issue(BUILTIN_PROFILES["avatar"], datetime.now(UTC))
    assert "x-amz-checksum-sha256" not in issued["fields"]
    # and a client cannot add one the policy does not name
    added = _with(issued["fields"], **{"x-amz-checksum-sha256": "A" * 43 + "="})
    size = single_part_size(BUILTIN_PROFILES["avatar"])
    assert evaluate(added, bucket=BUCKET, file_size=size, secret_key=fake_credentials["AWS_SECRET_ACCESS_KEY"])


def test_planned_part_urls_sign_each_parts_exact_length_and_client_sized_ones_do_not(
    fake_credentials: dict[str, str],
) -> None:
    from urllib.parse import parse_qs, urlsplit

    from directupload.models import Status
    from directupload.uploads import UploadService
    from tests.records import upload_record

    planned = upload_record(
        status=Status.PENDING, profile="video", content_type="video/mp4", size=40 * 2**20 + 7,
        s3_upload_id="s3-id", part_size=16 * 2**20, part_count=3,
    )  # fmt: skip
    lengths = [UploadService._planned_length(planned, n) for n in (1, 2, 3)]
    assert lengths == [16 * 2**20, 16 * 2**20, 8 * 2**20 + 7] and sum(n or 0 for n in lengths) == planned.size
    assert UploadService._planned_length(planned.model_copy(update={"part_count": None}), 1) is None

    import boto3
    from botocore.config import Config

    from directupload import presign

    s3 = boto3.client("s3", region_name="eu-west-1", config=Config(signature_version="s3v4"))
    url = presign.presign_part(
        s3, bucket="b", key=planned.key, s3_upload_id="s3-id", part_number=3, expires_in=60, content_length=lengths[2]
    )
    assert parse_qs(urlsplit(url).query)["X-Amz-SignedHeaders"] == ["content-length;host"]
    unpinned = presign.presign_part(s3, bucket="b", key=planned.key, s3_upload_id="s3-id", part_number=3, expires_in=60)
    assert parse_qs(urlsplit(unpinned).query)["X-Amz-SignedHeaders"] == ["host"]
