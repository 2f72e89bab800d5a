"""The scan gate's pieces that need no AWS: ClamAV's verdicts (the local scanner) and the
configuration that would leave a required scan unmet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from directupload.config import Settings, get_settings
from directupload.errors import ConfigError
from local.scanner import Verdict, clamscan

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def test_clamav_finds_the_eicar_test_file_with_the_projects_signatures(tmp_path: Path) -> None:
    (tmp_path / "eicar.com").write_bytes(EICAR)
    (tmp_path / "eicar-nl.txt").write_bytes(EICAR + b"\n")  # a body signature, not a hash of exact bytes
    (tmp_path / "clean.txt").write_bytes(b"nothing to see here\n")
    (tmp_path / "empty").write_bytes(b"")

    assert clamscan(tmp_path / "eicar.com") == Verdict("THREATS_FOUND", ("Test.EICAR.Body.UNOFFICIAL",))
    assert clamscan(tmp_path / "eicar-nl.txt").status == "THREATS_FOUND"
    assert clamscan(tmp_path / "clean.txt") == Verdict("NO_THREATS_FOUND")
    assert clamscan(tmp_path / "empty") == Verdict("NO_THREATS_FOUND")


def test_a_file_over_the_scanners_limit_is_never_called_clean(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(EICAR + b"\0" * 4096)
    assert clamscan(big, max_bytes=1024) == Verdict("UNSUPPORTED")


def test_required_scans_without_a_scanner_stop_the_functions_at_cold_start(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"UPLOADS_TABLE": "t", "UPLOADS_BUCKET": "b", "EVENT_BUS_NAME": "e"}
    for name, value in {**env, "AUTH_MODE": "none", "MALWARE_SCANNING": "disabled"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PROFILES_JSON", raising=False)
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"require a scan.*\['document', 'file'\]|\['document', 'file'\].*scan"):
            get_settings()
        off = {"file": {"contentTypes": ["text/plain"], "maxSize": 10, "scan": "off"}}
        monkeypatch.setenv("PROFILES_JSON", json.dumps(off))
        get_settings.cache_clear()
        assert get_settings().malware_scanning == "disabled"
    finally:
        get_settings.cache_clear()
    assert Settings.from_env({**env, "AUTH_MODE": "none"}).malware_scanning == "enabled"


def test_a_password_protected_archive_cannot_be_scanned_so_it_is_never_called_clean(tmp_path: Path) -> None:
    import io
    import zipfile

    from tests.conftest import ROOT

    plain = io.BytesIO()
    with zipfile.ZipFile(plain, "w") as archive:
        archive.writestr("inside.txt", EICAR)
    (tmp_path / "plain.zip").write_bytes(plain.getvalue())
    assert clamscan(tmp_path / "plain.zip").status == "THREATS_FOUND"  # the scanner looks inside archives
    # the same EICAR file in a zip encrypted with a password (zip -P)
    assert clamscan(ROOT / "tests" / "corpus" / "eicar-password-protected.zip") == Verdict("UNSUPPORTED")
