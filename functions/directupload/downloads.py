"""What a download hands out: a short-lived presigned GET of the verified object (or one of its
variants) whose response headers S3 sets from the signature, so no client can change them.

- ``Content-Type`` is the sniffed type of the bytes, never the type the client declared, except
  that bytes no signature matches keep a declared passive text type (text/plain, text/csv,
  application/json); anything else unrecognised is ``application/octet-stream``.
- The saved name's extension matches that type (``invoice.html`` served as a PDF saves as
  ``invoice.pdf``), and an active one (``.html``, ``.svg``, ``.exe``...) on an unrecognised
  type gets ``.bin`` added, so no download opens as something it was not checked as.
- ``Content-Disposition`` is ``inline`` only for a raster image that the image step decoded
  (or for a variant it re-encoded); anything else (SVG, HTML, PDF, text, archives) is an
  ``attachment``, so a browser never renders an uploaded document in the API's or the
  bucket's origin.
"""

from __future__ import annotations

from urllib.parse import quote

# Raster formats a browser displays and the image step decodes in full before accepting them.
INLINE_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
# Declared types that may be served as declared when no signature matched the bytes.
PASSIVE_TEXT_TYPES = frozenset({"text/plain", "text/csv", "application/json"})
UNKNOWN = "application/octet-stream"
EXTENSIONS = {
    "image/png": (".png",),
    "image/jpeg": (".jpg", ".jpeg", ".jpe"),
    "image/gif": (".gif",),
    "image/webp": (".webp",),
    "application/pdf": (".pdf",),
    "application/zip": (".zip",),
    "video/mp4": (".mp4", ".m4v"),
    "video/quicktime": (".mov", ".qt"),
    "video/webm": (".webm",),
    "text/plain": (".txt", ".text", ".log", ".md"),
    "text/csv": (".csv",),
    "application/json": (".json",),
}
# Extensions an operating system or a browser would run or render as a document.
ACTIVE_EXTENSIONS = frozenset(
    [
        ".html",
        ".htm",
        ".xhtml",
        ".shtml",
        ".svg",
        ".svgz",
        ".xml",
        ".xsl",
        ".js",
        ".mjs",
        ".hta",
        ".exe",
        ".dll",
        ".com",
        ".bat",
        ".cmd",
        ".ps1",
        ".vbs",
        ".sh",
        ".jar",
        ".msi",
        ".scr",
        ".lnk",
        ".app",
        ".dmg",
        ".pkg",
        ".py",
        ".pl",
        ".rb",
    ]
)


def served_type(sniffed: str | None, declared: str) -> str:
    if sniffed:
        return sniffed
    return declared if declared in PASSIVE_TEXT_TYPES else UNKNOWN


def served_name(filename: str, content_type: str) -> str:
    """The filename with an extension that says what it is served as."""
    stem, dot, ext = filename.rpartition(".")
    extension = f".{ext.lower()}" if dot and stem else ""
    known = EXTENSIONS.get(content_type)
    if known and extension not in known:
        return (stem if extension else filename) + known[0]
    if not known and extension in ACTIVE_EXTENSIONS:
        return filename + ".bin"
    return filename


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
