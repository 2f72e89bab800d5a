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

import unicodedata
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
# Extensions an operating system or a browser would run, open as a page or mount: pages and
# scripts, then Windows' list of unsafe attachment types, macro-enabled Office documents, and
# what desktops and package managers run when opened.
_ACTIVE_NAMES = """
.html .htm .xhtml .xht .shtml .mht .mhtml .maff .svg .svgz .xml .xsl .xslt .swf .hta
.js .mjs .jse .vbs .vbe .vb .ws .wsf .wsh .wsc .ps1 .ps1xml .ps2 .ps2xml .psc1 .psc2 .psd1 .psm1
.msh .msh1 .msh2 .mshxml .msh1xml .msh2xml .bat .cmd .com .exe .dll .scr .pif .cpl .msc .msi
.msp .mst .msix .msixbundle .appx .appxbundle .appref-ms .application .gadget .jar .jnlp .xbap
.lnk .url .website .webloc .scf .shb .shs .reg .inf .ins .isp .chm .hlp .hpj .sct .diagcab
.library-ms .searchconnector-ms .settingcontent-ms .theme .xll .xnk .vsmacros .vsw .ops .pcd
.plg .prf .prg .pst .tmp .cer .crt .der .iso .img .vhd .vhdx .ade .adp .bas .mad .maf .mag
.mam .maq .mar .mas .mat .mau .mav .maw .mcf .mda .mdb .mde .mdt .mdw .mdz
.docm .dotm .xlsm .xltm .xlam .pptm .potm .ppam .ppsm .sldm
.sh .bash .zsh .csh .ksh .py .pl .rb .php .phtml .asp .aspx .jsp .cgi .run
.app .dmg .pkg .desktop .command .tool .workflow .action .terminal .apk .deb .rpm .elf
.asx .bgi .cab .cnt .fxp .grp .htc .its .msu .osd .printerexport .psdm1 .vbp .webpnp .wsb
.pyc .pyo .pyw .pyz .pyzw .iqy .slk .appinstaller .xlsb
"""
ACTIVE_EXTENSIONS = frozenset(_ACTIVE_NAMES.split())


def served_type(sniffed: str | None, declared: str) -> str:
    if sniffed:
        return sniffed
    return declared if declared in PASSIVE_TEXT_TYPES else UNKNOWN


def _trimmed(filename: str) -> str:
    """``filename`` without what Windows drops from a name's end (dots and spaces, in any width)."""
    end = len(filename)
    while end and (filename[end - 1].isspace() or unicodedata.normalize("NFKC", filename[end - 1]) in (".", " ")):
        end -= 1
    return filename[:end]


def served_name(filename: str, content_type: str) -> str:
    """The filename with an extension that says what it is served as. An extension is compared
    as a system would read it: in any case, full-width or other compatibility forms as the
    letters they stand for (``HTML`` in full-width letters is ``.html``), without the dots and
    spaces Windows drops from the end (``run.exe.`` is ``.exe``), and a name that is only an
    extension (``.hta``) has that extension."""
    stem, dot, ext = _trimmed(filename).rpartition(".")
    extension = f".{unicodedata.normalize('NFKC', ext).casefold()}" if dot else ""
    known = EXTENSIONS.get(content_type)
    if known and extension not in known:
        return ((stem or "file") if extension else filename) + known[0]
    if not known and extension in ACTIVE_EXTENSIONS:
        return filename + ".bin"
    return filename


def ascii_name(filename: str) -> str:
    """``filename`` in ASCII for the fallback ``filename=``: accents dropped from their letters,
    compatibility forms as their letters, any other character ``_`` (never dropped, which could
    join an extension out of the letters around it: ``pay.eéxe`` is ``pay.eexe``, not ``pay.exe``)."""
    decomposed = unicodedata.normalize("NFKD", filename)
    kept = (c if c.isascii() and c.isprintable() else "_" for c in decomposed if not unicodedata.combining(c))
    return "".join(kept).replace('"', "_").replace("\\", "_")


def disposition(filename: str, content_type: str, *, inline: bool) -> str:
    """RFC 6266: an ASCII fallback name and the UTF-8 one (RFC 8187). The fallback, which clients
    without RFC 8187 (``curl -OJ``) save under, is checked as the name itself was: its extension
    says what ``content_type`` the bytes are served as."""
    fallback = served_name(ascii_name(filename), content_type) or "file"
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def is_inline(content_type: str, *, decoded_as_image: bool) -> bool:
    return decoded_as_image and content_type in INLINE_IMAGE_TYPES


def variant_filename(filename: str, variant: str, key: str) -> str:
    """``photo.png`` + ``thumbnail`` (``…/thumbnail.webp``) -> ``photo-thumbnail.webp``."""
    stem = filename.rsplit(".", 1)[0] if "." in filename else filename
    ext = key.rsplit("/", 1)[-1].rpartition(".")[2]
    return f"{stem}-{variant}.{ext}" if ext else f"{stem}-{variant}"
