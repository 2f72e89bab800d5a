"""No credential is committed: every tracked file is scanned for the shapes secrets take."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PATTERNS = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret access key": re.compile(r"(?i)aws_secret_access_key\s*[=:]\s*['\"]?[A-Za-z0-9/+]{40}\b"),
    "private key": re.compile(r"-----BEGIN (RSA |EC |OPENSSH |)PRIVATE KEY-----"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36}\b"),
    "Slack token": re.compile(r"\bxox[baprs]-[A-Za-z0-9-]{10,}\b"),
    "JWT": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\b"),
}


def tracked_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / name for name in names.decode().split("\0") if name]


def test_no_tracked_file_holds_a_credential() -> None:
    found = []
    files = tracked_files()
    assert len(files) > 50, "git ls-files found too few files: is this a checkout?"
    for path in files:
        if not path.is_file() or path.suffix in {".png", ".jpg", ".webp", ".pdf"}:
            continue
        text = path.read_text(errors="ignore")
        found += [f"{path.relative_to(ROOT)}: {what}" for what, pattern in PATTERNS.items() if pattern.search(text)]
    assert not found, found


def test_the_scanner_recognises_what_it_looks_for() -> None:
    # assembled at run time, so this file does not trip the scan itself
    samples = {
        "AWS access key id": "AKIA" + "ABCDEFGHIJKLMNOP",
        "private key": "-----BEGIN RSA " + "PRIVATE KEY-----",
        "JWT": ".".join(["eyJhbGciOiJSUzI1NiJ9", "eyJzdWIiOiJhbGljZSJ9", "c2lnbmF0dXJlLXZhbHVl"]),
    }
    for what, sample in samples.items():
        assert PATTERNS[what].search(sample), what
