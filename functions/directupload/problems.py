"""RFC 9457 problem details: the one shape of every API error."""

from __future__ import annotations

import json
from typing import Any

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:directupload:problem:"


def problem(status: int, slug: str, title: str, detail: str, **extensions: Any) -> dict[str, Any]:
    return {"type": TYPE_PREFIX + slug, "title": title, "status": status, "detail": detail, **extensions}


def problem_body(status: int, slug: str, title: str, detail: str, **extensions: Any) -> str:
    return json.dumps(problem(status, slug, title, detail, **extensions), default=str)
