"""The local stack says when it listens where others can reach it (its token route and its
emulator take no credentials)."""

import pytest

from local.stack import _loopback


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_addresses_are_this_machines_only(host: str) -> None:
    assert _loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.5", "devbox.lan", "127.0.0.1.nip.io"])
def test_any_other_address_or_name_is_reported_as_exposed(host: str) -> None:
    assert not _loopback(host)
