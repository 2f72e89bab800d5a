"""What every route shares: who is asking, and how its answers are documented in OpenAPI."""

import re
from typing import Any

from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from directupload.config import get_settings
from directupload.errors import Unauthorized, UnusableSubject
from directupload.models import Problem
from directupload.problems import PROBLEM_JSON, titles

ANONYMOUS = "anonymous"
# OpenID Connect's ``sub``: at most 255 ASCII characters. Printable ones only, no space: the sub is
# the key of the owner's quota item and of the byOwner index (DynamoDB refuses a key over 2 KiB)
# and goes into events and log lines as it is.
SUBJECT = re.compile(r"[\x21-\x7e]{1,255}")


def decimal(value: object) -> object:
    """A number in a path or query string is its decimal digits and nothing else: not ``+5``,
    ``5_0`` or `` 5``, which Python's ``int`` (and so pydantic) would read as numbers."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit() and len(value) <= 9):
        raise ValueError("a whole number in decimal digits")
    return value


def owner(event: APIGatewayProxyEventV2) -> str:
    """Who is asking: the JWT ``sub`` the authorizer verified, or the one anonymous owner."""
    if get_settings().auth_mode == "none":
        return ANONYMOUS
    authorizer = event.request_context.authorizer
    claims = authorizer.jwt_claim if authorizer is not None else None
    sub = (claims or {}).get("sub")
    if not isinstance(sub, str) or not sub:
        raise Unauthorized("a valid bearer token is required")
    if not SUBJECT.fullmatch(sub):
        raise UnusableSubject("the token's sub must be 1-255 printable ASCII characters, no spaces")
    return sub


def responses(ok: int, model: Any, *statuses: int) -> dict[int, OpenAPIResponse]:
    """OpenAPI entries for a route: its success, and the problem+json errors it can answer
    (every route: 400, 401, 403, 413, 422, 503), each described by the titles of its kinds (problems.py)."""
    documented: dict[int, OpenAPIResponse] = {
        ok: {"description": "Success", "content": {"application/json": {"model": model}}}
    }
    for status in sorted({400, 401, 403, 413, 422, 503, *statuses}):
        documented[status] = {"description": titles(status), "content": {PROBLEM_JSON: {"model": Problem}}}
    return documented


__all__ = ["ANONYMOUS", "owner", "responses"]
