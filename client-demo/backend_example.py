"""A trusted backend's calls to the API: issue an upload for one of your users, follow it, delete it.

Your backend (a job, another service) runs as an IAM role listed in the stack's
TrustedIssuerRoleArns; it signs each request with SigV4 (service ``execute-api``) using that role's
credentials, as botocore signs AWS's own APIs, and names the owner the upload is for:

    python client-demo/backend_example.py --api https://ID.execute-api.REGION.amazonaws.com \\
        --owner USER_SUB --profile avatar photo.png

Credentials come from botocore's usual chain (the function's or task's role, AWS_PROFILE, ...);
``--assume-role ARN`` assumes the issuer role first. Against the local stack (`make run`) that is
the role `.local/stack.json` names as ``trustedIssuerRoleArn``, assumed through the emulator's STS
(`make backend-upload FILE=photo.png OWNER=alice PROFILE=avatar` runs this with ``--local-stack``).
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

# the emulator accepts any keys: these are placeholders, not secrets (local/stack.py uses the same)
LOCAL_STACK_KEYS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
FINAL = ("PROCESSED", "REJECTED", "FAILED", "CANCELLED", "EXPIRED")


@dataclass
class BackendClient:
    """The /backend/uploads routes, each request signed with SigV4 by the backend's credentials."""

    api_url: str
    credentials: Credentials
    region: str
    session: requests.Session | None = None

    def request(self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None) -> Any:
        url = self.api_url.rstrip("/") + path + (f"?{urlencode(query)}" if query else "")
        data = json.dumps(body).encode() if body is not None else b""
        signed = AWSRequest(method=method, url=url, data=data, headers={"Content-Type": "application/json"})
        # adds X-Amz-Date, X-Amz-Security-Token and the Authorization header over exactly these bytes
        SigV4Auth(self.credentials.get_frozen_credentials(), "execute-api", self.region).add_auth(signed)
        http = self.session or requests
        return http.request(method, url, data=data, headers=dict(signed.headers.items()), timeout=30)

    def issue(self, owner: str, profile: str, filename: str, content_type: str, size: int) -> Any:
        body = {"owner": owner, "profile": profile, "filename": filename, "contentType": content_type, "size": size}
        return self.request("POST", "/backend/uploads", body)

    def get(self, owner: str, upload_id: str) -> Any:
        return self.request("GET", f"/backend/uploads/{upload_id}", query={"owner": owner})

    def delete(self, owner: str, upload_id: str) -> Any:
        return self.request("DELETE", f"/backend/uploads/{upload_id}", query={"owner": owner})


def send(issued: dict[str, Any], path: Path, content_type: str) -> requests.Response:
    """The bytes straight to S3: the presigned POST's fields, then the file."""
    with path.open("rb") as data:
        files = {"file": (path.name, data, content_type)}
        return requests.post(issued["url"], data=issued["fields"], files=files, timeout=300)


def _credentials(args: argparse.Namespace) -> tuple[Credentials, str]:
    import boto3

    session = boto3.Session(region_name=args.region)
    if args.local_stack:
        # the local stack: its emulator's STS hands out the issuer role's session (placeholder
        # keys play the account's administrator there, as in the emulator's docs)
        session = boto3.Session(region_name=args.region, **LOCAL_STACK_KEYS)
    region = session.region_name or "us-east-1"
    if args.assume_role:
        sts = session.client("sts", endpoint_url=args.sts_endpoint)
        assumed = sts.assume_role(RoleArn=args.assume_role, RoleSessionName="backend-example")
        creds = assumed["Credentials"]
        return Credentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]), region
    found = session.get_credentials()
    if found is None:
        raise SystemExit("no AWS credentials found (botocore's chain): run as the backend's role or give --assume-role")
    return found, region


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Issue an upload for an owner as a trusted backend (SigV4).")
    parser.add_argument("file", type=Path)
    parser.add_argument("--api", help="the API's URL (stack output ApiUrl)")
    parser.add_argument("--owner", required=True, help="the user the upload is for (their JWT sub)")
    parser.add_argument(
        "--local-stack",
        type=Path,
        metavar="STACK_JSON",
        help="the local stack's .local/stack.json: its API, its issuer role, its emulator's STS",
    )
    parser.add_argument("--profile", default="file")
    parser.add_argument("--region", default=None, help="the API's region (default: botocore's)")
    parser.add_argument("--assume-role", default=None, metavar="ARN", help="assume this issuer role first")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for the outcome")
    args = parser.parse_args(argv)
    args.sts_endpoint = None
    if args.local_stack:
        info = json.loads(args.local_stack.read_text())
        args.api = args.api or info["apiUrl"]
        args.assume_role = args.assume_role or info["trustedIssuerRoleArn"]
        args.region = args.region or info["region"]
        args.sts_endpoint = info["emulatorUrl"]
    if not args.api:
        parser.error("give --api (or --local-stack)")

    credentials, region = _credentials(args)
    client = BackendClient(args.api, credentials, region)
    content_type = mimetypes.guess_type(args.file.name)[0] or "application/octet-stream"
    reply = client.issue(args.owner, args.profile, args.file.name, content_type, args.file.stat().st_size)
    if reply.status_code != 201:
        print(f"issue refused: {reply.status_code} {reply.text}", file=sys.stderr)
        return 1
    issued = reply.json()
    sent = send(issued, args.file, content_type)
    if sent.status_code >= 300:
        print(f"S3 refused the bytes: {sent.status_code} {sent.text[:500]}", file=sys.stderr)
        return 1
    deadline = time.monotonic() + args.timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = client.get(args.owner, issued["uploadId"]).json()
        if status.get("status") in FINAL:
            break
        time.sleep(0.5)
    print(json.dumps(status, indent=2))
    return 0 if status.get("status") == "PROCESSED" else 1


if __name__ == "__main__":
    sys.exit(main())
