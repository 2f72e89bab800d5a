"""Presigned S3 requests: the POST policy for single-part uploads, and part URLs for multipart.

The POST policy pins everything the client could otherwise change: the exact key, the exact
size (content-length-range [size, size]; [the profile's minimum, the ceiling] for a client that
cannot say the size, Uppy's ``/s3/params``), the exact Content-Type, the upload id in the
object's metadata, the declared SHA-256 (S3 refuses a file that does not hash to it), and an
expiry of minutes. S3 enforces it; the local emulator does not, which is why ``tests/unit``
decodes and checks every condition.

A part URL signs its ``x-amz-checksum-sha256`` header when the client gave the part's SHA-256:
S3 then refuses a body that does not hash to it (BadDigest), on top of the signed length.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

UPLOAD_ID_META = "x-amz-meta-upload-id"
# S3's additional-checksum field (POST form) and header (UploadPart): base64 of the raw digest
CHECKSUM_SHA256 = "x-amz-checksum-sha256"


@dataclass(frozen=True)
class PresignedPost:
    url: str
    fields: dict[str, str]


def sha256_base64(hex_digest: str) -> str:
    """The form S3 wants a SHA-256 in (base64 of the 32 bytes) from the hex the API speaks."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def is_sha256_base64(value: str) -> bool:
    """Whether ``value`` is a SHA-256 as S3 takes it: 44 characters of base64 decoding to 32 bytes."""
    if len(value) != 44:
        return False
    try:
        return len(base64.b64decode(value, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def post_policy_parts(
    *,
    key: str,
    content_type: str,
    size: int,
    upload_id: str,
    metadata: dict[str, str],
    min_size: int | None = None,
    checksum_sha256: str | None = None,
) -> tuple[dict[str, str], list[Any]]:
    """The form fields and policy conditions of one upload (the bucket and key are added by boto3).
    The size is exact, or with ``min_size`` a range up to ``size``. With ``checksum_sha256`` (hex)
    the form carries it as S3's checksum field, pinned by the policy: S3 refuses other bytes."""
    fields = {"Content-Type": content_type, UPLOAD_ID_META: upload_id}
    if checksum_sha256 is not None:
        fields[CHECKSUM_SHA256] = sha256_base64(checksum_sha256)
    fields.update({f"x-amz-meta-{name}": value for name, value in metadata.items()})
    conditions: list[Any] = [{name: value} for name, value in fields.items()]
    conditions.append(["content-length-range", size if min_size is None else min_size, size])
    return fields, conditions


def presign_post(
    s3: Any,
    *,
    bucket: str,
    key: str,
    content_type: str,
    size: int,
    upload_id: str,
    metadata: dict[str, str],
    expires_in: int,
    min_size: int | None = None,
    checksum_sha256: str | None = None,
) -> PresignedPost:
    fields, conditions = post_policy_parts(
        key=key,
        content_type=content_type,
        size=size,
        upload_id=upload_id,
        metadata=metadata,
        min_size=min_size,
        checksum_sha256=checksum_sha256,
    )
    signed = s3.generate_presigned_post(
        Bucket=bucket, Key=key, Fields=fields, Conditions=conditions, ExpiresIn=expires_in
    )
    return PresignedPost(url=signed["url"], fields=signed["fields"])


def presign_part(
    s3: Any,
    *,
    bucket: str,
    key: str,
    s3_upload_id: str,
    part_number: int,
    expires_in: int,
    content_length: int | None = None,
    checksum_sha256: str | None = None,
) -> str:
    """A part's PUT URL. With ``content_length`` (a part of a planned upload) the length is a
    signed header: S3 refuses a body of any other size, so no URL carries more than its part.
    With ``checksum_sha256`` (base64) the part's checksum is a signed header too: the client must
    send exactly it, and S3 refuses a body that does not hash to it. The multipart upload must
    have been created with ChecksumAlgorithm SHA256 (S3 refuses a part checksum otherwise)."""
    params: dict[str, Any] = {"Bucket": bucket, "Key": key, "UploadId": s3_upload_id, "PartNumber": part_number}
    if content_length is not None:
        params["ContentLength"] = content_length
    if checksum_sha256 is not None:
        params["ChecksumSHA256"] = checksum_sha256
    return str(s3.generate_presigned_url("upload_part", Params=params, ExpiresIn=expires_in, HttpMethod="PUT"))
