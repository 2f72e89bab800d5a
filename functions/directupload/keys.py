"""The key scheme. Keys are chosen by the server; only a sanitised filename comes from the client.

incoming/{uploadId}/{safe-filename}   staging: what the client uploads (untrusted, re-writable
                                      while a grant is valid), for a profile without a scan
incoming/scan/{uploadId}/{safe-filename}  staging of a profile with scan: required, the one prefix
                                      the malware scanner watches (GuardDuty bills per object and
                                      GB scanned: a profile with scan: off pays for none)
files/{uploadId}/{safe-filename}      the verified object, promoted by the processor; no client
                                      is ever signed for it and only the processor may write it
derived/{uploadId}/...                what processing makes (thumbnails); processor-written only
quarantine/{uploadId}/{safe-filename} rejected objects, when kept
The random id comes first so S3 spreads the load across partitions.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from urllib.parse import unquote_plus

INCOMING = "incoming/"
SCANNED = "incoming/scan/"  # staging that the malware scanner watches
FILES = "files/"
DERIVED = "derived/"
QUARANTINE = "quarantine/"

MAX_FILENAME_BYTES = 120
UPLOAD_ID_PATTERN = r"^[0-9a-f]{32}$"
_UPLOAD_ID = re.compile(UPLOAD_ID_PATTERN)
_UNSAFE = re.compile(r"[^\w.\- ()+,@=]+", re.UNICODE)
_RUNS = re.compile(r"([_ .-])\1+")


def new_upload_id() -> str:
    """128 random bits, hex: unguessable and evenly spread."""
    return secrets.token_hex(16)


def is_upload_id(value: str) -> bool:
    return bool(_UPLOAD_ID.match(value))


def safe_filename(name: str) -> str:
    """A filename that is safe as the last segment of a key, in any tool that lists it.

    Keeps the basename only (no ``/``, ``\\``, ``..``), drops control, format and
    surrogate characters, normalises Unicode (NFC), replaces anything unusual with ``_``,
    and caps the UTF-8 length while keeping the extension.
    """
    name = unicodedata.normalize("NFC", name)
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] not in ("C", "Z") or ch == " ")
    name = _UNSAFE.sub("_", name)
    name = _RUNS.sub(r"\1", name).strip(" ._-")
    if not name:
        name = "file"
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > 16:
        stem, ext = name, ""
    ext_part = f".{ext}" if ext else ""
    budget = MAX_FILENAME_BYTES - len(ext_part.encode())
    encoded = stem.encode()
    if len(encoded) > budget:
        stem = encoded[:budget].decode("utf-8", errors="ignore").rstrip(" ._-") or "file"
    return stem + ext_part


def incoming_key(upload_id: str, filename: str, *, scanned: bool = False) -> str:
    """The staging key of a new upload: under the scanner's prefix when its profile needs a scan."""
    return f"{SCANNED if scanned else INCOMING}{upload_id}/{safe_filename(filename)}"


def is_scanned(key: str) -> bool:
    """Whether the staging key ``key`` is where the malware scanner looks."""
    return key.startswith(SCANNED)


def _staged(incoming: str) -> str:
    """``{uploadId}/{name}`` of a staging key, whichever staging prefix it is under."""
    return incoming.removeprefix(SCANNED) if is_scanned(incoming) else incoming.removeprefix(INCOMING)


def file_key(incoming: str) -> str:
    """Where the verified object of the staging key ``incoming`` is promoted to."""
    return FILES + _staged(incoming)


def derived_key(upload_id: str, name: str) -> str:
    return f"{DERIVED}{upload_id}/{name}"


def quarantine_key(incoming: str) -> str:
    return QUARANTINE + _staged(incoming)


def key_from_event(raw_key: str) -> str:
    """S3 event notifications URL-encode keys (``+`` for a space)."""
    return unquote_plus(raw_key)


def upload_id_from_key(key: str) -> str | None:
    """The upload id of an ``incoming/{id}/name`` or ``incoming/scan/{id}/name`` key, or None for
    anything else."""
    if not key.startswith(INCOMING):
        return None
    parts = _staged(key).split("/", 1)
    if len(parts) != 2 or not is_upload_id(parts[0]) or not parts[1]:
        return None
    return parts[0]
