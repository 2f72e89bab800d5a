"""The published event schemas (schemas/*.schema.json), for tests that check emitted events."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"
FILES = {
    "Upload Processed": "upload-processed.schema.json",
    "Upload Rejected": "upload-rejected.schema.json",
    "Upload Failed": "upload-failed.schema.json",
    "Upload Deleted": "upload-deleted.schema.json",
}


@cache
def validator(detail_type: str) -> Any:
    from jsonschema import Draft202012Validator

    schema = json.loads((SCHEMAS / FILES[detail_type]).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def validate_event(event: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError unless ``event`` (as EventBridge delivers it) fits its schema."""
    validator(event["detail-type"]).validate(event)
