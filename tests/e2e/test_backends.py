"""Trusted backends on the local stack over real HTTP: requests signed with SigV4 by the example
client (client-demo/backend_example.py), verified by the gateway as API Gateway's IAM authorization
does, with credentials from the emulator's STS."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from types import ModuleType
from typing import Any

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.conftest import ROOT, Stack, emulator_client, start_stack, stop_stack, wait_for_status
from tests.support.waiting import upload_events


@cache
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("backend_example", ROOT / "client-demo" / "backend_example.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (24, 16), (30, 160, 90)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("backends"), auth="jwt")
    yield stack
    stop_stack(stack)


def session_of(stack: Stack, role_arn: str) -> Credentials:
    """A role's credentials from the emulator's STS, as a backend's runtime gets its role's."""
    creds = emulator_client(stack, "sts").assume_role(RoleArn=role_arn, RoleSessionName="nightly-job")["Credentials"]
    return Credentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])


def backend(stack: Stack, credentials: Credentials | None = None) -> Any:
    credentials = credentials or session_of(stack, stack.info["trustedIssuerRoleArn"])
    return example().BackendClient(stack.url, credentials, stack.info["region"])


def token(stack: Stack, user: str) -> dict[str, str]:
    reply = requests.post(f"{stack.url}/local/token", json={"user": user}, timeout=5)
    assert reply.status_code == 200
    return {"Authorization": f"Bearer {reply.json()['token']}"}


def assert_problem(reply: requests.Response, status: int) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = reply.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def test_a_signed_backend_issues_for_an_owner_who_sees_it_processed_with_their_token(stack: Stack) -> None:
    data = png()
    client = backend(stack)
    issuer = stack.info["trustedIssuerRoleArn"]

    reply = client.issue("alice", "avatar", "from-the-job.png", "image/png", len(data))
    assert reply.status_code == 201, reply.text
    issued = reply.json()
    sent = requests.post(issued["url"], data=issued["fields"], files={"file": ("x.png", data, "image/png")}, timeout=30)
    assert sent.status_code == 204, sent.text

    alice = token(stack, "alice")
    final = wait_for_status(stack.url, issued["uploadId"], headers=alice)
    assert final["status"] == "PROCESSED" and final["issuedBy"] == issuer
    listed = requests.get(f"{stack.url}/uploads", headers=alice, timeout=10).json()["items"]
    assert [(u["uploadId"], u["issuedBy"]) for u in listed] == [(issued["uploadId"], issuer)]
    # the backend reads the same record for alice, and nobody else's
    seen = client.get("alice", issued["uploadId"])
    assert (seen.status_code, seen.json()["status"], seen.json()["issuedBy"]) == (200, "PROCESSED", issuer)
    assert_problem(client.get("bob", issued["uploadId"]), 404)
    processed = upload_events(stack, issued["uploadId"])
    assert [(e["detail-type"], e["detail"]["owner"], e["detail"]["issuedBy"]) for e in processed] == [
        ("Upload Processed", "alice", issuer)
    ]

    deleted = client.delete("alice", issued["uploadId"])
    assert deleted.status_code == 200 and deleted.json()["status"] in ("DELETING", "DELETED")


@pytest.mark.parametrize("how", ["botocore-chain", "local-stack"])
def test_the_example_script_runs_the_whole_flow_assuming_the_issuer_role(stack: Stack, tmp_path: Any, how: str) -> None:
    owner = f"carol-{how}"
    picture = tmp_path / "scripted.png"
    picture.write_bytes(png())
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    command = [sys.executable, str(ROOT / "client-demo" / "backend_example.py"), str(picture)]
    command += ["--owner", owner, "--profile", "avatar", "--timeout", "60"]
    if how == "botocore-chain":  # as on AWS: credentials from the environment, then the issuer role
        env.update(
            {
                "AWS_ENDPOINT_URL": stack.info["emulatorUrl"],  # the emulator's STS plays AWS's
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_DEFAULT_REGION": stack.info["region"],
            }
        )
        command += ["--api", stack.url, "--assume-role", stack.info["trustedIssuerRoleArn"]]
    else:  # what `make backend-upload` runs
        command += ["--local-stack", str(stack.state_dir / "stack.json")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr + done.stdout
    status = json.loads(done.stdout)
    assert status["status"] == "PROCESSED" and status["issuedBy"] == stack.info["trustedIssuerRoleArn"]
    mine = requests.get(f"{stack.url}/uploads/{status['uploadId']}", headers=token(stack, owner), timeout=10)
    assert mine.status_code == 200 and mine.json()["status"] == "PROCESSED"


def test_unsigned_and_tampered_calls_are_refused_at_the_gateway_with_403(stack: Stack) -> None:
    body: dict[str, Any] = {
        "owner": "alice",
        "profile": "avatar",
        "filename": "a.png",
        "contentType": "image/png",
        "size": 10,
    }
    url = f"{stack.url}/backend/uploads"

    assert_problem(requests.post(url, json=body, timeout=10), 403)  # unsigned
    assert_problem(requests.post(url, json=body, headers=token(stack, "alice"), timeout=10), 403)  # a user's token

    # signed, then the owner changed on the way: the signature no longer covers the body
    client = backend(stack)
    signed = AWSRequest(
        method="POST", url=url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    SigV4Auth(client.credentials, "execute-api", stack.info["region"]).add_auth(signed)
    tampered = json.dumps({**body, "owner": "mallory"}).encode()
    reply = requests.post(url, data=tampered, headers=dict(signed.headers.items()), timeout=10)
    assert "does not match" in assert_problem(reply, 403)["detail"]
    # the same signature over its own body passes: only the tampering was refused
    untampered = requests.post(url, data=json.dumps(body).encode(), headers=dict(signed.headers.items()), timeout=10)
    assert untampered.status_code == 201, untampered.text

    # a real key signed with a made-up secret
    forged = Credentials(client.credentials.access_key, "not-the-secret", client.credentials.token)
    assert (
        "does not match"
        in assert_problem(backend(stack, forged).issue("mallory", "avatar", "a.png", "image/png", 10), 403)["detail"]
    )
    # a key the emulator's STS never issued
    unknown = Credentials("never-issued-key", "secret", "token")
    assert (
        "security token"
        in assert_problem(backend(stack, unknown).issue("mallory", "avatar", "a.png", "image/png", 10), 403)["detail"]
    )
    # none of it issued anything for mallory
    assert requests.get(f"{stack.url}/uploads", headers=token(stack, "mallory"), timeout=10).json()["items"] == []


def test_a_role_not_on_the_allow_list_is_refused_by_the_api_with_403(stack: Stack) -> None:
    iam = emulator_client(stack, "iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}
        ],
    }
    arn = iam.create_role(RoleName="some-other-service", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "arn:aws:execute-api:*:*:*"}],
    }
    iam.put_role_policy(RoleName="some-other-service", PolicyName="invoke", PolicyDocument=json.dumps(policy))

    reply = backend(stack, session_of(stack, arn)).issue("alice", "avatar", "a.png", "image/png", 10)
    assert "not a trusted backend" in assert_problem(reply, 403)["detail"]


def test_an_allowed_role_still_needs_execute_api_invoke(stack: Stack) -> None:
    """As on AWS, a valid signature by an allowed role is not enough: its policy must allow
    execute-api:Invoke on the route (the policy docs/api.md gives)."""
    iam = emulator_client(stack, "iam")
    name = stack.info["trustedIssuerRoleArn"].rsplit("/", 1)[1]
    policy = iam.get_role_policy(RoleName=name, PolicyName="invoke-backend-routes")["PolicyDocument"]
    client = backend(stack)
    iam.delete_role_policy(RoleName=name, PolicyName="invoke-backend-routes")
    try:
        reply = client.get("alice", "a" * 32)
        assert "execute-api:Invoke" in assert_problem(reply, 403)["detail"]
    finally:
        iam.put_role_policy(RoleName=name, PolicyName="invoke-backend-routes", PolicyDocument=json.dumps(policy))
    assert_problem(client.get("alice", "a" * 32), 404)  # allowed again: no such upload


@pytest.mark.parametrize(
    ("owner", "status"),
    [("", 422), ("owner#alice", 422), ("two words", 422), ("x" * 129, 422)],
)
def test_a_missing_or_bad_owner_is_refused_with_422(stack: Stack, owner: str, status: int) -> None:
    client = backend(stack)
    assert_problem(client.issue(owner, "avatar", "a.png", "image/png", 10), status)
    assert_problem(client.get(owner, "a" * 32), status)
    no_owner = client.request(
        "POST", "/backend/uploads", {"profile": "avatar", "filename": "a", "contentType": "image/png", "size": 1}
    )
    assert_problem(no_owner, 422)
