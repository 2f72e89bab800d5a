"""Handlers for the tests of the local function host (local/function_host.py): each does one
thing a real function can do to its container."""

from __future__ import annotations

import os
import time
from typing import Any


def sleep_for(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Sleep ``seconds``; with ``fork_into`` set, first fork a child that sleeps too and write its pid there."""
    if event.get("fork_into"):
        child = os.fork()
        if child == 0:
            time.sleep(60)
            os._exit(0)
        with open(event["fork_into"], "w") as out:
            out.write(str(child))
    remaining = context.get_remaining_time_in_millis()
    time.sleep(float(event.get("seconds", 0)))
    return {"pid": os.getpid(), "remainingMillis": remaining, "role": os.environ.get("AWS_ACCESS_KEY_ID")}


def fail(event: dict[str, Any], context: Any) -> None:
    raise ValueError(event.get("message", "boom"))


def exit_now(event: dict[str, Any], context: Any) -> None:
    os._exit(3)


def fork_then_exit(event: dict[str, Any], context: Any) -> None:
    """Fork a child that sleeps on (its pid written to ``fork_into``), then die."""
    child = os.fork()
    if child == 0:
        time.sleep(60)
        os._exit(0)
    with open(event["fork_into"], "w") as out:
        out.write(str(child))
    time.sleep(0.2)
    os._exit(3)


def unserialisable(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"at": object()}
