"""scripts/check_bucket.py against the emulator: an existing bucket lacking pieces is told what it
lacks (exit 1); one configured as docs/existing-buckets.md says is ready (exit 0)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from scripts import check_bucket
from tests.conftest import REGION, aws_client

ROLE = "arn:aws:iam::123456789012:role/directupload-dev-ProcessFunctionRole-ABC"
ORIGIN = "https://app.example.com"


@pytest.fixture
def s3(moto_server: str) -> Any:
    return aws_client("s3")


def _bucket(s3: Any) -> str:
    name = f"owned-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def _configure(s3: Any, bucket: str) -> None:
    """What the docs tell the owner to do (the local stack's existing buckets get the same)."""
    from local.provision import configure_existing_bucket
    from local.template import LocalTemplate, load

    tpl = LocalTemplate(load(), region=REGION, parameters={"AllowedOrigins": ORIGIN})
    configure_existing_bucket(tpl, s3, bucket, processor_role_arn=ROLE)


def _check(s3: Any, bucket: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = check_bucket.main(["--bucket", bucket, "--processor-role-arn", ROLE, "--origin", ORIGIN], s3=s3)
    return code, capsys.readouterr().out


def test_a_bare_bucket_is_told_everything_it_lacks(s3: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a bucket with nothing configured
    bucket = _bucket(s3)

    # When it is checked
    code, out = _check(s3, bucket, capsys)

    # Then every missing piece is named and the exit status says so
    assert code == 1
    for piece in (
        "DenyInsecureTransport",
        "OnlyTheProcessorWritesVerifiedObjects",
        f"no rule allows POST from {ORIGIN}",
        f"no rule allows PUT from {ORIGIN}",
        "EventBridge is off",
        "public access block",
    ):
        assert piece in out, out


def test_a_bucket_configured_as_the_docs_say_is_ready(s3: Any, capsys: pytest.CaptureFixture[str]) -> None:
    bucket = _bucket(s3)
    _configure(s3, bucket)

    code, out = _check(s3, bucket, capsys)

    assert (code, out.strip()) == (0, f"{bucket}: ready")


@pytest.mark.parametrize(
    "breakage",
    [
        "policy-names-another-writer",
        "no-etag-exposed",
        "eventbridge-off",
        "kms",
        "versioned-one-prefix",
        "versioned-for-a-century",
    ],
)
def test_each_piece_taken_away_is_reported(s3: Any, capsys: pytest.CaptureFixture[str], breakage: str) -> None:
    # Given a ready bucket with one piece changed
    bucket = _bucket(s3)
    _configure(s3, bucket)
    if breakage == "policy-names-another-writer":
        policy: dict[str, Any] = {
            "Version": "2012-10-17",
            "Statement": check_bucket.required_policy_statements(bucket, ROLE),
        }
        policy["Statement"][1]["Condition"]["ArnNotEquals"]["aws:PrincipalArn"] = "arn:aws:iam::123456789012:role/x"
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
        expected = "OnlyTheProcessorWritesVerifiedObjects"
    elif breakage == "no-etag-exposed":
        rule = {**check_bucket.required_cors_rule([ORIGIN]), "ExposeHeaders": []}
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [rule]})
        expected = "must expose ETag"
    elif breakage == "eventbridge-off":
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
        expected = "EventBridge is off"
    elif breakage.startswith("versioned"):
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        # one prefix only: the other prefixes' noncurrent versions stay for ever; or a century
        scope = {"Prefix": "files/"} if breakage == "versioned-one-prefix" else {}
        days = 1 if breakage == "versioned-one-prefix" else 36500
        expiring = {
            "ID": "x",
            "Status": "Enabled",
            "Filter": scope,
            "NoncurrentVersionExpiration": {"NoncurrentDays": days},
        }
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [expiring]})
        expected = "versioning: on"
    else:
        rules = [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": rules})
        expected = "SSE-KMS"

    # When it is checked
    code, out = _check(s3, bucket, capsys)

    # Then exactly that piece is reported
    assert code == 1
    assert f"{bucket}: 1 missing" in out and expected in out, out


def test_a_versioned_bucket_whose_noncurrent_versions_expire_is_ready(
    s3: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = _bucket(s3)
    _configure(s3, bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    rule = {"ID": "noncurrent", "Status": "Enabled", "Filter": {}, "NoncurrentVersionExpiration": {"NoncurrentDays": 1}}
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [rule]})

    code, out = _check(s3, bucket, capsys)

    assert (code, out.strip()) == (0, f"{bucket}: ready")


def test_a_rule_that_keeps_the_newest_noncurrent_versions_is_not_enough() -> None:
    # the emulator drops NewerNoncurrentVersions from a rule, so S3's answers are given as S3 gives them
    s3 = boto3.client("s3", region_name=REGION)
    stubber = Stubber(s3)
    stubber.add_response("get_bucket_versioning", {"Status": "Enabled"}, {"Bucket": "owned-bucket"})
    expiry = {"NoncurrentDays": 1, "NewerNoncurrentVersions": 100}
    rule = {"ID": "x", "Status": "Enabled", "Filter": {}, "NoncurrentVersionExpiration": expiry}
    stubber.add_response("get_bucket_lifecycle_configuration", {"Rules": [rule]}, {"Bucket": "owned-bucket"})

    with stubber:
        found = check_bucket.missing_version_expiry(s3, "owned-bucket")

    assert len(found) == 1 and "no NewerNoncurrentVersions" in found[0]


def test_the_stack_names_the_buckets_the_role_and_the_origins(s3: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a deployed stack (its outputs and parameters) over one ready and one bare bucket
    ready, bare = _bucket(s3), _bucket(s3)
    _configure(s3, ready)
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    stubber = Stubber(cloudformation)
    outputs = {"UploadsBuckets": f"{ready},{bare}", "ProcessFunctionRoleArn": ROLE}
    stack = {
        "StackName": "uploads",
        "CreationTime": "2026-11-22T00:00:00Z",
        "StackStatus": "CREATE_COMPLETE",
        "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()],
        "Parameters": [{"ParameterKey": "AllowedOrigins", "ParameterValue": ORIGIN}],
    }
    stubber.add_response("describe_stacks", {"Stacks": [stack]}, {"StackName": "uploads"})

    # When the stack's buckets are checked
    with stubber:
        code = check_bucket.main(["--stack", "uploads"], s3=s3, cloudformation=cloudformation)
    out = capsys.readouterr().out

    # Then the ready one passes and the bare one fails the run
    assert code == 1
    assert f"{ready}: ready" in out and f"{bare}: " in out and "missing" in out
