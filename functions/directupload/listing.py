"""Paging through an owner's uploads: the opaque cursor.

A cursor names where the last page stopped (an upload id and its creation time) and nothing
else: the owner comes from the caller on every request, so a cursor edited by hand can only
move within the caller's own uploads. Anything that does not decode is a 400.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from directupload import keys
from directupload.errors import InvalidRequest

MAX_CURSOR = 256


def encode(position: tuple[str, str]) -> str:
    upload_id, created_at = position
    raw = json.dumps({"u": upload_id, "c": created_at}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str) -> tuple[str, str]:
    bad = InvalidRequest("the cursor is not one this API handed out (use nextCursor as given)")
    if len(cursor) > MAX_CURSOR:
        raise bad
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        upload_id, created_at = data["u"], data["c"]
        datetime.fromisoformat(created_at)
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError) as exc:
        raise bad from exc
    if not isinstance(upload_id, str) or not keys.is_upload_id(upload_id):
        raise bad
    return upload_id, created_at
