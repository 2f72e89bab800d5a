"""Shared fixtures: a real moto server over HTTP, resources provisioned from template.yaml,
and the local stack as a real subprocess."""

from __future__ import annotations

import os
import uuid
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from local import launch
from local.harness import REGION as REGION  # re-exported: tests import it from here
from local.harness import Deployment
from local.launch import Stack, stop_stack
from tests.support.waiting import poll

ROOT = Path(__file__).resolve().parent.parent


# --- moto server (integration) ---------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """One emulator (moto behind the IAM gate, as the local stack runs it) per test process;
    every test gets its own resources in it."""
    from local import moto_fixes
    from local.harness import POWERTOOLS_OFF, InProcessEmulator, aws_env

    emulator = InProcessEmulator()
    # every DynamoDB answer the emulator writes out directly is checked against moto's own (the
    # local stack's emulator skips the check); the aws fixture fails a test that met a difference
    moto_fixes.CHECK_JSON = True
    variables = {**aws_env(emulator.url), **POWERTOOLS_OFF, "POWERTOOLS_LOG_LEVEL": "WARNING"}
    saved = {key: os.environ.get(key) for key in variables}
    os.environ.update(variables)
    yield emulator.url
    emulator.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


class Aws(Deployment):
    """One test's deployment in the emulator (unique names), with its clients by service."""

    @property
    def s3(self) -> Any:
        return self.clients["s3"]

    @property
    def sqs(self) -> Any:
        return self.clients["sqs"]

    @property
    def dynamodb(self) -> Any:
        return self.clients["dynamodb"]

    @property
    def events(self) -> Any:
        return self.clients["events"]


def aws_client(service: str) -> Any:
    """A client of the tests' emulator (the session's ``AWS_ENDPOINT_URL``)."""
    from local.harness import client

    return client(service)


def provisioned(
    endpoint: str, monkeypatch: pytest.MonkeyPatch, parameters: dict[str, str], prefix: str | None = None
) -> Iterator[Aws]:
    """Resources provisioned from template.yaml with these parameters (names under ``prefix``,
    unique unless given), and the functions' environment pointing at them, as Lambda would set it.
    Handlers are rebuilt from that environment."""
    from directupload import wiring
    from local.harness import deploy

    deployment = deploy(endpoint, parameters, prefix or f"t{uuid.uuid4().hex[:10]}")
    deployment.env["AUTH_MODE"] = "none"
    for key, value in deployment.env.items():
        monkeypatch.setenv(key, value)
    wiring.reset()
    yield Aws(**vars(deployment))
    wiring.reset()


@pytest.fixture
def aws(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    """Fresh resources from template.yaml (unique names per test), the template's defaults."""
    from local import moto_fixes

    seen = len(moto_fixes.JSON_MISMATCHES)
    yield from provisioned(moto_server, monkeypatch, {"Stage": "dev"})
    assert moto_fixes.JSON_MISMATCHES[seen:] == [], "the emulator's DynamoDB answers differ from moto's own"


# --- the local stack, as a user runs it (e2e) -------------------------------------------------


def start_stack(
    state_dir: Path, *extra: str, env: dict[str, str] | None = None, timeout: float = 60, auth: str = "none"
) -> Stack:
    """The stack as `make run` starts it, on free ports. Auth is off unless asked for: the auth tests
    (and the browser test of the default `make run`) pass auth="jwt"."""
    return launch.start_stack(state_dir, *extra, env={**os.environ, **(env or {})}, timeout=timeout, auth=auth)


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The local stack exactly as `make run` starts it, on free ports, for one test module."""
    stack = start_stack(tmp_path_factory.mktemp("stack"))
    yield stack
    stop_stack(stack)


def emulator_client(stack: Stack, service: str = "s3") -> Any:
    """A boto3 client of the stack's own emulator, as a developer pointing the AWS CLI at it."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        endpoint_url=stack.info["emulatorUrl"],
        region_name=stack.info["region"],
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(signature_version="s3v4") if service == "s3" else None,
    )


# --- waiting without sleep loops in the tests themselves -------------------------------------


def wait_for_status(
    base_url: str,
    upload_id: str,
    final: Collection[str] | None = None,  # the API's final statuses (models.FINAL_FOR_CLIENTS)
    timeout: float = 30,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    from directupload.models import FINAL_FOR_CLIENTS

    final = FINAL_FOR_CLIENTS if final is None else final
    seen: list[dict[str, Any]] = [{}]

    def final_body() -> dict[str, Any] | None:
        seen[0] = requests.get(f"{base_url}/uploads/{upload_id}", headers=headers, timeout=10).json()
        return seen[0] if seen[0].get("status") in final else None

    body = poll(final_body, timeout, interval=0.05)
    if body is None:
        raise AssertionError(f"upload {upload_id} not final after {timeout}s: {seen[0]}")
    return body


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """A failed test's ``diagnosis`` (a user property: it crosses from xdist's workers) printed
    at the very end of the run, where a CI log that shows only its head and tail keeps it."""
    seen: set[str] = set()
    for report in [*terminalreporter.stats.get("failed", []), *terminalreporter.stats.get("error", [])]:
        for name, value in getattr(report, "user_properties", []):
            if name == "diagnosis" and value not in seen:
                seen.add(value)
                terminalreporter.write_sep("-", f"diagnosis of {report.nodeid}")
                terminalreporter.write_line(str(value)[:4000])
