"""Upload records for tests that need one without the API: one builder, overridden per test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from directupload.models import Status, UploadRecord

UPLOAD_ID = "0123456789abcdef0123456789abcdef"
WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def upload_record(**fields: Any) -> UploadRecord:
    """An avatar upload of one byte, UPLOADED, unless ``fields`` say otherwise."""
    now = fields.pop("now", WHEN)
    upload_id = fields.get("upload_id", UPLOAD_ID)
    values: dict[str, Any] = {
        "upload_id": upload_id,
        "owner": "alice",
        "status": Status.UPLOADED,
        "profile": "avatar",
        "filename": "f",
        "key": f"incoming/{upload_id}/f",
        "content_type": "image/png",
        "size": 1,
        "created_at": now,
        "updated_at": now,
        "expires_at": now + timedelta(minutes=5),
    }
    return UploadRecord(**{**values, **fields})


def unscanned_profiles_json() -> str:
    """The built-in profiles as PROFILES_JSON, each with the malware scan off."""
    import json

    from directupload.profiles import BUILTIN_PROFILES

    return json.dumps(
        {
            name: {**profile.model_dump(by_alias=True, exclude={"name"}), "scan": "off"}
            for name, profile in BUILTIN_PROFILES.items()
        }
    )
