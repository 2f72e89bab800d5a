"""An S3 POST policy checker for tests: evaluates a multipart form against its signed policy the
way S3 documents it, since the local emulator (moto) enforces no POST policy at all.

https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html
- the signature is HMAC-SHA256 of the base64 policy with the SigV4 signing key of the credential;
- the policy's expiration must be in the future;
- every condition must hold: {"field": value} and ["eq", "$field", value] exact matches,
  ["starts-with", "$field", prefix], ["content-length-range", min, max] on the file's size;
- every form field except x-amz-signature, file, policy and x-ignore-* must be named by a condition;
- with an x-amz-checksum-sha256 field (base64 of the SHA-256, RESTObjectPOST's form fields), the
  file's bytes must hash to it (S3 answers BadDigest otherwise): checked when ``body`` is given.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

EXEMPT = {"x-amz-signature", "file", "policy"}


def signing_key(secret: str, date: str, region: str, service: str = "s3") -> bytes:
    key = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def decode_policy(fields: dict[str, str]) -> dict[str, Any]:
    return dict(json.loads(base64.b64decode(fields["policy"])))


def evaluate(  # noqa: C901 - S3's POST policy rules, read in one place as S3 documents them
    fields: dict[str, str],
    *,
    bucket: str,
    file_size: int,
    secret_key: str,
    now: datetime | None = None,
    body: bytes | None = None,
) -> list[str]:
    """Why S3 would refuse this form, or [] when it would accept it. ``body``: the file's bytes
    (then ``file_size`` should be their length), for the checksum S3 verifies them against."""
    now = now or datetime.now(UTC)
    form = {name.lower(): value for name, value in fields.items()}
    problems: list[str] = []

    credential = form.get("x-amz-credential", "")
    try:
        _, date, region, service, _ = credential.split("/")
    except ValueError:
        return ["x-amz-credential is malformed"]
    if form.get("x-amz-algorithm") != "AWS4-HMAC-SHA256":
        problems.append("x-amz-algorithm must be AWS4-HMAC-SHA256")
    expected = hmac.new(
        signing_key(secret_key, date, region, service), form.get("policy", "").encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, form.get("x-amz-signature", "")):
        return [*problems, "signature does not match the policy"]

    policy = decode_policy(fields)
    expiration = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    if now >= expiration:
        problems.append(f"policy expired at {policy['expiration']}")

    form_with_bucket = {**form, "bucket": bucket}
    named: set[str] = set()
    for condition in policy.get("conditions", []):
        if isinstance(condition, dict):
            ((name, value),) = condition.items()
            name = name.lower()
            named.add(name)
            if form_with_bucket.get(name) != value:
                problems.append(f"{name} must equal {value!r}, got {form_with_bucket.get(name)!r}")
        elif condition[0] == "content-length-range":
            low, high = int(condition[1]), int(condition[2])
            if not low <= file_size <= high:
                problems.append(f"file size {file_size} outside content-length-range [{low}, {high}]")
        elif condition[0] in ("eq", "starts-with"):
            op, ref, value = condition
            name = ref.lstrip("$").lower()
            named.add(name)
            actual = form_with_bucket.get(name)
            if actual is None:
                problems.append(f"{name} is required by the policy")
            elif op == "eq" and actual != value:
                problems.append(f"{name} must equal {value!r}, got {actual!r}")
            elif op == "starts-with" and not actual.startswith(value):
                problems.append(f"{name} must start with {value!r}")
        else:
            problems.append(f"unknown condition {condition!r}")

    declared = form.get("x-amz-checksum-sha256")
    actual = None if body is None else base64.b64encode(hashlib.sha256(body).digest()).decode()
    if declared is not None and actual is not None and actual != declared:
        problems.append("BadDigest: the file does not hash to x-amz-checksum-sha256")

    for name in form:
        if name in EXEMPT or name.startswith("x-ignore-"):
            continue
        if name not in named:
            problems.append(f"form field {name} is not allowed by any condition")
    return problems
