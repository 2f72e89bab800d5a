"""samconfig.toml deploys template.yaml the way it needs: two stacks, the right capabilities."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from local.cfn import LANGUAGE_EXTENSIONS, ROOT, load_template, transforms


@pytest.fixture(scope="module")
def samconfig() -> dict[str, Any]:
    return tomllib.loads((ROOT / "samconfig.toml").read_text())


@pytest.mark.parametrize(
    ("env", "stack", "stage"), [("default", "directupload-dev", "dev"), ("prod", "directupload-prod", "prod")]
)
def test_each_environment_deploys_its_own_stack_and_stage(
    samconfig: dict[str, Any], env: str, stack: str, stage: str
) -> None:
    deploy = samconfig[env]["deploy"]["parameters"]
    capabilities = deploy["capabilities"].split()

    assert samconfig[env]["global"]["parameters"]["stack_name"] == stack
    assert f"Stage={stage}" in deploy["parameter_overrides"].split()
    assert deploy["resolve_s3"] is True
    assert deploy["confirm_changeset"] is True
    assert "CAPABILITY_IAM" in capabilities
    if LANGUAGE_EXTENSIONS in transforms(load_template()):
        assert "CAPABILITY_AUTO_EXPAND" in capabilities
    assert stage in load_template()["Parameters"]["Stage"]["AllowedValues"]
