"""Least privilege, tested locally: each function's role from the SAM translation of template.yaml,
created in the emulator and assumed as the local stack assumes it; the emulator's IAM gate then
allows exactly what the role's policies and the bucket policy allow."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from local.roles import FunctionRole, create_roles
from tests.conftest import REGION, Aws, aws_client


@pytest.fixture
def roles(aws: Aws) -> dict[str, FunctionRole]:
    return create_roles(aws.template, aws_client("iam"), aws_client("sts"))


def as_role(role: FunctionRole, service: str) -> Any:
    creds = role.credentials
    return boto3.session.Session(
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=creds["AWS_SESSION_TOKEN"],
        region_name=REGION,
    ).client(service, config=Config(signature_version="s3v4", retries={"max_attempts": 1}))


def denied(call: Any, *args: Any, **kwargs: Any) -> bool:
    try:
        call(*args, **kwargs)
    except ClientError as exc:
        return exc.response["Error"]["Code"] in ("AccessDenied", "AccessDeniedException")
    return False


def test_every_function_gets_the_role_sam_writes_for_it(roles: dict[str, FunctionRole]) -> None:
    assert set(roles) == {"ApiFunction", "ProcessFunction", "ConsumerFunction", "RetentionFunction"}
    iam = aws_client("iam")
    api_role = roles["ApiFunction"].role_arn.rsplit("/", 1)[1]
    inline = iam.list_role_policies(RoleName=api_role)["PolicyNames"]
    assert inline, "the template's Policies became an inline policy"
    attached = {p["PolicyName"] for p in iam.list_attached_role_policies(RoleName=api_role)["AttachedPolicies"]}
    assert "AWSLambdaBasicExecutionRole" in attached


def test_the_api_role_signs_uploads_but_cannot_touch_verified_or_unverified_bytes(
    aws: Aws, roles: dict[str, FunctionRole]
) -> None:
    s3 = as_role(roles["ApiFunction"], "s3")
    aws.s3.put_object(Bucket=aws.bucket, Key="incoming/u1/a.txt", Body=b"staged")
    aws.s3.put_object(Bucket=aws.bucket, Key="files/u1/a.txt", Body=b"verified")

    # what it needs: sign downloads of verified objects, find completed uploads under incoming/
    assert s3.get_object(Bucket=aws.bucket, Key="files/u1/a.txt")["Body"].read() == b"verified"
    assert s3.list_objects_v2(Bucket=aws.bucket, Prefix="incoming/u1/")["KeyCount"] == 1
    # what it must not do
    assert denied(s3.get_object, Bucket=aws.bucket, Key="incoming/u1/a.txt")
    assert denied(s3.put_object, Bucket=aws.bucket, Key="files/u1/a.txt", Body=b"swapped")
    assert denied(s3.list_objects_v2, Bucket=aws.bucket, Prefix="files/")
    assert aws.s3.get_object(Bucket=aws.bucket, Key="files/u1/a.txt")["Body"].read() == b"verified"
    s3.delete_object(Bucket=aws.bucket, Key="files/u1/a.txt")  # DELETE /uploads/{id} removes it

    ddb = as_role(roles["ApiFunction"], "dynamodb")
    table = aws.env["UPLOADS_TABLE"]
    assert "Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": "nothing"}})
    assert denied(ddb.delete_item, TableName=table, Key={"pk": {"S": "x"}})
    assert denied(ddb.scan, TableName=table)
    events = as_role(roles["ApiFunction"], "events")
    assert denied(events.put_events, Entries=[{"Source": "x", "DetailType": "y", "Detail": "{}"}])


def test_a_presigned_request_runs_with_its_signers_permissions(aws: Aws, roles: dict[str, FunctionRole]) -> None:
    s3 = as_role(roles["ApiFunction"], "s3")
    for key, expected in (("incoming/u2/a.txt", 204), ("files/u2/a.txt", 403)):
        post = s3.generate_presigned_post(aws.bucket, key, ExpiresIn=60)
        reply = requests.post(post["url"], data=post["fields"], files={"file": ("a.txt", b"bytes")}, timeout=10)
        assert reply.status_code == expected, (key, reply.text)
    with pytest.raises(ClientError):  # the refused POST stored nothing
        aws.s3.head_object(Bucket=aws.bucket, Key="files/u2/a.txt")

    aws.s3.put_object(Bucket=aws.bucket, Key="quarantine/u3/a.txt", Body=b"rejected")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": aws.bucket, "Key": "quarantine/u3/a.txt"})
    assert requests.get(url, timeout=10).status_code == 403


def test_only_the_processor_writes_verified_objects_even_with_a_grant_by_mistake(
    aws: Aws, roles: dict[str, FunctionRole]
) -> None:
    processor = as_role(roles["ProcessFunction"], "s3")
    processor.put_object(Bucket=aws.bucket, Key="files/u4/a.txt", Body=b"promoted")
    assert denied(processor.put_object, Bucket=aws.bucket, Key="incoming/u4/a.txt", Body=b"x")

    # a role given s3:PutObject on everything (a mistake) is still refused by the bucket policy
    iam, sts = aws_client("iam"), aws_client("sts")
    name = f"{aws.bucket}-careless"[:64]
    arn = iam.create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
    )["Role"]["Arn"]
    grant = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_role_policy(RoleName=name, PolicyName="everything", PolicyDocument=json.dumps(grant))
    creds = sts.assume_role(RoleArn=arn, RoleSessionName="careless")["Credentials"]
    careless = FunctionRole(
        "Careless",
        arn,
        {
            "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
            "AWS_SESSION_TOKEN": creds["SessionToken"],
        },
    )
    s3 = as_role(careless, "s3")
    s3.put_object(Bucket=aws.bucket, Key="incoming/u5/a.txt", Body=b"allowed by its grant")
    assert denied(s3.put_object, Bucket=aws.bucket, Key="files/u5/a.txt", Body=b"swap")
    assert denied(s3.put_object, Bucket=aws.bucket, Key="derived/u5/thumb.png", Body=b"swap")


def test_the_retention_role_deletes_but_never_writes(aws: Aws, roles: dict[str, FunctionRole]) -> None:
    s3 = as_role(roles["RetentionFunction"], "s3")
    aws.s3.put_object(Bucket=aws.bucket, Key="files/u6/a.txt", Body=b"old")
    s3.delete_object(Bucket=aws.bucket, Key="files/u6/a.txt")
    assert denied(s3.put_object, Bucket=aws.bucket, Key="files/u6/a.txt", Body=b"x")
    assert denied(s3.get_object, Bucket=aws.bucket, Key="files/u6/a.txt")
    consumer = as_role(roles["ConsumerFunction"], "s3")
    assert denied(consumer.list_objects_v2, Bucket=aws.bucket)
