"""The step interface and registry.

A step is a small function that gets the verified object (with a seekable copy of its
bytes when it asks for one) and the storage adapter, and returns result fields. It may
write derived objects under ``derived/{uploadId}/``. It raises ``Rejected`` for a file
that can never be accepted (permanent) and anything else for a failure worth retrying.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from directupload.models import UploadRecord
from directupload.storage import Storage


@dataclass
class VerifiedObject:
    record: UploadRecord
    bucket: str
    key: str
    size: int
    sha256: str
    sniffed_type: str | None
    etag: str
    body: IO[bytes] | None = None  # set when a step of the profile needs the bytes

    def read(self) -> IO[bytes]:
        if self.body is None:
            raise RuntimeError("this step did not declare needs_body")
        self.body.seek(0)
        return self.body


StepFunction = Callable[[VerifiedObject, Storage], dict[str, Any]]


@dataclass(frozen=True)
class Step:
    name: str
    run: StepFunction
    needs_body: bool = False


def registry() -> dict[str, Step]:
    """Every known step by name. Imported lazily so a cold start loads only what it uses."""
    from directupload.processing import image, pdf

    return {
        "image": Step("image", image.run, needs_body=True),
        "pdf": Step("pdf", pdf.run, needs_body=True),
    }
