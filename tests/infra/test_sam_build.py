"""`sam build` of template.yaml: one build of functions/ for all functions, for arm64."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from local.cfn import ROOT, TEMPLATE, load_template, resources_of_type
from tests.infra.tools import SAM, clean_env, python312_dirs, require

AARCH64 = 183  # ELF e_machine


def _elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", path
    return int.from_bytes(header[18:20], "little")


@pytest.mark.slow
def test_sam_build_packages_every_function_for_arm64(tmp_path: Path) -> None:
    # Given
    sam = require(SAM)
    path = os.pathsep.join([*python312_dirs(), os.environ.get("PATH", "")])
    functions = resources_of_type(load_template(), "AWS::Serverless::Function")

    # When
    result = subprocess.run(
        [
            str(sam),
            "build",
            "--template-file",
            str(TEMPLATE),
            "--build-dir",
            str(tmp_path / "build"),
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        cwd=ROOT,
        env=clean_env(PATH=path),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    # Then
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    # the functions share CodeUri and Metadata, so SAM builds functions/ once for all of them
    log = result.stdout + result.stderr
    assert log.count("Building codeuri:") == 1, log
    assert (tmp_path / "build" / "template.yaml").exists()
    for name, function in functions.items():
        artifact = tmp_path / "build" / name
        handler_module = function["Properties"]["Handler"].rsplit(".", 1)[0]
        assert (artifact / (handler_module.replace(".", "/") + ".py")).exists(), name
        native = list(artifact.rglob("*.so"))
        assert native, f"{name}: no compiled dependency to check the architecture of"
        assert {_elf_machine(p) for p in native} == {AARCH64}, name
