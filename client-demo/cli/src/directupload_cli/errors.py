"""What can go wrong, each failure with its exit code: the CLI's contract with scripts."""

from __future__ import annotations

from typing import Any

EXIT_OK, EXIT_PENDING, EXIT_USAGE, EXIT_REFUSED, EXIT_NETWORK, EXIT_OUTCOME = 0, 1, 2, 3, 4, 5
EXIT_MISMATCH, EXIT_INTERRUPTED = 6, 130


class CliError(Exception):
    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(CliError):
    exit_code = EXIT_USAGE


class RefusedError(CliError):
    """The API or S3 said no: a problem+json title and detail, or S3's error code. Also what the
    API would refuse, found before asking it (its profiles say so)."""

    exit_code = EXIT_REFUSED

    def __init__(
        self, message: str, status: int = 0, hint: str | None = None, problem: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, hint)
        self.status = status
        self.problem = problem or {}


class NetworkError(CliError):
    exit_code = EXIT_NETWORK


class UploadGoneError(CliError):
    """S3 no longer has the multipart upload (aborted, completed, or lapsed)."""

    exit_code = EXIT_REFUSED


class PartFailedError(CliError):
    exit_code = EXIT_NETWORK

    def __init__(self, n: int, attempts: int, failure: str) -> None:
        super().__init__(f"part {n} failed {attempts} times, last: {failure}")


class MismatchError(CliError):
    """The downloaded bytes are not the ones the API announced (size or SHA-256)."""

    exit_code = EXIT_MISMATCH


class InterruptError(Exception):
    """Ctrl-C or SIGTERM."""
