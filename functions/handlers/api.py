"""ApiFunction: the HTTP API (API Gateway HTTP API, payload v2)."""

import base64
import json
from datetime import datetime
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from directupload import problems, snapstart, wiring
from directupload.config import get_settings
from directupload.errors import DomainError
from directupload.keys import UPLOAD_ID_PATTERN
from directupload.models import (
    Download,
    IssuedUpload,
    IssueUploadRequest,
    ProfileList,
    ProfileView,
    Sha256Base64,
    Status,
    UploadPage,
    UploadView,
    Wire,
)
from directupload.observability import logger, metrics, tracer
from directupload.problems import PROBLEM_JSON, Kind
from directupload.processing.steps import VARIANT_PATTERN
from directupload.profiles import S3_MAX_PARTS
from directupload.uploads import MAX_PAGE
from handlers import backend, contract, ready, uppy
from handlers.contract import responses

MAX_BODY_BYTES = 64 * 1024
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})  # every route of these takes a JSON body
NOT_JSON_DETAIL = "send the body as JSON, with Content-Type: application/json"
# A complete names up to S3's 10,000 parts, with their SHA-256s about 125 bytes each in either
# API's JSON, and a parts call signs up to 1,000 (about 75 bytes each with a SHA-256): 2 MiB
# holds either, the largest a schema admits (API Gateway's own limit is 10 MB).
MAX_COMPLETE_BODY_BYTES = 2 * 1024 * 1024
LISTING_ROUTES = ("/complete", "/parts")  # the routes whose bodies list parts
# What AWS answers while throttling or briefly unavailable (botocore gave up its own retries).
TRANSIENT_AWS_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "InternalServerError",
    }
)

get_settings()  # validate the configuration at cold start, naming anything missing
snapstart.register()  # with SnapStart on, what a restored copy must re-make


def _serialize(value: Any) -> str:
    """JSON without the unset fields of a reply model (the router dumps them as null): the
    reply's own, those of the models it lists (uploads, profiles) and of its ``multipart`` plan
    (also an upload's in a list). Nulls deeper down, in an upload's ``result``, are data and stay."""

    def fields(model: Any) -> Any:
        return {k: v for k, v in model.items() if v is not None} if isinstance(model, dict) else model

    def plan(model: Any) -> Any:
        model = fields(model)
        if isinstance(model, dict) and isinstance(model.get("multipart"), dict):
            model["multipart"] = fields(model["multipart"])
        return model

    value = plan(value)
    if isinstance(value, dict):
        for name, listed in value.items():
            if isinstance(listed, list):
                value[name] = [plan(item) for item in listed]
    return json.dumps(value, separators=(",", ":"), default=str)


app = APIGatewayHttpResolver(enable_validation=True, serializer=_serialize)
app.include_router(uppy.router)  # Uppy's companion-mode routes, on the same domain logic
app.include_router(backend.router)  # trusted backends, IAM-authorized, for a named owner
UploadId = Annotated[str, Path(pattern=UPLOAD_ID_PATTERN)]
ProfileName = Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9-]{0,31}$", description="only this profile")]


PartNumber = Annotated[int, Field(ge=1, le=S3_MAX_PARTS)]


class PartToSign(Wire):
    model_config = ConfigDict(strict=True)
    part_number: PartNumber
    # base64 of the part's SHA-256: signed into its URL, so S3 refuses other bytes
    checksum_sha256: Sha256Base64 | None = None


class PartsRequest(Wire):
    """``partNumbers``, or ``parts`` with each part's checksum (an upload issued with partChecksums)."""

    model_config = ConfigDict(strict=True)
    part_numbers: Annotated[list[PartNumber], Field(min_length=1, max_length=1000)] | None = None
    parts: Annotated[list[PartToSign], Field(min_length=1, max_length=1000)] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> "PartsRequest":
        if (self.part_numbers is None) == (self.parts is None):
            raise ValueError("give either partNumbers or parts")
        return self

    def numbers(self) -> list[int]:
        return self.part_numbers if self.part_numbers is not None else [p.part_number for p in self.parts or []]

    def checksums(self) -> dict[int, str]:
        return {p.part_number: p.checksum_sha256 for p in self.parts or [] if p.checksum_sha256 is not None}


class SignedPartView(Wire):
    part_number: int
    url: str
    expires_at: datetime  # on the wire as every other time: ISO 8601, UTC, "Z"


class SignedParts(Wire):
    parts: list[SignedPartView]


class StoredPartView(Wire):
    part_number: int
    etag: str
    size: int
    # base64, when the upload takes part checksums: a client resuming compares it with its bytes
    checksum_sha256: str | None = None


class StoredParts(Wire):
    parts: list[StoredPartView]


class CompletedPart(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", strict=True, defer_build=True
    )
    part_number: Annotated[int, Field(ge=1, le=S3_MAX_PARTS)]
    etag: Annotated[str, Field(min_length=1, max_length=128)]
    checksum_sha256: Sha256Base64 | None = None  # when S3 does not list the part's checksum itself


class CompleteRequest(Wire):
    model_config = ConfigDict(strict=True)
    parts: Annotated[list[CompletedPart], Field(min_length=1, max_length=S3_MAX_PARTS)]


def owner() -> str:
    return contract.owner(app.current_event)


def _json(status: int, model: Wire) -> Response[Any]:
    return Response(status, content_type="application/json", body=model.wire())


@app.post(
    "/uploads",
    responses=responses(201, IssuedUpload, 415, 429),
    summary="Issue an upload (presigned POST or multipart)",
)
@tracer.capture_method
def issue_upload(request: Annotated[IssueUploadRequest, Body()]) -> Response[IssuedUpload]:
    return _json(201, wiring.upload_service().issue(owner(), request))


@app.get("/profiles", responses=responses(200, ProfileList), summary="What each profile accepts (public)")
@tracer.capture_method
def list_profiles() -> Response[ProfileList]:
    """From the validated configuration, so a client can say "PNG up to 5 MiB" before asking."""
    views = [
        ProfileView(
            name=p.name,
            content_types=list(p.content_types),
            min_size=p.min_size,
            max_size=p.max_size,
            multipart_threshold=p.multipart_threshold,
            part_size=p.part_size if p.multipart_threshold is not None else None,
            url_ttl_seconds=p.url_ttl_seconds,
            part_url_ttl_seconds=p.part_url_lifetime if p.multipart_threshold is not None else None,
            download_ttl_seconds=p.download_ttl_seconds,
            retain_days=p.retain_days,
            allow_active_content=p.allow_active_content,
            steps=list(p.steps),
            scan=p.scan,
        )
        for p in wiring.upload_service().profiles.values()
    ]
    return _json(200, ProfileList(profiles=views))


@app.get("/uploads", responses=responses(200, UploadPage), summary="The caller's uploads, newest first")
@tracer.capture_method
def list_uploads(
    status: Annotated[Status | None, Query(description="only uploads in this status")] = None,
    profile: ProfileName = None,
    limit: Annotated[
        int, BeforeValidator(contract.decimal), Query(ge=1, le=MAX_PAGE, description="uploads per page")
    ] = 20,
    cursor: Annotated[str | None, Query(max_length=256, description="nextCursor of the previous page")] = None,
) -> Response[UploadPage]:
    page = wiring.upload_service().list_uploads(owner(), status=status, profile=profile, limit=limit, cursor=cursor)
    return _json(200, page)


@app.get(
    "/uploads/<upload_id>/download",
    responses=responses(200, Download, 404, 409),
    summary="A short-lived URL of the verified file (or a variant)",
)
@tracer.capture_method
def download_upload(
    upload_id: UploadId,
    variant: Annotated[str | None, Query(pattern=VARIANT_PATTERN, description="a derived file, e.g. thumbnail")] = None,
) -> Response[Download]:
    return _json(200, wiring.upload_service().download(owner(), upload_id, variant))


@app.get("/uploads/<upload_id>", responses=responses(200, UploadView, 404), summary="An upload's status and result")
@tracer.capture_method
def get_upload(upload_id: UploadId) -> Response[UploadView]:
    return _json(200, wiring.upload_service().get(owner(), upload_id).view())


@app.post(
    "/uploads/<upload_id>/parts",
    responses=responses(200, SignedParts, 404, 409, 415),
    summary="Sign part URLs (any time, again)",
)
@tracer.capture_method
def sign_parts(upload_id: UploadId, request: Annotated[PartsRequest, Body()]) -> Response[SignedParts]:
    signed = wiring.upload_service().sign_parts(owner(), upload_id, request.numbers(), request.checksums())
    parts = [SignedPartView(part_number=p.part_number, url=p.url, expires_at=p.expires_at) for p in signed]
    return _json(200, SignedParts(parts=parts))


@app.get(
    "/uploads/<upload_id>/parts", responses=responses(200, StoredParts, 404, 409), summary="The parts S3 already has"
)
@tracer.capture_method
def list_parts(upload_id: UploadId) -> Response[StoredParts]:
    _, stored = wiring.upload_service().list_parts(owner(), upload_id)
    parts = [
        StoredPartView(part_number=p.part_number, etag=p.etag, size=p.size, checksum_sha256=p.checksum_sha256)
        for p in stored
    ]
    return _json(200, StoredParts(parts=parts))


@app.post(
    "/uploads/<upload_id>/complete",
    responses=responses(200, UploadView, 404, 409, 415),
    summary="Complete a multipart upload",
)
@tracer.capture_method
def complete_upload(upload_id: UploadId, request: Annotated[CompleteRequest, Body()]) -> Response[UploadView]:
    parts = [(p.part_number, p.etag) for p in request.parts]
    checksums = {p.part_number: p.checksum_sha256 for p in request.parts if p.checksum_sha256}
    return _json(200, wiring.upload_service().complete(owner(), upload_id, parts, checksums).view())


@app.delete(
    "/uploads/<upload_id>",
    responses=responses(200, UploadView, 404, 409),
    summary="Cancel a pending upload, or delete a final one with its files",
)
@tracer.capture_method
def delete_upload(upload_id: UploadId) -> Response[UploadView]:
    return _json(200, wiring.upload_service().remove(owner(), upload_id).view())


@app.get("/openapi.json", include_in_schema=False)
def openapi() -> Response[Any]:
    return Response(200, content_type="application/json", body=openapi_document())


BEARER = "bearer"
# the routes anyone may call (template.yaml: no authorizer on them)
PUBLIC_ROUTES = (("/profiles", "get"),)


def openapi_document() -> str:
    # the OpenAPI models are a hundred pydantic classes built at import: only this route needs them
    from aws_lambda_powertools.event_handler.openapi.models import APIKey, HTTPBearer

    document = json.loads(
        app.get_openapi_json_schema(
            title="directupload",
            version="1.0.0",
            description="Direct-to-S3 uploads: issue presigned uploads, follow their processing.",
            security_schemes={
                BEARER: HTTPBearer.model_validate(
                    {
                        "type": "http",
                        "scheme": "bearer",
                        "bearerFormat": "JWT",
                        "description": "a JWT from the JwtIssuer, for JwtAudience (AuthMode jwt, the default); "
                        "its sub owns the uploads",
                    }
                ),
                backend.SIGV4: APIKey.model_validate(
                    {
                        "type": "apiKey",
                        "in": "header",
                        "name": "Authorization",
                        "description": "AWS SigV4 (service execute-api) by a role of TrustedIssuerRoleArns",
                        "x-amazon-apigateway-authtype": "awsSigv4",
                    }
                ),
            },
            security=[{BEARER: []}],  # every route but the trusted backends' (SigV4) and the public ones
        )
    )
    for path, method in PUBLIC_ROUTES:
        document["paths"][path][method]["security"] = []
    return json.dumps(document)


# errors: every one a problem+json body, mapped here and nowhere else
def _problem(kind: Kind, detail: str, headers: dict[str, str] | None = None, **ext: Any) -> Response[str]:
    return Response(kind.status, content_type=PROBLEM_JSON, body=kind.body(detail, **ext), headers=headers)


@app.exception_handler(DomainError)
def _domain_error(error: DomainError) -> Response[str]:
    return _problem(error.kind, error.detail, headers=error.headers, **error.extensions)


@app.exception_handler(RequestValidationError)
def _validation_error(error: RequestValidationError) -> Response[str]:
    errors = error.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return _problem(problems.MALFORMED_JSON, "the request body is not valid JSON")
    details = [
        {"location": ".".join(str(part) for part in e.get("loc", ())), "message": str(e.get("msg", ""))[:200]}
        for e in errors[:20]
    ]
    summary = "; ".join(f"{d['location']}: {d['message']}" for d in details[:3])
    return _problem(problems.VALIDATION_ERROR, summary, errors=details)


@app.exception_handler(RequestUnsupportedContentType)
def _not_json_body(_: RequestUnsupportedContentType) -> Response[str]:
    return _problem(problems.NOT_JSON, NOT_JSON_DETAIL)


@app.not_found
def _not_found(_: Exception) -> Response[str]:
    event = app.current_event
    return _problem(problems.NOT_FOUND, f"no route {event.http_method} {event.path}")


@app.exception_handler(ClientError)
def _aws_error(error: ClientError) -> Response[str]:
    """A throttled or briefly unavailable AWS dependency: the client may retry, so say when."""
    code = str(error.response.get("Error", {}).get("Code", ""))
    if code in TRANSIENT_AWS_CODES:
        logger.warning("AWS dependency busy", code=code, operation=error.operation_name)
        return _problem(problems.BUSY, "a dependency is busy; retry shortly", headers={"Retry-After": "1"})
    return _unexpected(error)


@app.exception_handler(Exception)
def _unexpected(error: Exception) -> Response[str]:
    logger.exception("unhandled error")
    return _problem(problems.INTERNAL, "the server failed; the request id identifies it in the logs")


def _not_json(event: dict[str, Any]) -> bool:
    """A body the routes would parse, sent as something else than JSON (``application/json`` or
    a ``+json`` type, in any case, or no Content-Type at all). A JSON one is handed on as
    ``application/json``, the one spelling the router parses as JSON."""
    method = str(((event.get("requestContext") or {}).get("http") or {}).get("method", "")).upper()
    headers = event.get("headers") or {}
    name = next((n for n in headers if str(n).lower() == "content-type"), None)
    if method not in BODY_METHODS or name is None:
        return False
    media, _, params = str(headers[name]).partition(";")
    media = media.strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        return True
    headers[name] = "application/json" + (f";{params}" if params else "")
    return False


def _refuse_early(event: dict[str, Any]) -> dict[str, Any] | None:
    """Bodies the router must never parse: oversized (API Gateway's own limit is 10 MB), not
    JSON, or not UTF-8."""
    body = event.get("body") or ""
    if _not_json(event):
        return _early(problems.NOT_JSON, NOT_JSON_DETAIL)
    encoded = bool(event.get("isBase64Encoded"))
    limit = MAX_COMPLETE_BODY_BYTES if str(event.get("rawPath", "")).endswith(LISTING_ROUTES) else MAX_BODY_BYTES
    too_large = _early(problems.BODY_TOO_LARGE, f"this route takes at most {limit} bytes")
    if len(body) > (limit * 4 // 3 + 4 if encoded else limit):
        return too_large
    if encoded:
        try:
            text = base64.b64decode(body, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return _early(problems.MALFORMED_BODY, "the request body is not UTF-8 JSON")
    else:
        text = body
    if len(text.encode("utf-8", "surrogatepass")) > limit:  # bytes, not characters
        return too_large
    if text.strip():
        try:  # bounded by the size above; nesting and huge numbers are refused here, not crashed on
            json.loads(text)
        except (ValueError, RecursionError):
            return _early(problems.MALFORMED_JSON, "the request body is not valid JSON")
    return None


def _early(kind: Kind, detail: str) -> dict[str, Any]:
    return {"statusCode": kind.status, "headers": {"Content-Type": PROBLEM_JSON}, "body": kind.body(detail)}


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _refuse_untrusted(event) or _refuse_early(event) or app.resolve(event, context)


def _refuse_untrusted(event: dict[str, Any]) -> dict[str, Any] | None:
    """A backend route called by anyone but a trusted backend: 403 before anything else (the
    router validates a request before any route code runs)."""
    if not backend.is_backend_route(event):
        return None
    try:
        backend.issuer(event)
    except DomainError as error:
        logger.warning("backend route refused", reason=error.detail)
        return _early(error.kind, error.detail)
    return None


ready()  # set up: the garbage collector resumes (handlers/__init__.py)
