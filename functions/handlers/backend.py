"""Trusted backends: an app's own backend issues, reads and deletes uploads for a named owner.

  POST   /backend/uploads {owner, profile, filename, contentType, size, ...} -> 201 IssuedUpload
  GET    /backend/uploads/{uploadId}?owner=                             -> 200 UploadView
  DELETE /backend/uploads/{uploadId}?owner=                             -> 200 UploadView

These routes take IAM (SigV4) authorization instead of a user's bearer token (template.yaml:
``Authorizer: AWS_IAM``): API Gateway verifies the signature and the caller's execute-api:Invoke
permission, then this function lets through only the roles of TRUSTED_ISSUER_ROLE_ARNS
(directupload/backends.py says how a session matches a role) and refuses anyone else with 403,
before looking at the request. The owner named is then the upload's owner in every respect (its
quota, its listing, its events), the role is recorded as ``issuedBy``, and the owner sees the
upload with their own token at GET /uploads.

A backend-issued upload is always one presigned POST (up to S3's 5 GiB per POST), whatever the
profile's multipart threshold: the backend, or the client it hands ``url`` and ``fields`` to, sends
the bytes with no further call to this API.
"""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import Field

from directupload import keys, wiring
from directupload.backends import OWNER_PATTERN, RoleArn, check_owner
from directupload.config import get_settings
from directupload.errors import Unprocessable
from directupload.models import IssuedUpload, IssueUploadRequest, UploadView
from directupload.observability import logger, tracer
from directupload.uploads import Transfer
from handlers.contract import responses

router = APIGatewayHttpRouter()

PREFIX = "/backend/"
# the OpenAPI security scheme of these routes (api.openapi_document declares it)
SIGV4 = "sigv4"
SECURITY: list[dict[str, list[str]]] = [{SIGV4: []}]
UploadId = Annotated[str, Path(pattern=keys.UPLOAD_ID_PATTERN)]
Owner = Annotated[str, Field(max_length=128, description="the owner the upload is for (a JWT sub)")]
OwnerQuery = Annotated[str, Query(max_length=128, description="the owner the upload belongs to (a JWT sub)")]


class BackendIssueRequest(IssueUploadRequest):
    """POST /uploads's body, plus the owner the upload is for."""

    owner: Owner


def is_backend_route(event: dict[str, Any]) -> bool:
    return str(event.get("rawPath", "")).startswith(PREFIX)


def issuer(event: dict[str, Any]) -> RoleArn:
    """The trusted role calling, from the IAM authorizer's context; Forbidden for anyone else."""
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    iam = authorizer.get("iam") if isinstance(authorizer, dict) else None
    user_arn = iam.get("userArn") if isinstance(iam, dict) else None
    return get_settings().trusted_issuers.issuer(user_arn if isinstance(user_arn, str) else None)


def _issuer() -> RoleArn:
    return issuer(router.current_event.raw_event)


def _json(status: int, body: dict[str, Any]) -> Response[Any]:
    return Response(status, content_type="application/json", body=body)


@router.post(
    "/backend/uploads",
    responses=responses(201, IssuedUpload, 403, 413, 415, 429),
    summary="A trusted backend issues an upload for an owner (IAM auth)",
    security=SECURITY,
)
@tracer.capture_method
def issue_for_owner(request: Annotated[BackendIssueRequest, Body()]) -> Response[IssuedUpload]:
    role = _issuer()
    owner = check_owner(request.owner)
    if request.part_checksums:
        raise Unprocessable("a backend-issued upload is one presigned POST: partChecksums does not apply")
    issued = wiring.upload_service().issue(owner, request, Transfer.POST, issued_by=str(role))
    logger.info("upload issued by a backend", upload_id=issued.upload_id, issued_by=str(role))
    return _json(201, issued.wire())


@router.get(
    "/backend/uploads/<upload_id>",
    responses=responses(200, UploadView, 403, 404),
    summary="A trusted backend reads an owner's upload (IAM auth)",
    security=SECURITY,
)
@tracer.capture_method
def get_for_owner(upload_id: UploadId, owner: OwnerQuery) -> Response[UploadView]:
    _issuer()
    return _json(200, wiring.upload_service().get(check_owner(owner), upload_id).view().wire())


@router.delete(
    "/backend/uploads/<upload_id>",
    responses=responses(200, UploadView, 403, 404, 409),
    summary="A trusted backend cancels or deletes an owner's upload (IAM auth)",
    security=SECURITY,
)
@tracer.capture_method
def delete_for_owner(upload_id: UploadId, owner: OwnerQuery) -> Response[UploadView]:
    role = _issuer()
    record = wiring.upload_service().remove(check_owner(owner), upload_id)
    logger.info("upload removed by a backend", upload_id=upload_id, issued_by=str(role))
    return _json(200, record.view().wire())


__all__ = ["OWNER_PATTERN", "PREFIX", "SIGV4", "is_backend_route", "issuer", "router"]
