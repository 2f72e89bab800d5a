"""Content sniffing: what the first bytes say a file is, and whether that matches its declaration."""

from __future__ import annotations

import re

import puremagic

from directupload.profiles import ACTIVE_TYPES

# How many leading bytes the sniffer looks at (puremagic needs a few KiB for some formats).
HEAD_BYTES = 8192

# Executable formats are never accepted, whatever the profile and declared type.
_EXECUTABLE_MAGIC = (
    b"MZ",  # Windows PE / DOS
    b"\x7fELF",
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",  # Mach-O
    b"\xca\xfe\xba\xbe",
    b"\xca\xfe\xba\xbf",  # universal (fat) Mach-O, and Java class files
    b"#!",  # scripts with an interpreter line
    b"dex\n",  # Android DEX
    b"\x00asm",  # WebAssembly
)

# Markup a browser runs: HTML, XHTML, SVG (scripts, event handlers, foreign objects). A file that
# *is* such a document (its first tag is one of these) is refused unless its profile opts in with
# allowActiveContent, and then it is only ever served as an attachment. Text that merely mentions
# a tag further down is not a document of that kind.
#
# The preamble a document may open with (a byte order mark, space, comments, processing
# instructions such as an XML declaration, a doctype), then its first element: one the WHATWG
# sniffing algorithm takes for HTML (what a browser renders as a page), or one that runs or embeds
# by itself; the document elements also under a namespace prefix (``<x:html xmlns:x=...>`` is
# XHTML). The preamble is an atomic group: it never gives back what it matched, so runs of
# comments cost one pass, not one per way of splitting them.
_PREAMBLE = (
    rb"^(?>(?:\xef\xbb\xbf)?\s*(?:<!--(?:(?!-->).)*-->\s*|<\?(?!xml-stylesheet)[^>]*>\s*"
    rb"|<!doctype(?!\s+html)[^>]*>\s*)*)"
)
_DOCUMENT_ELEMENTS = rb"html|head|body|script|svg|math|xsl:stylesheet"
_PAGE_ELEMENTS = rb"iframe|object|embed|h1|div|font|table|a|style|title|b|br|p"
_ACTIVE_START = re.compile(
    _PREAMBLE + rb"(?:<\s*(?:(?:[a-z_][\w.-]*:)?(?:" + _DOCUMENT_ELEMENTS + rb")|(?:" + _PAGE_ELEMENTS + rb"))"
    rb"(?=[\s/>])|<!doctype\s+html|<\?xml-stylesheet)"
    rb"|^(?:\xef\xbb\xbf)?\s*<!--",
    re.IGNORECASE | re.DOTALL,
)


# Types whose bytes announce themselves: a declaration of one of these must match the bytes.
_FAMILIES = {
    "image/jpeg": {"image/jpeg", "image/jpg", "image/pjpeg"},
    "image/png": {"image/png"},
    "image/gif": {"image/gif"},
    "image/webp": {"image/webp"},
    "image/avif": {"image/avif"},
    "image/heic": {"image/heic", "image/heif"},
    "image/tiff": {"image/tiff"},
    "image/bmp": {"image/bmp", "image/x-ms-bmp"},
    "application/pdf": {"application/pdf", "application/x-pdf"},
    "application/zip": {"application/zip", "application/x-zip-compressed"},
    "video/mp4": {"video/mp4", "video/x-m4v", "video/iso.segment", "audio/mp4"},
    "video/quicktime": {"video/quicktime"},
    "video/webm": {"video/webm", "video/x-matroska"},
    "audio/mpeg": {"audio/mpeg", "audio/mp3"},
    "audio/ogg": {"audio/ogg", "application/ogg"},
    "audio/wav": {"audio/wav", "audio/x-wav", "audio/wave"},
}
_TEXT = {"text/plain", "text/csv", "application/json"}

# The exact signature of the formats a browser renders inline or a decoder is picked for.
# puremagic also matches looser ones (two bytes of ``FF D8`` for JPEG, which JPEG 2000 and
# PhotoCD files start with too; ``RIFF`` alone for WebP; ``\x89PNG`` anywhere in text): a
# type whose signature the bytes lack is not what they are.
_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),  # and "WEBP" at offset 8: _signed
}


def family(mime: str) -> str:
    """The type that stands for ``mime`` and its aliases (``image/jpeg`` for ``image/pjpeg``)."""
    return next((name for name, members in _FAMILIES.items() if mime in members), mime)


def _signed(mime: str, head: bytes) -> bool:
    """Whether ``head`` starts with the exact signature of ``mime`` (any type without one listed does)."""
    family_of = family(mime)
    signatures = _SIGNATURES.get(family_of)
    if signatures is None:
        return True
    return head.startswith(signatures) and (family_of != "image/webp" or head[8:12] == b"WEBP")


def is_executable(head: bytes) -> bool:
    return head.startswith(_EXECUTABLE_MAGIC)


def is_active_content(head: bytes) -> bool:
    """The bytes are an HTML, XHTML or SVG document (or start like one)."""
    return bool(_ACTIVE_START.match(head))


_ZIP = b"PK\x03\x04"
# what a browser renders with its scripts when served as the sniffed type
_MARKUP = frozenset({"text/html", "application/xhtml+xml", "image/svg+xml"})


def candidates(head: bytes) -> list[str]:
    """Every MIME type the bytes could be, most likely first. One signature often fits several
    formats (an ID3 tag starts both MP3 and Audiokoz files; every OOXML document is a ZIP)."""
    if not head:
        return []
    try:
        matches = puremagic.magic_string(head)
    except (puremagic.PureError, ValueError):
        return []
    found = [mime for mime in dict.fromkeys(m.mime_type.lower() for m in matches if m.mime_type) if _signed(mime, head)]
    if head.startswith(_ZIP) and "application/zip" not in found:
        found.append("application/zip")  # a ZIP container is a ZIP, whatever it holds
    return found


def sniff(head: bytes) -> str | None:
    """The most likely MIME type of the bytes, or None when they say nothing recognisable."""
    found = candidates(head)
    return found[0] if found else None


def mismatch(declared: str, head: bytes, sniffed: str | None, *, allow_active: bool = False) -> str | None:
    """Why ``head`` is not an acceptable ``declared`` file, or None when it is."""
    if is_executable(head):
        return "the file is an executable"
    # active: the document starts like one, or the sniffer finds it one (an HTML comment or tag
    # first, an SVG's closing tag), or it is declared one
    active = is_active_content(head) or declared in ACTIVE_TYPES or bool(_MARKUP.intersection(candidates(head)))
    if not allow_active and active:
        return "the file is active content (HTML, XHTML or SVG), which this profile does not accept"
    family = _FAMILIES.get(declared)
    if family is not None:
        if not family.intersection(candidates(head)):
            return f"declared {declared} but the bytes are {sniffed or 'unrecognised'}"
        return None
    if declared in _TEXT:
        if b"\x00" in head:
            return f"declared {declared} but the bytes are binary"
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:  # a character cut at the end of the head is fine
                return f"declared {declared} but the bytes are not UTF-8 text"
        return None
    if declared.startswith(("image/", "video/", "audio/")):
        # a declared media type we have no family for: the bytes must at least agree on the kind
        kind = declared.split("/")[0]
        if not any(found.startswith(kind + "/") for found in candidates(head)):
            return f"declared {declared} but the bytes are {sniffed or 'unrecognised'}"
    return None
