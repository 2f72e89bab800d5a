"""Waiting for an outcome of a running stack: poll until it is there, never sleep a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def poll[T](condition: Callable[[], T | None], timeout: float, interval: float = 0.1) -> T | None:
    """The first truthy answer of ``condition`` within ``timeout`` seconds, or None."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def eventually[T](
    condition: Callable[[], T | None],
    what: str,
    timeout: float = 60,
    interval: float = 0.1,
    state: Callable[[], object] | None = None,
) -> T:
    """The first truthy answer of ``condition``; fails naming ``what`` (and the ``state`` then)
    when there is none within ``timeout`` seconds."""
    found = poll(condition, timeout, interval)
    if not found:
        raise AssertionError(f"not within {timeout}s: {what}" + (f" ({state()})" if state else ""))
    return found


def upload_events(stack: Any, upload_id: str, at_least: int = 1, timeout: float = 30) -> list[dict[str, Any]]:
    """The upload's events on the local stack's bus, once at least ``at_least`` arrived (the
    PublishFunction sends each from the table's stream, a moment after the record changed)."""

    def found() -> list[dict[str, Any]] | None:
        events = [e for e in stack.events() if e["detail"].get("uploadId") == upload_id]
        return events if len(events) >= at_least else None

    return eventually(found, f"{at_least} event(s) of upload {upload_id}", timeout)
