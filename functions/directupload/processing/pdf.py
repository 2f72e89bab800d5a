"""The ``pdf`` step: page count, and whether the document is encrypted.

An encrypted PDF that opens with the empty user password (only an owner password set,
which merely restricts printing or copying) reports its pages; one that needs a password
to open is accepted with ``pages: null``: we never guess passwords.
"""

from __future__ import annotations

import logging
from typing import IO

from directupload.errors import Rejected
from directupload.processing.steps import StepResult, VerifiedObject

# The PDF specification ends a file with %%EOF; readers look for it in the last 1024 bytes.
TRAILER_WINDOW = 1024


def _complete(body: IO[bytes]) -> bool:
    body.seek(0, 2)
    size = body.tell()
    body.seek(max(0, size - TRAILER_WINDOW))
    tail = body.read()
    body.seek(0)
    return b"%%EOF" in tail


def _quiet() -> None:
    """pypdf warns through the logging module about what it repairs, with the file's own bytes in
    the words, once per broken object: a small hostile PDF writes megabytes of them. Not one line."""
    quiet = logging.getLogger("pypdf")
    if not quiet.handlers:
        quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    quiet.setLevel(logging.CRITICAL + 1)  # nor the cost of making them


def run(obj: VerifiedObject) -> StepResult:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PyPdfError

    _quiet()
    body = obj.read()
    if not _complete(body):
        # pypdf would rebuild a cut-off file's cross-reference table and count what is left
        raise Rejected("corrupt-pdf", "the PDF is truncated (no %%EOF at its end)")
    try:
        reader = PdfReader(body, strict=False)
        encrypted = reader.is_encrypted
        pages: int | None
        if encrypted:
            try:
                opened = bool(reader.decrypt(""))
                pages = len(reader.pages) if opened else None
            except (FileNotDecryptedError, DependencyError, NotImplementedError):
                # a password is needed, or the cipher is one this runtime cannot read
                pages = None
        else:
            pages = len(reader.pages)
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as exc:
        # pypdf's words may quote the file's bytes: only their kind goes into the record
        raise Rejected("corrupt-pdf", f"the PDF cannot be read ({type(exc).__name__})") from exc
    if pages == 0:
        raise Rejected("corrupt-pdf", "the PDF has no pages")
    return StepResult(fields={"pages": pages, "encrypted": encrypted})
