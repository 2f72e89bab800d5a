"""The ``pdf`` step: page count, and whether the document is encrypted."""

from __future__ import annotations

from typing import Any

from directupload.errors import Rejected
from directupload.processing.steps import VerifiedObject
from directupload.storage import Storage


def run(obj: VerifiedObject, storage: Storage) -> dict[str, Any]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(obj.read(), strict=False)
        encrypted = reader.is_encrypted
        if encrypted:
            # an encrypted PDF may still open with the empty user password; if not, its pages are unknown
            try:
                reader.decrypt("")
                pages: int | None = len(reader.pages)
            except Exception:  # noqa: BLE001 - pypdf raises several types for undecryptable files
                pages = None
        else:
            pages = len(reader.pages)
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise Rejected("corrupt-pdf", f"the PDF cannot be read: {exc}") from exc
    if pages == 0:
        raise Rejected("corrupt-pdf", "the PDF has no pages")
    return {"pages": pages, "encrypted": encrypted}
