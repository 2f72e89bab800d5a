"""What a download hands out: a short-lived presigned GET of the verified object (or one of its
variants) whose response headers S3 sets from the signature, so no client can change them.

- ``Content-Type`` is the sniffed type of the bytes, never the type the client declared.
- ``Content-Disposition`` is ``inline`` only for a raster image that the image step decoded
  (or for a variant it re-encoded); anything else (SVG, HTML, PDF, text, archives) is an
  ``attachment``, so a browser never renders an uploaded document in the API's or the
  bucket's origin.
"""

from __future__ import annotations

from urllib.parse import quote

# Raster formats a browser displays and the image step decodes in full before accepting them.
INLINE_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


def disposition(filename: str, *, inline: bool) -> str:
    """RFC 6266: an ASCII fallback name and the UTF-8 one (RFC 8187)."""
    fallback = filename.encode("ascii", "ignore").decode().replace('"', "").replace("\\", "") or "file"
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def is_inline(content_type: str, *, decoded_as_image: bool) -> bool:
    return decoded_as_image and content_type in INLINE_IMAGE_TYPES


def variant_filename(filename: str, variant: str, key: str) -> str:
    """``photo.png`` + ``thumbnail`` (``…/thumbnail.webp``) -> ``photo-thumbnail.webp``."""
    stem = filename.rsplit(".", 1)[0] if "." in filename else filename
    ext = key.rsplit("/", 1)[-1].rpartition(".")[2]
    return f"{stem}-{variant}.{ext}" if ext else f"{stem}-{variant}"
