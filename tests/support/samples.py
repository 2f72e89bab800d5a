"""Sample files the tests upload: small, valid, made on the fly."""

from __future__ import annotations

import io


def png(width: int = 32, height: int = 24, color: tuple[int, int, int] = (10, 120, 200)) -> bytes:
    """A valid PNG of one colour."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


def a_pdf(pages: int = 3, *, user: str | None = None, owner: str | None = None, algorithm: str = "AES-256") -> bytes:
    """A valid PDF of blank pages; encrypted with ``user`` and/or ``owner`` passwords when given."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(200, 200)
    if user is not None or owner is not None:
        writer.encrypt(user_password=user or "", owner_password=owner, algorithm=algorithm)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()
