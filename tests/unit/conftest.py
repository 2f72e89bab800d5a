"""Unit tests run with the network off: pure logic only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_socket import disable_socket, enable_socket


@pytest.fixture(autouse=True)
def _no_network() -> Iterator[None]:
    disable_socket(allow_unix_socket=True)
    yield
    enable_socket()


@pytest.fixture
def fake_credentials(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    creds = {
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "unit-test-signing-key",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    for key, value in creds.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    return creds
