"""Domain errors. Each one knows its HTTP status; the API maps them in one place."""

from __future__ import annotations


class DomainError(Exception):
    """An error the client caused or may act on. Never a server fault."""

    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(self, detail: str, **extensions: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions
        self.headers: dict[str, str] = {}


class InvalidRequest(DomainError):
    status, slug, title = 400, "invalid-request", "Invalid request"


class Unauthorized(DomainError):
    status, slug, title = 401, "unauthorized", "Authentication required"


class Forbidden(DomainError):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(DomainError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(DomainError):
    status, slug, title = 409, "conflict", "Conflict with the upload's state"


class TooLarge(DomainError):
    status, slug, title = 413, "too-large", "Upload too large"


class UnsupportedType(DomainError):
    status, slug, title = 415, "unsupported-type", "Content type not allowed"


class UnknownProfile(DomainError):
    status, slug, title = 422, "unknown-profile", "Unknown upload profile"


class Unprocessable(DomainError):
    status, slug, title = 422, "validation-error", "Request failed validation"


class QuotaExceeded(DomainError):
    status, slug, title = 429, "quota-exceeded", "Quota exceeded"

    def __init__(self, detail: str, retry_after: int, **extensions: object) -> None:
        super().__init__(detail, **extensions)
        self.headers["Retry-After"] = str(retry_after)


class ConfigError(RuntimeError):
    """Deployment configuration is wrong: raised at cold start, names what to fix."""


class Rejected(Exception):
    """Processing found the object unacceptable. Permanent: never retried."""

    def __init__(self, code: str, message: str, threats: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.threats = threats  # code "malware": what the scanner found
