"""RFC 9457 problem details: the one shape of every API error, and the table of every kind.

Each kind of problem is named once here (status, type slug, title): the domain errors carry
one, the handlers and the local gateway answer with one, and the OpenAPI responses describe each
status by the titles of its kinds. Nothing else writes a ``urn:directupload:problem:`` type.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:directupload:problem:"


@dataclass(frozen=True)
class Kind:
    """One kind of problem: its HTTP status, its type (``TYPE_PREFIX`` + slug) and its title."""

    status: int
    slug: str
    title: str

    @property
    def type(self) -> str:
        return TYPE_PREFIX + self.slug

    def problem(self, detail: str, **extensions: Any) -> dict[str, Any]:
        return {"type": self.type, "title": self.title, "status": self.status, "detail": detail, **extensions}

    def body(self, detail: str, **extensions: Any) -> str:
        return json.dumps(self.problem(detail, **extensions), default=str)


# --- what the API answers (handlers, domain errors) -----------------------------------------------
BAD_REQUEST = Kind(400, "bad-request", "Bad request")
INVALID_REQUEST = Kind(400, "invalid-request", "Invalid request")
MALFORMED_JSON = Kind(400, "malformed-json", "Malformed JSON")
MALFORMED_BODY = Kind(400, "malformed-body", "Malformed request body")
UNAUTHORIZED = Kind(401, "unauthorized", "Authentication required")
FORBIDDEN = Kind(403, "forbidden", "Not a trusted backend (IAM routes)")
UNUSABLE_SUBJECT = Kind(403, "unusable-subject", "Token subject cannot own uploads")
NOT_FOUND = Kind(404, "not-found", "Not found")
CONFLICT = Kind(409, "conflict", "Conflict with the upload's state")
TOO_LARGE = Kind(413, "too-large", "Upload too large")
BODY_TOO_LARGE = Kind(413, "body-too-large", "Request body too large")
UNSUPPORTED_TYPE = Kind(415, "unsupported-type", "Content type not allowed")
NOT_JSON = Kind(415, "not-json", "Request body must be JSON")
UNKNOWN_PROFILE = Kind(422, "unknown-profile", "Unknown upload profile")
VALIDATION_ERROR = Kind(422, "validation-error", "Request failed validation")
QUOTA_EXCEEDED = Kind(429, "quota-exceeded", "Quota exceeded")
BUSY = Kind(503, "busy", "Service busy")
INTERNAL = Kind(500, "internal", "Internal error")

# --- what the local gateway answers itself, as API Gateway would (local/gateway.py) ---------------
MALFORMED_HTTP = Kind(400, "malformed-http", "Malformed HTTP request")
LENGTH_REQUIRED = Kind(411, "length-required", "Length required")
REQUEST_TOO_LARGE = Kind(413, "request-too-large", "Request too large")
FUNCTION_TIMEOUT = Kind(503, "function-timeout", "Service unavailable")
FUNCTION_ERROR = Kind(500, "function-error", "Internal server error")

API_KINDS = (
    BAD_REQUEST,
    INVALID_REQUEST,
    MALFORMED_JSON,
    MALFORMED_BODY,
    UNAUTHORIZED,
    FORBIDDEN,
    UNUSABLE_SUBJECT,
    NOT_FOUND,
    CONFLICT,
    TOO_LARGE,
    BODY_TOO_LARGE,
    UNSUPPORTED_TYPE,
    NOT_JSON,
    UNKNOWN_PROFILE,
    VALIDATION_ERROR,
    QUOTA_EXCEEDED,
    BUSY,
    INTERNAL,
)
GATEWAY_KINDS = (MALFORMED_HTTP, LENGTH_REQUIRED, REQUEST_TOO_LARGE, FUNCTION_TIMEOUT, FUNCTION_ERROR)


def titles(status: int) -> str:
    """What an OpenAPI response for ``status`` says: the titles of the API's kinds with that status."""
    found = [kind.title for kind in API_KINDS if kind.status == status]
    if not found:
        raise KeyError(f"no problem kind has status {status}")
    return " | ".join(found)
