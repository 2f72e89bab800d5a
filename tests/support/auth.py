"""Signing in: the JWT mode of the in-process handlers, and the local stack's token route."""

from __future__ import annotations

from typing import Any

import pytest
import requests


def use_jwt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Handlers built from now on take the owner from the JWT claims (``Api(claims=...)``)."""
    from directupload import wiring

    monkeypatch.setenv("AUTH_MODE", "jwt")
    wiring.reset()


def local_token(url: str, user: str = "demo-user", timeout: float = 10) -> str:
    """A bearer token from the local stack's sign-in route (POST /local/token)."""
    reply = requests.post(f"{url}/local/token", json={"user": user}, timeout=timeout)
    reply.raise_for_status()
    return str(reply.json()["token"])


def bearer(url: str, user: str = "demo-user") -> dict[str, Any]:
    """The Authorization header of ``user`` on the local stack at ``url``."""
    return {"Authorization": f"Bearer {local_token(url, user)}"}
