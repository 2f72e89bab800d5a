"""Domain errors. Each one knows its HTTP status; the API maps them in one place."""

from __future__ import annotations

from directupload import problems
from directupload.problems import Kind


class DomainError(Exception):
    """An error the client caused or may act on. Never a server fault."""

    kind: Kind = problems.BAD_REQUEST

    def __init__(self, detail: str, **extensions: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions
        self.headers: dict[str, str] = {}

    @property
    def status(self) -> int:
        return self.kind.status


class InvalidRequest(DomainError):
    kind = problems.INVALID_REQUEST


class Unauthorized(DomainError):
    kind = problems.UNAUTHORIZED


class Forbidden(DomainError):
    kind = problems.FORBIDDEN


class UnusableSubject(DomainError):
    kind = problems.UNUSABLE_SUBJECT


class NotFound(DomainError):
    kind = problems.NOT_FOUND


class Conflict(DomainError):
    kind = problems.CONFLICT


class TooLarge(DomainError):
    kind = problems.TOO_LARGE


class UnsupportedType(DomainError):
    kind = problems.UNSUPPORTED_TYPE


class UnknownProfile(DomainError):
    kind = problems.UNKNOWN_PROFILE


class Unprocessable(DomainError):
    kind = problems.VALIDATION_ERROR


class QuotaExceeded(DomainError):
    kind = problems.QUOTA_EXCEEDED

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
