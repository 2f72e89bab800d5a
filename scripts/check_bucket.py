"""Tell what an existing bucket still lacks before directupload can use it (docs/existing-buckets.md).

    python -m scripts.check_bucket --stack directupload-dev [--region eu-west-1]
    python -m scripts.check_bucket --bucket NAME --processor-role-arn ARN [--origin https://app.example.com ...]

With ``--stack`` the buckets (output UploadsBuckets), the processor's role (output
ProcessFunctionRoleArn) and the browser origins (parameter AllowedOrigins) come from the deployed
stack. For each bucket it reads the bucket policy, the CORS rules, the EventBridge notification
setting, the public access block, the default encryption and, on a versioned bucket, that noncurrent
versions expire, prints what is missing and exits 1
if anything is (0 when every bucket is ready). Uses the ordinary AWS credential chain; it only
reads, never changes a bucket.

What a bucket needs is stated once, here (``required_policy_statements``, ``required_cors_rule``);
the local stack configures its "existing" buckets from the same functions, as an owner would.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

# a deleted upload's bytes are gone within this many days on a versioned bucket (the quarantine's
# own lifecycle rule keeps rejected bytes 30 days)
MAX_NONCURRENT_DAYS = 30
# the prefixes only the processor may write (the trust boundary, docs/security.md)
VERIFIED_PREFIXES = ("files/", "derived/")
CORS_METHODS = ("GET", "POST", "PUT")
PUBLIC_ACCESS_BLOCK = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


def _arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


def required_policy_statements(bucket: str, processor_role_arn: str) -> list[dict[str, Any]]:
    """The statements the bucket's policy must hold (the stack's own bucket gets the same ones)."""
    return [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [_arn(bucket), f"{_arn(bucket)}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        {
            "Sid": "OnlyTheProcessorWritesVerifiedObjects",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": [f"{_arn(bucket)}/{prefix}*" for prefix in VERIFIED_PREFIXES],
            "Condition": {"ArnNotEquals": {"aws:PrincipalArn": processor_role_arn}},
        },
    ]


def required_cors_rule(origins: Iterable[str]) -> dict[str, Any]:
    """The CORS rule browsers need to POST / PUT parts straight to the bucket and read the ETag."""
    return {
        "AllowedMethods": list(CORS_METHODS),
        "AllowedOrigins": list(origins),
        "AllowedHeaders": ["*"],
        "ExposeHeaders": ["ETag"],
        "MaxAgeSeconds": 3000,
    }


def _as_set(value: Any) -> set[str]:
    return {str(v) for v in (value if isinstance(value, list) else [value])} if value is not None else set()


def _principal_is_everyone(principal: Any) -> bool:
    return principal == "*" or (isinstance(principal, dict) and _as_set(principal.get("AWS")) == {"*"})


def _covers(statement: dict[str, Any], required: dict[str, Any]) -> bool:
    """Whether ``statement`` says at least what ``required`` says (same effect, everyone, the
    actions and resources named or more, the same condition)."""
    actions = _as_set(statement.get("Action"))
    return (
        statement.get("Effect") == required["Effect"]
        and _principal_is_everyone(statement.get("Principal"))
        and ("s3:*" in actions or _as_set(required["Action"]) <= actions)
        and _as_set(required["Resource"]) <= _as_set(statement.get("Resource"))
        and json.dumps(statement.get("Condition"), sort_keys=True) == json.dumps(required["Condition"], sort_keys=True)
    )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _configured[T](read: Callable[[], T], absent: str, default: T) -> T:
    """A bucket setting as ``read`` reads it, or ``default`` when S3 answers ``absent`` (the error
    code it answers for a setting never made)."""
    try:
        return read()
    except ClientError as exc:
        if _code(exc) != absent:
            raise
        return default


def missing_policy(s3: Any, bucket: str, processor_role_arn: str) -> list[str]:
    found = _configured(lambda: s3.get_bucket_policy(Bucket=bucket)["Policy"], "NoSuchBucketPolicy", "{}")
    policy = json.loads(found)
    statements = policy.get("Statement", [])
    statements = statements if isinstance(statements, list) else [statements]
    return [
        f"bucket policy: statement {required['Sid']} ({required['Effect']} {required['Action']} on "
        f"{', '.join(required['Resource'])} when {json.dumps(required['Condition'])})"
        for required in required_policy_statements(bucket, processor_role_arn)
        if not any(_covers(statement, required) for statement in statements)
    ]


def missing_cors(s3: Any, bucket: str, origins: Iterable[str]) -> list[str]:
    rules: list[dict[str, Any]] = _configured(
        lambda: s3.get_bucket_cors(Bucket=bucket)["CORSRules"], "NoSuchCORSConfiguration", []
    )
    wanted = required_cors_rule(origins)
    missing = []
    for origin in wanted["AllowedOrigins"]:
        for method in CORS_METHODS:
            fits = [
                rule
                for rule in rules
                if method in rule.get("AllowedMethods", [])
                and (origin in rule.get("AllowedOrigins", []) or "*" in rule.get("AllowedOrigins", []))
            ]
            if not fits:
                missing.append(f"CORS: no rule allows {method} from {origin}")
            elif not any("*" in rule.get("AllowedHeaders", []) for rule in fits):
                missing.append(f"CORS: the rule for {method} from {origin} must allow every header (AllowedHeaders *)")
            elif method == "PUT" and not any("ETag" in rule.get("ExposeHeaders", []) for rule in fits):
                missing.append(f"CORS: the rule for {method} from {origin} must expose ETag (multipart needs it)")
    return missing


def missing_eventbridge(s3: Any, bucket: str) -> list[str]:
    configuration = s3.get_bucket_notification_configuration(Bucket=bucket)
    if "EventBridgeConfiguration" in configuration:
        return []
    return ["notifications: Amazon EventBridge is off (ObjectCreated never reaches the stack)"]


def missing_public_access_block(s3: Any, bucket: str) -> list[str]:
    block: dict[str, Any] = _configured(
        lambda: s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"],
        "NoSuchPublicAccessBlockConfiguration",
        {},
    )
    off = [name for name in PUBLIC_ACCESS_BLOCK if not block.get(name)]
    return [f"public access block: {', '.join(off)} must be on"] if off else []


def missing_encryption(s3: Any, bucket: str) -> list[str]:
    rules: list[dict[str, Any]] = _configured(
        lambda: s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"],
        "ServerSideEncryptionConfigurationNotFoundError",
        [],
    )
    algorithms = {rule.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for rule in rules}
    if "AES256" in algorithms:
        return []
    if algorithms & {"aws:kms", "aws:kms:dsse"}:
        return [
            "default encryption: SSE-KMS needs kms:GenerateDataKey and kms:Decrypt in the functions' roles, "
            "which the stack does not grant; use SSE-S3 (AES256)"
        ]
    return ["default encryption: none set (use SSE-S3, AES256)"]


def missing_version_expiry(s3: Any, bucket: str) -> list[str]:
    """A versioned bucket keeps what a deletion, a quarantine or a promotion removes as noncurrent
    versions: deleted uploads would not be gone. It needs versioning off (never enabled), or a
    lifecycle rule for the whole bucket that expires noncurrent versions."""
    if s3.get_bucket_versioning(Bucket=bucket).get("Status") not in ("Enabled", "Suspended"):
        return []
    rules: list[dict[str, Any]] = _configured(
        lambda: s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"], "NoSuchLifecycleConfiguration", []
    )
    for rule in rules:
        scope = rule.get("Filter", {"Prefix": rule.get("Prefix", "")})
        whole_bucket = scope in ({}, {"Prefix": ""})
        expiry = rule.get("NoncurrentVersionExpiration", {})
        # every noncurrent version (none kept by count), within the retention of the longest lived copy
        expires_all = (
            "NewerNoncurrentVersions" not in expiry and 0 < expiry.get("NoncurrentDays", 0) <= MAX_NONCURRENT_DAYS
        )
        if rule.get("Status") == "Enabled" and whole_bucket and expires_all:
            return []
    return [
        "versioning: on, so a deleted upload's bytes stay as noncurrent versions; add a lifecycle rule "
        f"for the whole bucket with NoncurrentVersionExpiration of every noncurrent version within "
        f"{MAX_NONCURRENT_DAYS} days (NoncurrentDays, e.g. 1, and no NewerNoncurrentVersions), "
        "or use an unversioned bucket"
    ]


def missing(s3: Any, bucket: str, processor_role_arn: str, origins: Iterable[str]) -> list[str]:
    """Everything ``bucket`` lacks, in words an owner can act on; [] when it is ready."""
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        return [f"bucket: cannot be read ({_code(exc) or exc})"]
    origins = list(origins)
    return [
        *missing_policy(s3, bucket, processor_role_arn),
        *missing_cors(s3, bucket, origins),
        *missing_eventbridge(s3, bucket),
        *missing_public_access_block(s3, bucket),
        *missing_encryption(s3, bucket),
        *missing_version_expiry(s3, bucket),
    ]


def from_stack(cloudformation: Any, stack: str) -> tuple[list[str], str, list[str]]:
    """(buckets, processor role ARN, origins) of a deployed stack."""
    (described,) = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in described.get("Parameters", [])}
    buckets = [b for b in outputs.get("UploadsBuckets", outputs.get("UploadsBucketName", "")).split(",") if b]
    origins = [o.strip() for o in parameters.get("AllowedOrigins", "*").split(",") if o.strip()]
    return buckets, outputs.get("ProcessFunctionRoleArn", ""), origins


def main(argv: list[str] | None = None, s3: Any = None, cloudformation: Any = None) -> int:
    parser = argparse.ArgumentParser(description="What an existing bucket lacks for directupload.")
    parser.add_argument("--stack", help="a deployed directupload stack: buckets, role and origins from it")
    parser.add_argument("--bucket", action="append", default=[], help="a bucket to check (repeatable)")
    parser.add_argument("--processor-role-arn", default="", help="the stack's output ProcessFunctionRoleArn")
    parser.add_argument("--origin", action="append", default=[], help="a browser origin (repeatable; default *)")
    parser.add_argument("--region")
    args = parser.parse_args(argv)
    if not args.stack and not (args.bucket and args.processor_role_arn):
        parser.error("give --stack, or --bucket and --processor-role-arn")
    import boto3

    try:
        buckets, role, origins = list(args.bucket), args.processor_role_arn, list(args.origin) or ["*"]
        if args.stack:
            cloudformation = cloudformation or boto3.client("cloudformation", region_name=args.region)
            buckets, role, origins = from_stack(cloudformation, args.stack)
        s3 = s3 or boto3.client("s3", region_name=args.region)
        found = {bucket: missing(s3, bucket, role, origins) for bucket in buckets}
    except (ClientError, BotoCoreError) as exc:
        print(f"check-bucket: {exc}", file=sys.stderr)
        return 2
    for bucket, lacks in found.items():
        if not lacks:
            print(f"{bucket}: ready")
            continue
        print(f"{bucket}: {len(lacks)} missing")
        for item in lacks:
            print(f"  - {item}")
    return 1 if any(found.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
