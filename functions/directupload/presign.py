"""Presigned S3 requests: the POST policy for single-part uploads, and part URLs for multipart.

The POST policy pins everything the client could otherwise change: the exact key, the exact
size (content-length-range [size, size]; [the profile's minimum, the ceiling] for a client that
cannot say the size, Uppy's ``/s3/params``), the exact Content-Type, the upload id in the
object's metadata, and an expiry of minutes. S3 enforces it; the local emulator does not,
which is why ``tests/unit`` decodes and checks every condition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

UPLOAD_ID_META = "x-amz-meta-upload-id"


@dataclass(frozen=True)
class PresignedPost:
    url: str
    fields: dict[str, str]


def post_policy_parts(
    *, key: str, content_type: str, size: int, upload_id: str, metadata: dict[str, str], min_size: int | None = None
) -> tuple[dict[str, str], list[Any]]:
    """The form fields and policy conditions of one upload (the bucket and key are added by boto3).
    The size is exact, or with ``min_size`` a range up to ``size``."""
    fields = {"Content-Type": content_type, UPLOAD_ID_META: upload_id}
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
) -> PresignedPost:
    fields, conditions = post_policy_parts(
        key=key, content_type=content_type, size=size, upload_id=upload_id, metadata=metadata, min_size=min_size
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
) -> str:
    """A part's PUT URL. With ``content_length`` (a part of a planned upload) the length is a
    signed header: S3 refuses a body of any other size, so no URL carries more than its part."""
    params: dict[str, Any] = {"Bucket": bucket, "Key": key, "UploadId": s3_upload_id, "PartNumber": part_number}
    if content_length is not None:
        params["ContentLength"] = content_length
    return str(s3.generate_presigned_url("upload_part", Params=params, ExpiresIn=expires_in, HttpMethod="PUT"))
