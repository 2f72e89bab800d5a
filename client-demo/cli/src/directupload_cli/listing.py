"""The caller's uploads, newest first, a page at a time or every page (``--all``)."""

from __future__ import annotations

from typing import Any

from directupload_cli.api import Api
from directupload_cli.errors import RefusedError


def list_uploads(
    api: Api, *, status: str | None, profile: str | None, limit: int | None, cursor: str | None, follow: bool
) -> dict[str, Any]:
    """A page of the caller's uploads (every page with ``follow``): ``{items, nextCursor?}``."""
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    while True:
        page = api.uploads(status=status, profile=profile, limit=limit, cursor=cursor)
        items += page.get("items", [])
        cursor = page.get("nextCursor")
        if not follow or not cursor:
            break
        if cursor in seen:
            raise RefusedError("the API handed out the same nextCursor twice; stopped paging")
        seen.add(cursor)
    return {"items": items, "nextCursor": cursor} if cursor else {"items": items}
