"""Least privilege, tested locally: each function's role from the SAM translation of template.yaml,
created in the emulator and assumed as the local stack assumes it; the emulator's IAM gate then
allows exactly what the role's policies and the bucket policy allow."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from urllib3 import encode_multipart_formdata

from local.iam_gate import ACCOUNT, Check, Principal, decide
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
    assert set(roles) == {"ApiFunction", "ProcessFunction", "ConsumerFunction", "RetentionFunction", "PublishFunction"}
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


def reads_and_changes_no_record(aws: Aws, role: FunctionRole) -> bool:
    """Whether ``role`` is refused a record's read and its update."""
    ddb, table = as_role(role, "dynamodb"), aws.env["UPLOADS_TABLE"]
    key = {"pk": {"S": "upload#x"}}
    change = {"UpdateExpression": "SET a = :a", "ExpressionAttributeValues": {":a": {"S": "b"}}}
    return denied(ddb.get_item, TableName=table, Key=key) and denied(
        ddb.update_item, TableName=table, Key=key, **change
    )


def test_the_retention_role_deletes_but_never_writes(aws: Aws, roles: dict[str, FunctionRole]) -> None:
    s3 = as_role(roles["RetentionFunction"], "s3")
    aws.s3.put_object(Bucket=aws.bucket, Key="files/u6/a.txt", Body=b"old")
    s3.delete_object(Bucket=aws.bucket, Key="files/u6/a.txt")
    assert denied(s3.put_object, Bucket=aws.bucket, Key="files/u6/a.txt", Body=b"x")
    assert denied(s3.get_object, Bucket=aws.bucket, Key="files/u6/a.txt")
    # records: it puts tombstones (conditionally), and reads or changes none
    assert reads_and_changes_no_record(aws, roles["RetentionFunction"])
    consumer = as_role(roles["ConsumerFunction"], "s3")
    assert denied(consumer.list_objects_v2, Bucket=aws.bucket)


def test_only_the_publish_function_sends_events_and_only_the_product_s_own(
    aws: Aws, roles: dict[str, FunctionRole]
) -> None:
    bus = aws.template.physical_name("EventBus")

    def put(function: str, source: str, detail_type: str) -> Any:
        entry = {"Source": source, "DetailType": detail_type, "Detail": "{}", "EventBusName": bus}
        return as_role(roles[function], "events").put_events(Entries=[entry])

    every = ("Upload Processed", "Upload Rejected", "Upload Failed", "Upload Deleted")
    for kind in every:
        assert put("PublishFunction", "directupload", kind)["FailedEntryCount"] == 0, kind
        # the functions that write records owe events; they never send one
        for writer in ("ApiFunction", "ProcessFunction", "RetentionFunction"):
            assert denied(put, writer, "directupload", kind), (writer, kind)
    # nor under another source, nor anything else on the bus
    assert denied(put, "PublishFunction", "com.example.billing", "Upload Processed")
    assert denied(put, "PublishFunction", "directupload", "Invoice Paid")


def test_the_publish_function_reads_nothing_and_writes_no_record(aws: Aws, roles: dict[str, FunctionRole]) -> None:
    assert reads_and_changes_no_record(aws, roles["PublishFunction"])
    ddb = as_role(roles["PublishFunction"], "dynamodb")
    assert denied(ddb.put_item, TableName=aws.env["UPLOADS_TABLE"], Item={"pk": {"S": "upload#x"}})
    aws.s3.put_object(Bucket=aws.bucket, Key="files/u9/a.txt", Body=b"verified")
    s3 = as_role(roles["PublishFunction"], "s3")
    assert denied(s3.get_object, Bucket=aws.bucket, Key="files/u9/a.txt")
    assert denied(s3.delete_object, Bucket=aws.bucket, Key="files/u9/a.txt")


# --- the gate fails closed: requests made by hand, as a careless or hostile caller would -------


def key_of(role: FunctionRole) -> str:
    return role.credentials["AWS_ACCESS_KEY_ID"]


def signed(role: FunctionRole, service: str = "s3", scope_date: str = "20240101") -> dict[str, str]:
    """A SigV4 Authorization header naming the role (the gate reads the signer, never the signature)."""
    credential = f"{key_of(role)}/{scope_date}/{REGION}/{service}/aws4_request"
    return {
        "Authorization": f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host, Signature=00",
        "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
    }


def code_of(reply: requests.Response) -> str:
    found = re.search(r"<Code>([^<]+)</Code>", reply.text)
    if found:
        return found.group(1)
    return str(reply.json().get("__type", "")) if reply.text.startswith("{") else ""


def test_a_roles_key_in_a_credential_the_gate_cannot_read_as_sigv4_is_denied(
    aws: Aws, roles: dict[str, FunctionRole]
) -> None:
    api = roles["ApiFunction"]
    aws.s3.put_object(Bucket=aws.bucket, Key="quarantine/u7/a.txt", Body=b"rejected")
    url = f"{aws.endpoint}/{aws.bucket}/quarantine/u7/a.txt"
    scope = f"{key_of(api)}/20240101/{REGION}/s3/aws4_request"
    attempts = {
        "SigV2 header": requests.get(url, headers={"Authorization": f"AWS {key_of(api)}:c2ln"}, timeout=10),
        "malformed date": requests.get(url, headers=signed(api, scope_date="2024"), timeout=10),
        "lower-case query name": requests.get(url, params={"x-amz-credential": scope}, timeout=10),
        "SigV2 query": requests.get(url, params={"awsaccesskeyid": key_of(api), "Signature": "x"}, timeout=10),
        "scope with six parts": requests.get(url, params={"X-Amz-Credential": scope + "/x"}, timeout=10),
        "presigned for another service": requests.get(
            url, params={"X-Amz-Credential": scope.replace("/s3/", "/logs/"), "Action": "CreateLogGroup"}, timeout=10
        ),
    }
    for what, reply in attempts.items():
        assert reply.status_code == 403 and code_of(reply) == "AccessDenied", (what, reply.text)
    # SigV2 from boto3 too
    legacy = boto3.session.Session(
        aws_access_key_id=key_of(api),
        aws_secret_access_key=api.credentials["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=api.credentials["AWS_SESSION_TOKEN"],
        region_name=REGION,
    ).client("s3", config=Config(signature_version="s3", retries={"max_attempts": 1}))
    assert denied(legacy.get_object, Bucket=aws.bucket, Key="files/u7/any.txt")
    # keys that are not assumed roles pass unchecked, whatever their form
    reply = requests.get(url, headers={"Authorization": "AWS local:c2ln"}, timeout=10)
    assert reply.status_code == 200 and reply.content == b"rejected"


def test_virtual_host_addressing_from_a_role_is_denied(aws: Aws, roles: dict[str, FunctionRole]) -> None:
    processor = roles["ProcessFunction"]
    port = aws.endpoint.rsplit(":", 1)[1]
    for host in (f"{aws.bucket}.localhost:{port}", f"{aws.bucket}.s3.amazonaws.com"):
        reply = requests.put(
            f"{aws.endpoint}/incoming/u8/a.txt", data=b"x", headers={**signed(processor), "Host": host}, timeout=10
        )
        assert reply.status_code == 403 and "virtual-host addressing" in reply.text, (host, reply.text)


def test_bucket_subresources_are_checked_as_their_own_actions(aws: Aws, roles: dict[str, FunctionRole]) -> None:
    processor = roles["ProcessFunction"]  # may s3:ListBucket, and nothing else on the bucket
    url = f"{aws.endpoint}/{aws.bucket}"
    assert requests.get(url, params={"list-type": "2"}, headers=signed(processor), timeout=10).status_code == 200
    for query, action in (
        ("continuation-token=x&policy", "s3:GetBucketPolicy"),
        ("prefix=incoming/&start-after=&acl", "s3:GetBucketAcl"),
        ("lifecycle", "s3:GetLifecycleConfiguration"),
        ("encoding-type=url&encryption", "s3:GetEncryptionConfiguration"),
    ):
        reply = requests.get(f"{url}?{query}", headers=signed(processor), timeout=10)
        assert reply.status_code == 403 and action in reply.text, (query, reply.text)
    reply = requests.put(f"{url}?policy", data=b"{}", headers=signed(processor), timeout=10)
    assert reply.status_code == 403 and "s3:PutBucketPolicy" in reply.text
    reply = requests.get(f"{url}?no-such-subresource", headers=signed(processor), timeout=10)
    assert reply.status_code == 403 and "no-such-subresource" in reply.text


def delete_objects(aws: Aws, role: FunctionRole, body: bytes, chunked: bool = False) -> requests.Response:
    headers = {**signed(role), "Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode()}
    data: Any = iter([body]) if chunked else body  # an iterator goes out chunked
    return requests.post(f"{aws.endpoint}/{aws.bucket}?delete", data=data, headers=headers, timeout=10)


def test_delete_objects_is_checked_key_by_key_from_its_xml(aws: Aws, roles: dict[str, FunctionRole]) -> None:
    processor = roles["ProcessFunction"]  # deletes incoming/, files/, derived/; never quarantine/
    aws.s3.put_object(Bucket=aws.bucket, Key="incoming/u9/a.txt", Body=b"staged")
    aws.s3.put_object(Bucket=aws.bucket, Key="quarantine/u9/a.txt", Body=b"rejected")
    sneaky = (
        b'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>incoming/u9/a.txt</Key></Object>'
        b"<Object><Key >quarantine/u9/a.txt</Key ></Object></Delete>"
    )
    reply = delete_objects(aws, processor, sneaky)
    assert reply.status_code == 403 and "quarantine/u9/a.txt" in reply.text
    versioned = b"<Delete><Object><Key>incoming/u9/a.txt</Key><VersionId>v1</VersionId></Object></Delete>"
    reply = delete_objects(aws, processor, versioned)
    assert reply.status_code == 403 and "s3:DeleteObjectVersion" in reply.text
    assert delete_objects(aws, processor, b"<Delete><Object><Key>incoming/").status_code == 403
    keys = [o["Key"] for o in aws.s3.list_objects_v2(Bucket=aws.bucket)["Contents"]]
    assert {"incoming/u9/a.txt", "quarantine/u9/a.txt"} <= set(keys)
    # a chunked body (no Content-Length) is read to its end, and what it names is checked
    reply = delete_objects(aws, processor, sneaky, chunked=True)
    assert reply.status_code == 403 and "quarantine/u9/a.txt" in reply.text
    allowed = b"<Delete><Object><Key>incoming/u9/a.txt</Key></Object></Delete>"
    reply = delete_objects(aws, processor, allowed, chunked=True)
    assert code_of(reply) != "AccessDenied", reply.text  # past the gate (moto wants a Content-Length: 411)
    # no length and not chunked: the gate cannot read the body without taking it from moto
    host, port = aws.endpoint.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.putrequest("POST", f"/{aws.bucket}?delete")
    for name, value in signed(processor).items():
        connection.putheader(name, value)
    connection.endheaders()
    unread = connection.getresponse()
    assert unread.status == 403 and b"no length" in unread.read()
    connection.close()


def test_object_subresources_and_posts_are_checked_as_their_own_actions(
    aws: Aws, roles: dict[str, FunctionRole]
) -> None:
    processor, api = roles["ProcessFunction"], roles["ApiFunction"]
    aws.s3.put_object(Bucket=aws.bucket, Key="files/u10/a.csv", Body=b"a,b\n1,2\n")
    url = f"{aws.endpoint}/{aws.bucket}/files/u10/a.csv"
    # the processor writes files/ but never reads it: S3 Select reads
    reply = requests.post(f"{url}?select&select-type=2", data=b"<x/>", headers=signed(processor), timeout=10)
    assert reply.status_code == 403 and "s3:GetObject" in reply.text
    for query, action in (("retention", "s3:GetObjectRetention"), ("legal-hold", "s3:GetObjectLegalHold")):
        reply = requests.get(f"{url}?{query}", headers=signed(api), timeout=10)  # api may GetObject files/
        assert reply.status_code == 403 and action in reply.text, reply.text
    reply = requests.post(f"{url}?bogus", data=b"", headers=signed(processor), timeout=10)
    assert reply.status_code == 403 and "bogus" in reply.text
    # a form posted to an object's path: moto stores it under the form's key; not an operation to allow
    post = as_role(api, "s3").generate_presigned_post(aws.bucket, "incoming/u10/x.txt", ExpiresIn=60)
    fields = {**post["fields"], "key": "files/u10/via-path.txt"}
    reply = requests.post(f"{url}", data=fields, files={"file": ("x", b"x")}, timeout=10)
    assert reply.status_code == 403, reply.text


def form(fields: list[tuple[str, Any]], content_type: str | None = None) -> tuple[bytes, str]:
    body, mime = encode_multipart_formdata(fields)
    return body, content_type.join(mime.split("multipart/form-data")) if content_type else mime


def test_a_presigned_post_form_is_read_as_moto_reads_it(aws: Aws, roles: dict[str, FunctionRole]) -> None:
    api = as_role(roles["ApiFunction"], "s3")
    post = api.generate_presigned_post(aws.bucket, "incoming/u11/x.txt", ExpiresIn=60)
    others = [(name, value) for name, value in post["fields"].items() if name != "key"]
    attempts = {
        "content type in another case": form(
            [*others, ("key", "files/u11/a.txt"), ("file", ("x", b"x"))], "Multipart/Form-Data"
        ),
        "two key fields": form(
            [("key", "files/u11/b.txt"), *others, ("Key", "incoming/u11/b.txt"), ("file", ("x", b"x"))]
        ),
        "${filename}": form([*others, ("key", "${filename}"), ("file", ("files/u11/c.txt", b"x"))]),
        "credential field in another case": form(
            [
                *[(n.upper() if n == "x-amz-credential" else n, v) for n, v in others],
                ("key", "files/u11/d.txt"),
                ("file", ("x", b"x")),
            ]
        ),
    }
    for what, (body, content_type) in attempts.items():
        reply = requests.post(post["url"], data=body, headers={"Content-Type": content_type}, timeout=10)
        assert reply.status_code == 403, (what, reply.text)
    assert aws.s3.list_objects_v2(Bucket=aws.bucket).get("KeyCount") == 0
    body, content_type = form([*others, ("key", "incoming/u11/${filename}"), ("file", ("ok.txt", b"x"))])
    assert requests.post(post["url"], data=body, headers={"Content-Type": content_type}, timeout=10).status_code == 204
    assert aws.s3.get_object(Bucket=aws.bucket, Key="incoming/u11/ok.txt")["Body"].read() == b"x"


def test_the_path_is_decoded_once(aws: Aws, roles: dict[str, FunctionRole]) -> None:
    api = roles["ApiFunction"]  # may PutObject under incoming/ only
    reply = requests.put(f"{aws.endpoint}/{aws.bucket}/%2569ncoming/u12/x", data=b"x", headers=signed(api), timeout=10)
    assert reply.status_code == 403, reply.text
    assert aws.s3.list_objects_v2(Bucket=aws.bucket).get("KeyCount") == 0


def test_a_missing_object_is_403_for_a_role_that_may_not_list_it(aws: Aws, roles: dict[str, FunctionRole]) -> None:
    api, processor = as_role(roles["ApiFunction"], "s3"), as_role(roles["ProcessFunction"], "s3")
    with pytest.raises(ClientError) as raised:  # api reads files/, lists incoming/ only
        api.head_object(Bucket=aws.bucket, Key="files/u13/missing.txt")
    assert raised.value.response["Error"]["Code"] == "403"
    assert denied(api.get_object, Bucket=aws.bucket, Key="files/u13/missing.txt")
    with pytest.raises(ClientError) as raised:  # the processor may list the bucket: TellMissingObjectsApart
        processor.head_object(Bucket=aws.bucket, Key="incoming/u13/missing.txt")
    assert raised.value.response["Error"]["Code"] == "404"
    with pytest.raises(ClientError) as raised:
        processor.get_object(Bucket=aws.bucket, Key="incoming/u13/missing.txt")
    assert raised.value.response["Error"]["Code"] == "NoSuchKey"


def test_a_request_the_gate_cannot_analyse_gets_400_never_500(aws: Aws, roles: dict[str, FunctionRole]) -> None:
    api = roles["ApiFunction"]
    for target, payload in (
        ("DynamoDB_20120810.TransactWriteItems", {"TransactItems": [{"Bogus": {"TableName": "t"}}]}),
        ("DynamoDB_20120810.TransactWriteItems", {"TransactItems": "abc"}),
        ("DynamoDB_20120810.BatchWriteItem", {"RequestItems": [{"a": 1}]}),
        ("DynamoDB_20120810.GetItem", {"TableName": 5}),
        ("AWSEvents.PutEvents", {"Entries": {"a": 1}}),
    ):
        service = "events" if target.startswith("AWSEvents") else "dynamodb"
        headers = {**signed(api, service), "X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"}
        reply = requests.post(aws.endpoint + "/", data=json.dumps(payload), headers=headers, timeout=10)
        assert reply.status_code == 400 and code_of(reply) == "ValidationException", (payload, reply.text)
    host, port = aws.endpoint.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.putrequest("POST", f"/{aws.bucket}?delete")
    for name, value in {**signed(api), "Content-Length": "abc"}.items():
        connection.putheader(name, value)
    connection.endheaders(b"<Delete/>")
    reply_status = connection.getresponse()
    assert reply_status.status == 400 and b"InvalidRequest" in reply_status.read()
    connection.close()


# --- the evaluation logic --------------------------------------------------------------------

ROLE = f"arn:aws:iam::{ACCOUNT}:role/r"
SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/r/s"
PUT = Check("s3:PutObject", "arn:aws:s3:::b/files/x")


def may_put_anything() -> Principal:
    return Principal(SESSION, ROLE, ({"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]},))


def bucket_deny(**statement: Any) -> dict[str, Any]:
    return {"Statement": [{"Effect": "Deny", "Action": "s3:PutObject", "Resource": "*", **statement}]}


def test_a_deny_the_gate_cannot_evaluate_applies_and_says_so() -> None:
    principal = may_put_anything()
    for condition in (
        {"StringEquals": {"s3:x-amz-acl": "public-read"}},
        {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
        {"DateGreaterThan": {"aws:CurrentTime": "2000-01-01T00:00:00Z"}},
    ):
        reason = decide(principal, PUT, bucket_deny(Principal="*", Condition=condition))
        assert reason is not None and "cannot evaluate" in reason, condition
    # an Allow that depends on one never holds
    conditional = Principal(SESSION, ROLE, (bucket_deny(Condition={"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),))
    allow = json.loads(json.dumps(conditional.policies[0]).replace('"Deny"', '"Allow"'))
    assert decide(Principal(SESSION, ROLE, (allow,)), PUT) is not None
    # an evaluable Deny condition that does not hold does not apply
    assert (
        decide(principal, PUT, bucket_deny(Principal="*", Condition={"Bool": {"aws:SecureTransport": "false"}})) is None
    )


def test_principals_of_a_bucket_policy_match_as_on_aws() -> None:
    principal = may_put_anything()
    for named in (ACCOUNT, f"arn:aws:iam::{ACCOUNT}:root", ROLE, SESSION, "*"):
        assert decide(principal, PUT, bucket_deny(Principal={"AWS": named})) is not None, named
    assert decide(principal, PUT, bucket_deny(Principal={"AWS": "arn:aws:iam::999999999999:root"})) is None
    # NotPrincipal: the session is exempt only when its ARN and its account are listed
    assert decide(principal, PUT, bucket_deny(NotPrincipal={"AWS": f"arn:aws:iam::{ACCOUNT}:role/other"})) is not None
    assert decide(principal, PUT, bucket_deny(NotPrincipal={"AWS": ROLE})) is not None
    assert decide(principal, PUT, bucket_deny(NotPrincipal={"AWS": [SESSION, ACCOUNT]})) is None


def test_arn_conditions_match_component_by_component() -> None:
    principal = may_put_anything()

    def deny_if(operator: str, pattern: str) -> bool:
        policy = bucket_deny(Principal="*", Condition={operator: {"aws:PrincipalArn": pattern}})
        return decide(principal, PUT, policy) is not None

    assert deny_if("ArnEquals", f"arn:aws:iam::{ACCOUNT}:role/r*")
    assert deny_if("ArnLike", "arn:aws:iam::*:role/?")
    assert not deny_if("ArnLike", "arn:aws:iam:*:role/r")  # five components: never an ARN match
    assert not deny_if("ArnNotEquals", f"arn:aws:iam::{ACCOUNT}:role/r*")  # the role is exempt
    assert deny_if("ArnNotLike", f"arn:aws:iam::{ACCOUNT}:role/other")


def test_for_all_values_on_a_missing_key_holds() -> None:
    grant = {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"}
    for qualifier, allowed in (("ForAllValues", True), ("ForAnyValue", False)):
        condition = {f"{qualifier}:StringLike": {"s3:prefix": ["incoming/*"]}}  # no s3:prefix on a PutObject
        principal = Principal(SESSION, ROLE, ({"Statement": [{**grant, "Condition": condition}]},))
        assert (decide(principal, PUT) is None) == allowed, qualifier
