"""Uppy compatibility: the routes ``@uppy/aws-s3`` 6.x calls in companion mode
(``companionEndpoint`` pointed at this API), with Companion's request and JSON shapes:

  GET    /s3/params?filename=&type=&metadata[k]=v         -> {method: "POST", url, fields, expires}
  POST   /s3/multipart {filename, type, metadata}         -> {key, uploadId, bucket}
  GET    /s3/multipart/{uploadId}?key=                    -> [{PartNumber, ETag, Size}]
  GET    /s3/multipart/{uploadId}/{partNumber}?key=       -> {url, expires}
  POST   /s3/multipart/{uploadId}/complete?key= {parts}   -> {location, key, bucket}
  DELETE /s3/multipart/{uploadId}?key=                    -> {}

Every route is the JSON API's logic under Uppy's names: the ``uploadId`` Uppy holds is ours (POST
/s3/multipart returns it), so records, owner checks, profiles and limits are the same. ``key`` is
accepted and not needed: the owner-checked upload id names the upload, and the server chose the key.

Uppy's file meta arrives as ``metadata``: ``profile`` picks the profile (default ``file``), ``size``
declares the size (Uppy sends no size of its own in companion mode: the page sets this meta, see
docs/clients.md, "Uppy and the size"), Uppy's own fields (name, type, relativePath) are not stored, the rest is the
upload's metadata under the usual rules.
"""

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from directupload import keys, wiring
from directupload.errors import Unprocessable
from directupload.models import IssueUploadRequest
from directupload.observability import tracer
from directupload.profiles import S3_MAX_PARTS, S3_MAX_SINGLE_POST
from directupload.uploads import Transfer
from handlers import contract
from handlers.contract import responses

router = APIGatewayHttpRouter()

DEFAULT_PROFILE = "file"
# Fields Uppy puts in every file's meta itself; they describe the file, not the upload.
UPPY_OWN_META = frozenset({"name", "type", "relativePath"})
# Ours, read from the meta rather than stored as metadata.
CONTROL_META = frozenset({"profile", "size"})
# Uppy's key proposal outside companion mode: `${crypto.randomUUID()}-${file.name}`.
_RANDOM_PREFIX = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-(?=.)", re.IGNORECASE)

UploadId = Annotated[str, Path(pattern=keys.UPLOAD_ID_PATTERN)]
ObjectKey = Annotated[str | None, Query(max_length=1024, description="accepted for Uppy; the upload id suffices")]


class _Uppy(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", defer_build=True)  # built on first use

    def body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class CreateMultipartRequest(_Uppy):
    filename: Annotated[str, Field(min_length=1, max_length=1024)]
    file_type: Annotated[str, Field(alias="type", max_length=255)] = ""
    metadata: dict[str, Any] | None = None


class UppyPartEtag(_Uppy):
    part_number: Annotated[int, Field(alias="PartNumber", ge=1, le=S3_MAX_PARTS)]
    etag: Annotated[str, Field(alias="ETag", min_length=1, max_length=128)]


class CompleteMultipartRequest(_Uppy):
    parts: Annotated[list[UppyPartEtag], Field(min_length=1, max_length=S3_MAX_PARTS)]


class PostParams(_Uppy):
    method: str = "POST"
    url: str
    fields: dict[str, str]
    expires: int  # seconds, as Companion answers


class CreatedMultipart(_Uppy):
    key: str
    upload_id: str = Field(alias="uploadId")
    bucket: str


class UppyPart(_Uppy):
    part_number: int = Field(alias="PartNumber")
    etag: str = Field(alias="ETag")
    size: int = Field(alias="Size")


class SignedPartUrl(_Uppy):
    url: str
    expires: int


class CompletedMultipart(_Uppy):
    location: str
    key: str
    bucket: str


def _owner() -> str:
    return contract.owner(router.current_event)


def _json(body: Any) -> Response[Any]:
    return Response(200, content_type="application/json", body=body)


def _seconds_until(moment: datetime) -> int:
    return max(0, round((moment - wiring.upload_service().clock()).total_seconds()))


def _size(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        return int(value)  # (20 digits hold any size; int() refuses strings over 4,300 digits)
    raise Unprocessable("metadata size must be the file's size in bytes, a whole number")


def _profile(meta: Mapping[str, Any]) -> str:
    """The profile Uppy's meta names (``profile``), else the default one."""
    profile = meta.get("profile")
    if profile is None or profile == "":
        return DEFAULT_PROFILE
    if not isinstance(profile, str):
        raise Unprocessable("metadata profile must be a profile's name, a string")
    return profile


def _issue_request(filename: str, file_type: str, meta: Mapping[str, Any], size: int) -> IssueUploadRequest:
    """The JSON API's request for what Uppy asked: its meta's name (else its proposed key without
    the random prefix), its type without parameters, its other meta as metadata."""
    name = meta.get("name") if isinstance(meta.get("name"), str) and meta.get("name") else None
    name = name or _RANDOM_PREFIX.sub("", filename)
    content_type = file_type.split(";", 1)[0].strip().lower() or "application/octet-stream"
    extra = {
        key: value if isinstance(value, str) else json.dumps(value)
        for key, value in meta.items()
        if key not in UPPY_OWN_META | CONTROL_META and value is not None
    }
    try:
        return IssueUploadRequest(
            profile=_profile(meta),
            filename=keys.safe_filename(name),
            content_type=content_type,
            size=size,
            metadata=extra or None,
        )
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise Unprocessable("; ".join(problems[:3])) from None


@router.get(
    "/s3/params", responses=responses(200, PostParams, 404, 415, 429), summary="Uppy: a presigned POST for one file"
)
@tracer.capture_method
def uppy_params(
    filename: Annotated[str, Query(min_length=1, max_length=1024)],
    file_type: Annotated[str, Query(alias="type", max_length=255)] = "",
) -> Response[PostParams]:
    query = parse_qsl(router.current_event.raw_query_string, keep_blank_values=True)
    meta = {
        name[len("metadata[") : -1]: value for name, value in query if name.startswith("metadata[") and name[-1:] == "]"
    }
    size = _size(meta.get("size"))
    service = wiring.upload_service()
    transfer = Transfer.POST
    if size is None:
        # Uppy sends no size: the policy admits the profile's range, up to what one POST holds,
        # the quota is charged at that ceiling and settled to the real size by processing
        profile = service.profile(_profile(meta))
        size, transfer = min(profile.max_size, S3_MAX_SINGLE_POST), Transfer.POST_UP_TO
    request = _issue_request(filename, file_type, meta, size)
    issued = service.issue(_owner(), request, transfer)
    if issued.url is None or issued.fields is None:  # Transfer.POST and POST_UP_TO always issue a form
        raise RuntimeError(f"upload {issued.upload_id} was issued without a presigned POST")
    # the POST's lifetime as signed (its policy expires url_ttl_seconds after issuing), not the
    # clock's reading now: a busy moment after signing must not make it answer 899 for 900
    expires = service.profile(request.profile).url_ttl_seconds
    return _json(PostParams(url=issued.url, fields=issued.fields, expires=expires).body())


@router.post(
    "/s3/multipart", responses=responses(200, CreatedMultipart, 415, 429), summary="Uppy: start a multipart upload"
)
@tracer.capture_method
def uppy_create_multipart(request: Annotated[CreateMultipartRequest, Body()]) -> Response[CreatedMultipart]:
    service = wiring.upload_service()
    meta = request.metadata or {}
    profile = service.profile(_profile(meta))
    # With no size declared the profile's maximum is the ceiling; completion records the real total.
    declared = _size(meta.get("size"))
    size = profile.max_size if declared is None else declared  # (0 is refused as /s3/params refuses it)
    issue = _issue_request(request.filename, request.file_type, meta, size)
    issued = service.issue(_owner(), issue, Transfer.CLIENT_PARTS)
    bucket = service.storage.in_bucket(profile.bucket).bucket
    return _json(CreatedMultipart(key=issued.key, uploadId=issued.upload_id, bucket=bucket).body())


@router.get(
    "/s3/multipart/<upload_id>",
    responses=responses(200, list[UppyPart], 404, 409),
    summary="Uppy: the parts S3 already has",
)
@tracer.capture_method
def uppy_list_parts(upload_id: UploadId, key: ObjectKey = None) -> Response[list[UppyPart]]:
    _, stored = wiring.upload_service().list_parts(_owner(), upload_id)
    parts = [UppyPart(PartNumber=p.part_number, ETag=f'"{p.etag}"', Size=p.size) for p in stored]
    return _json([p.body() for p in parts])


@router.get(
    "/s3/multipart/<upload_id>/<part_number>",
    responses=responses(200, SignedPartUrl, 404, 409),
    summary="Uppy: sign one part's URL",
)
@tracer.capture_method
def uppy_sign_part(
    upload_id: UploadId,
    part_number: Annotated[int, BeforeValidator(contract.decimal), Path(ge=1, le=S3_MAX_PARTS)],
    key: ObjectKey = None,
) -> Response[SignedPartUrl]:
    (signed,) = wiring.upload_service().sign_parts(_owner(), upload_id, [part_number])
    return _json(SignedPartUrl(url=signed.url, expires=_seconds_until(signed.expires_at)).body())


@router.post(
    "/s3/multipart/<upload_id>/complete",
    responses=responses(200, CompletedMultipart, 404, 409, 415),
    summary="Uppy: complete a multipart upload",
)
@tracer.capture_method
def uppy_complete(
    upload_id: UploadId, request: Annotated[CompleteMultipartRequest, Body()], key: ObjectKey = None
) -> Response[CompletedMultipart]:
    service = wiring.upload_service()
    parts = [(p.part_number, p.etag) for p in request.parts]
    record = service.complete(_owner(), upload_id, parts)
    storage = service.storage_of(record)
    location = storage.object_url(record.key)
    return _json(CompletedMultipart(location=location, key=record.key, bucket=storage.bucket).body())


@router.delete(
    "/s3/multipart/<upload_id>",
    responses=responses(200, dict[str, Any], 404, 409),
    summary="Uppy: abort a multipart upload",
)
@tracer.capture_method
def uppy_abort(upload_id: UploadId, key: ObjectKey = None) -> Response[dict[str, Any]]:
    # an abort repeated (a client retrying one whose answer it lost) is no error: S3 took it once
    wiring.upload_service().cancel(_owner(), upload_id, again=True)
    return _json({})
