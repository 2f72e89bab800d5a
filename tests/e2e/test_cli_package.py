"""The CLI as a user installs it: `pip install ./client-demo/cli` into a fresh venv gives a
`directupload` command that uploads, reports, lists, downloads and deletes against the local
stack, run from a directory outside the checkout with nothing of the repository on its path."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import CLI_PACKAGE
from tests.conftest import Stack, start_stack, stop_stack

pytestmark = pytest.mark.slow  # a venv and a pip install: tens of seconds


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the package installed as a user would (build isolation: pip brings the
    build backend from the package index)."""
    venv = tmp_path_factory.mktemp("venv") / "cli"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(CLI_PACKAGE)],
        capture_output=True,
        text=True,
        timeout=900,
        env=user_env(),
    )
    assert install.returncode == 0, install.stdout + install.stderr
    return venv


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("stack"))
    yield stack
    stop_stack(stack)


def user_env() -> dict[str, str]:
    """This environment without the CLI's variables and without any Python path of the checkout."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("DIRECTUPLOAD_", "PYTHON"))}


def directupload(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "directupload"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        env=user_env(),
    )


def test_the_installed_command_runs_from_the_venv_not_the_checkout(venv: Path, tmp_path: Path) -> None:
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import directupload_cli; print(directupload_cli.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=user_env(),
    )
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(venv)

    done = directupload(venv, "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: directupload")
    for command in ("upload", "status", "download", "list", "delete"):
        assert command in done.stdout


def test_upload_status_download_list_delete_with_the_installed_command(
    venv: Path, stack: Stack, tmp_path: Path
) -> None:
    # Given a file, outside the checkout
    data = os.urandom(200 * 1024)
    path = tmp_path / "report.bin"
    path.write_bytes(data)
    api = ["--api", stack.url]

    # When it is uploaded with the installed command, then its status asked and it is downloaded
    up = directupload(
        venv, "upload", str(path), "--profile", "file", "--json", "--state-dir", "state", *api, cwd=tmp_path
    )
    assert up.returncode == 0, up.stderr
    record = json.loads(up.stdout)
    assert record["status"] == "PROCESSED" and record["sha256"] == hashlib.sha256(data).hexdigest()
    upload_id = record["uploadId"]

    status = directupload(venv, "status", upload_id, "--json", *api, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["status"] == "PROCESSED"

    saved = tmp_path / "copy.bin"
    down = directupload(venv, "download", upload_id, "-o", str(saved), *api, cwd=tmp_path)

    # Then the bytes are the uploaded ones
    assert down.returncode == 0, down.stderr
    assert saved.read_bytes() == data and "SHA-256 verified" in down.stderr

    # and the read side and the exit codes are the CLI's
    listed = directupload(venv, "list", "--json", "--all", *api, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert upload_id in [item["uploadId"] for item in json.loads(listed.stdout)["items"]]
    refused = directupload(venv, "upload", str(path), "--profile", "avatar", *api, cwd=tmp_path)
    assert refused.returncode == 3 and "profile 'avatar' does not take" in refused.stderr
    deleted = directupload(venv, "delete", upload_id, *api, cwd=tmp_path)
    assert deleted.returncode == 0 and f"DELETED {upload_id}" in deleted.stderr
    gone = directupload(venv, "status", upload_id, *api, cwd=tmp_path)
    assert gone.returncode == 5, gone.stderr
    missing = directupload(venv, "download", "0" * 32, *api, cwd=tmp_path)
    assert missing.returncode == 3 and "404" in missing.stderr
