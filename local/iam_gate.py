"""IAM in the emulator: a function's calls are allowed or denied by its role's policies, as on AWS.

A WSGI middleware in front of moto's server. moto can authenticate requests itself
(``INITIAL_NO_AUTH_ACTION_COUNT``), but its authorization cannot test least privilege: DynamoDB
and EventBridge calls are checked against the resource ``*`` (so a grant on a table never
matches), an Allow whose condition does not hold counts as an explicit deny, bucket policies are
not evaluated for API calls, and presigned requests have no Authorization header and fail.

Who is checked: any request that carries the access key of a role assumed through the emulator's
STS, which is how the local stack runs every function (local/roles.py), wherever it carries it:
the Authorization header (SigV4 or SigV2), the query string of a presigned URL
(``X-Amz-Credential``, ``AWSAccessKeyId``, in any case) or the fields of a presigned POST form.
S3 checks a presigned request against its signer's permissions when it is used, as here. Everything
else (the harness's own keys, which play the account's administrator and AWS's own services:
provisioning, the event source pollers, the tests' inspection; anonymous requests) passes unchecked.

It fails closed for a role's requests: denied (``AccessDenied``) when its credential is not a
well-formed SigV4 credential (``AKID/yyyymmdd/region/service/aws4_request``, SigV2 included),
when it names more than one signer, when a presigned request's scope is not ``s3`` (moto routes
an unsigned request by its path, so it is an S3 request), when an S3 request uses virtual-host
addressing (``bucket.host``: our code signs path-style only), an S3 subresource or a form the gate
does not know, or a body the gate cannot read; a request it cannot analyse (malformed JSON,
wrong types, a bad Content-Length) gets 400 (``ValidationException``, or ``InvalidRequest`` from
S3), never a 500.

How it decides, per AWS's evaluation logic for one account: an explicit Deny in the role's
policies or in the bucket's policy wins; otherwise an Allow in either is needed. Actions and
resources match with ``*`` and ``?`` wildcards; a bucket policy's ``Principal`` and
``NotPrincipal`` match ``*``, the account (``123456789012``, ``arn:aws:iam::123456789012:root``),
the role's ARN and the session's ARN (``NotPrincipal`` exempts the session only when it lists both
the session's ARN and the account, as AWS requires). Conditions are evaluated for the keys
``aws:PrincipalArn``, ``aws:PrincipalAccount``, ``aws:SecureTransport``, ``aws:RequestedRegion``,
``s3:prefix``, and ``events:source`` and ``events:detail-type`` (each PutEvents entry is checked on
its own) with the String*, Arn* (wildcards per ARN component), Bool and Null operators,
``...IfExists`` and ``ForAnyValue:``/``ForAllValues:`` (a missing key: ForAllValues holds). A
condition this gate cannot evaluate (another key, another operator, a policy variable) never
holds on an Allow, so a grant that depends on one is denied locally and shows up in a test, and
always holds on a Deny, so the Deny applies (the denial says so).

An allowed GET or HEAD of an object that moto answers with 404 becomes 403 AccessDenied unless the
role may ``s3:ListBucket`` the bucket with ``s3:prefix`` the key, as S3 answers.

What it does not do (also in docs/development.md): it does not verify signatures (the access key alone
names the principal), credentials do not expire, loopback HTTP counts as TLS
(``aws:SecureTransport`` is true), only the actions of the services the product uses are mapped
(S3, DynamoDB, SQS, EventBridge, Secrets Manager, STS; an unmapped request of a role is checked
as ``service:Operation`` on ``*``), and a secret's ARN has no random suffix (how the local
template names secrets).
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, unquote

ACCOUNT = "123456789012"
# a signing name that moto routes to another service (moto.moto_server.werkzeug_app.SIGNING_ALIASES)
_SIGNING_ALIASES = {"eventbridge": "events"}
_JSON_SERVICES = ("dynamodb", "events", "secretsmanager", "sqs")


class Refused(Exception):
    """The gate denies the request without evaluating a policy (it cannot check it as AWS would)."""


class Unanalysable(Exception):
    """The request is malformed: the gate cannot tell what it asks for."""


@dataclass(frozen=True)
class Check:
    """One permission a request needs: an action on a resource, with the request's condition keys."""

    action: str
    resource: str
    context: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Principal:
    arn: str  # arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION
    role_arn: str  # arn:aws:iam::ACCOUNT:role/ROLE
    policies: tuple[dict[str, Any], ...]
    account: str = ACCOUNT


# --- policy evaluation ------------------------------------------------------------------------


def _glob(pattern: str, value: str, ignore_case: bool = False) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL) is not None


def _arn_like(pattern: str, value: str) -> bool:
    """ArnEquals/ArnLike: each of the six components matched on its own, with wildcards."""
    expected, actual = pattern.split(":", 5), value.split(":", 5)
    return len(expected) == len(actual) == 6 and all(_glob(e, a) for e, a in zip(expected, actual, strict=True))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# the condition keys this gate knows; a request that has no value for one of them lacks the key
KNOWN_KEYS = (
    "aws:principalarn",
    "aws:principalaccount",
    "aws:securetransport",
    "aws:requestedregion",
    "s3:prefix",
    "events:source",
    "events:detail-type",
)
_NEGATED = ("StringNotEquals", "StringNotLike", "ArnNotEquals", "ArnNotLike", "StringNotEqualsIgnoreCase")
_OPERATORS = (
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "ArnEquals",
    "ArnNotEquals",
    "ArnLike",
    "ArnNotLike",
    "Bool",
    "Null",
)


def _operator_holds(base: str, actual: str, expected: str) -> bool:
    if base in ("StringEquals", "StringNotEquals"):
        return actual == expected
    if base in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        return actual.lower() == expected.lower()
    if base in ("StringLike", "StringNotLike"):
        return _glob(expected, actual)
    if base in ("ArnEquals", "ArnNotEquals", "ArnLike", "ArnNotLike"):
        return _arn_like(expected, actual)
    return actual.lower() == expected.lower()  # Bool


def _condition(conditions: Any, context: dict[str, str]) -> tuple[bool | None, str]:
    """(True, "") when the condition block holds, (False, "") when not, (None, what) when the gate
    cannot evaluate it (a key or operator it does not know)."""
    if not isinstance(conditions, dict):
        return None, "a malformed Condition"
    keys = {key.lower(): value for key, value in context.items()}
    unknown = ""
    for full_operator, tests in conditions.items():
        qualifier, _, operator = str(full_operator).rpartition(":")
        base = operator.removesuffix("IfExists")
        if (
            base not in _OPERATORS
            or qualifier not in ("", "ForAnyValue", "ForAllValues")
            or not isinstance(tests, dict)
        ):
            unknown = unknown or f"the operator {full_operator}"
            continue
        for key, expected in tests.items():
            expected_values = [str(e).lower() if isinstance(e, bool) else str(e) for e in _as_list(expected)]
            if str(key).lower() not in KNOWN_KEYS or any("${" in e for e in expected_values):
                unknown = unknown or f"the key {key}"
                continue
            actual = keys.get(str(key).lower())
            if base == "Null":
                if not expected_values:
                    return None, f"an empty Null test on {key}"
                if (actual is None) != (expected_values[0].lower() == "true"):
                    return False, ""
                continue
            if actual is None:
                holds = qualifier == "ForAllValues" or (
                    qualifier == "" and (operator.endswith("IfExists") or base in _NEGATED)
                )
                if not holds:
                    return False, ""
                continue
            matched = any(_operator_holds(base, actual, e) for e in expected_values)
            if matched == (base in _NEGATED):
                return False, ""
    return (None, unknown) if unknown else (True, "")


def _matches(statement: dict[str, Any], check: Check) -> tuple[bool, str]:
    """Whether the statement applies to the check; for a Deny whose condition the gate cannot
    evaluate it applies, with what the gate could not evaluate as the second item."""
    if "Action" in statement:
        if not any(_glob(str(a), check.action, ignore_case=True) for a in _as_list(statement["Action"])):
            return False, ""
    elif "NotAction" not in statement or any(
        _glob(str(a), check.action, ignore_case=True) for a in _as_list(statement["NotAction"])
    ):
        return False, ""
    if "Resource" in statement:
        if not any(_glob(str(r), check.resource) for r in _as_list(statement["Resource"])):
            return False, ""
    elif "NotResource" in statement:
        if any(_glob(str(r), check.resource) for r in _as_list(statement["NotResource"])):
            return False, ""
    else:
        return False, ""
    holds, unknown = _condition(statement.get("Condition", {}), check.context)
    if holds is None:
        return statement.get("Effect") == "Deny", unknown
    return holds, ""


def _principal_listed(named: Any, principal: Principal) -> set[str]:
    """Which of the principal's identities (the account, the role, the session) ``named`` lists."""
    if named == "*":
        return {"account", "role", "session"}
    if not isinstance(named, dict):
        return set()
    listed = {str(a) for a in _as_list(named.get("AWS", []))}
    found = set()
    if "*" in listed:
        return {"account", "role", "session"}
    if principal.account in listed or f"arn:aws:iam::{principal.account}:root" in listed:
        found.add("account")
    if principal.role_arn in listed:
        found.add("role")
    if principal.arn in listed:
        found.add("session")
    return found


def _names(statement: dict[str, Any], principal: Principal) -> bool:
    """Whether a resource policy statement applies to this role's session."""
    if "Principal" in statement:
        return bool(_principal_listed(statement["Principal"], principal))
    if "NotPrincipal" in statement:
        # AWS: an assumed-role session is exempt only when both its session ARN and its account are listed
        return not {"account", "session"} <= _principal_listed(statement["NotPrincipal"], principal)
    return False


def decide(principal: Principal, check: Check, resource_policy: dict[str, Any] | None = None) -> str | None:
    """None when the request is allowed; else why it is denied (AWS's wording)."""
    context = {
        "aws:PrincipalArn": principal.role_arn,
        "aws:PrincipalAccount": principal.account,
        "aws:SecureTransport": "true",
        **check.context,
    }
    scoped = Check(check.action, check.resource, context)
    identity = [
        s for policy in principal.policies for s in _as_list(policy.get("Statement", [])) if isinstance(s, dict)
    ]
    resource = [
        s
        for s in _as_list((resource_policy or {}).get("Statement", []))
        if isinstance(s, dict) and _names(s, principal)
    ]
    for statements, kind in ((identity, "an identity-based"), (resource, "a resource-based")):
        for statement in statements:
            if statement.get("Effect") != "Deny":
                continue
            applies, unknown = _matches(statement, scoped)
            if applies:
                note = f" (its condition uses {unknown}, which the local IAM gate cannot evaluate: applied)"
                return f"with an explicit deny in {kind} policy{note if unknown else ''}"
    if any(s.get("Effect") == "Allow" and _matches(s, scoped)[0] for s in identity + resource):
        return None
    return f"because no identity-based policy allows the {check.action} action"


# --- what an S3 request asks for ----------------------------------------------------------------

# query parameters that are not subresources (list and part parameters, a presigned URL's own)
_S3_PARAMETERS = {
    "list-type",
    "prefix",
    "delimiter",
    "max-keys",
    "continuation-token",
    "start-after",
    "encoding-type",
    "fetch-owner",
    "marker",
    "key-marker",
    "version-id-marker",
    "upload-id-marker",
    "max-uploads",
    "max-parts",
    "part-number-marker",
    "partNumber",
    "x-id",
    "id",
    "select-type",
}
_BUCKET_ACTIONS: dict[str, dict[str, str]] = {
    "GET": {
        "accelerate": "GetAccelerateConfiguration",
        "acl": "GetBucketAcl",
        "analytics": "GetAnalyticsConfiguration",
        "cors": "GetBucketCORS",
        "encryption": "GetEncryptionConfiguration",
        "intelligent-tiering": "GetIntelligentTieringConfiguration",
        "inventory": "GetInventoryConfiguration",
        "lifecycle": "GetLifecycleConfiguration",
        "location": "GetBucketLocation",
        "logging": "GetBucketLogging",
        "metrics": "GetMetricsConfiguration",
        "notification": "GetBucketNotification",
        "object-lock": "GetBucketObjectLockConfiguration",
        "ownershipControls": "GetBucketOwnershipControls",
        "policy": "GetBucketPolicy",
        "policyStatus": "GetBucketPolicyStatus",
        "publicAccessBlock": "GetBucketPublicAccessBlock",
        "replication": "GetReplicationConfiguration",
        "requestPayment": "GetBucketRequestPayment",
        "tagging": "GetBucketTagging",
        "uploads": "ListBucketMultipartUploads",
        "versioning": "GetBucketVersioning",
        "versions": "ListBucketVersions",
        "website": "GetBucketWebsite",
    },
    "PUT": {
        "accelerate": "PutAccelerateConfiguration",
        "acl": "PutBucketAcl",
        "analytics": "PutAnalyticsConfiguration",
        "cors": "PutBucketCORS",
        "encryption": "PutEncryptionConfiguration",
        "intelligent-tiering": "PutIntelligentTieringConfiguration",
        "inventory": "PutInventoryConfiguration",
        "lifecycle": "PutLifecycleConfiguration",
        "logging": "PutBucketLogging",
        "metrics": "PutMetricsConfiguration",
        "notification": "PutBucketNotification",
        "object-lock": "PutBucketObjectLockConfiguration",
        "ownershipControls": "PutBucketOwnershipControls",
        "policy": "PutBucketPolicy",
        "publicAccessBlock": "PutBucketPublicAccessBlock",
        "replication": "PutReplicationConfiguration",
        "requestPayment": "PutBucketRequestPayment",
        "tagging": "PutBucketTagging",
        "versioning": "PutBucketVersioning",
        "website": "PutBucketWebsite",
    },
    "DELETE": {
        "analytics": "PutAnalyticsConfiguration",
        "cors": "PutBucketCORS",
        "encryption": "PutEncryptionConfiguration",
        "intelligent-tiering": "PutIntelligentTieringConfiguration",
        "inventory": "PutInventoryConfiguration",
        "lifecycle": "PutLifecycleConfiguration",
        "metrics": "PutMetricsConfiguration",
        "ownershipControls": "PutBucketOwnershipControls",
        "policy": "DeleteBucketPolicy",
        "publicAccessBlock": "PutBucketPublicAccessBlock",
        "replication": "PutReplicationConfiguration",
        "tagging": "PutBucketTagging",
        "website": "DeleteBucketWebsite",
    },
    "POST": {"delete": "DeleteObjects"},
}
_BUCKET_ACTIONS["HEAD"] = _BUCKET_ACTIONS["GET"]
# {V}: "Version" when the request names a versionId
_OBJECT_ACTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "GET": {
        "": ("GetObject{V}",),
        "acl": ("GetObject{V}Acl",),
        "attributes": ("GetObject{V}", "GetObject{V}Attributes"),
        "legal-hold": ("GetObjectLegalHold",),
        "retention": ("GetObjectRetention",),
        "tagging": ("GetObject{V}Tagging",),
        "torrent": ("GetObjectTorrent",),
        "uploadId": ("ListMultipartUploadParts",),
    },
    "PUT": {
        "": ("PutObject",),
        "acl": ("PutObject{V}Acl",),
        "legal-hold": ("PutObjectLegalHold",),
        "retention": ("PutObjectRetention",),
        "tagging": ("PutObject{V}Tagging",),
        "uploadId": ("PutObject",),  # UploadPart, UploadPartCopy
    },
    "POST": {
        "restore": ("RestoreObject",),
        "select": ("GetObject",),
        "uploadId": ("PutObject",),  # CompleteMultipartUpload
        "uploads": ("PutObject",),  # CreateMultipartUpload
    },
    "DELETE": {
        "": ("DeleteObject{V}",),
        "tagging": ("DeleteObject{V}Tagging",),
        "uploadId": ("AbortMultipartUpload",),
    },
}
_OBJECT_ACTIONS["HEAD"] = _OBJECT_ACTIONS["GET"]
_ACL_HEADERS = (
    "x-amz-acl",
    "x-amz-grant-full-control",
    "x-amz-grant-read",
    "x-amz-grant-read-acp",
    "x-amz-grant-write-acp",
)


def _subresource(query: dict[str, list[str]], known: Iterable[str], where: str) -> str:
    """The one subresource the query names ("" for none); Refused for an unknown one or several."""
    names = {
        name
        for name in query
        if name not in _S3_PARAMETERS and name != "versionId" and not name.startswith(("X-Amz-", "response-"))
    }
    unknown = sorted(names - set(known))
    if unknown:
        raise Refused(f"the {where} subresource {unknown[0]!r} is not known to the local IAM gate")
    if len(names) > 1:
        raise Refused(f"the request names several {where} subresources: {', '.join(sorted(names))}")
    return next(iter(names), "")


def _s3_object_checks(request: _Request, bucket: str, key: str) -> list[Check]:
    arn = f"arn:aws:s3:::{bucket}/{key}"
    method, query, headers = request.method, request.query, request.headers
    table = _OBJECT_ACTIONS.get(method)
    if table is None:
        raise Refused(f"the local IAM gate does not check {method} requests on objects")
    sub = _subresource(query, [name for name in table if name], "object")
    if sub == "" and "" not in table:
        raise Refused(f"an object {method} without a subresource is not an S3 operation the gate knows")
    version = "Version" if "versionId" in query else ""
    checks = [Check(f"s3:{action.replace('{V}', version)}", arn) for action in table[sub]]
    if method == "PUT" and sub in ("", "uploadId"):
        source = headers.get("x-amz-copy-source")
        if source:
            path, _, source_version = unquote(source).lstrip("/").partition("?versionId=")
            if "/" not in path:
                raise Unanalysable("x-amz-copy-source names no key")
            checks.append(Check("s3:GetObjectVersion" if source_version else "s3:GetObject", f"arn:aws:s3:::{path}"))
        if headers.get("x-amz-tagging"):
            checks.append(Check("s3:PutObjectTagging", arn))
        if any(headers.get(name) for name in _ACL_HEADERS):
            checks.append(Check("s3:PutObjectAcl", arn))
        if headers.get("x-amz-object-lock-mode") or headers.get("x-amz-object-lock-retain-until-date"):
            checks.append(Check("s3:PutObjectRetention", arn))
        if headers.get("x-amz-object-lock-legal-hold"):
            checks.append(Check("s3:PutObjectLegalHold", arn))
    return checks


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _delete_objects_checks(arn: str, body: bytes) -> list[Check]:
    """DeleteObjects needs s3:DeleteObject (s3:DeleteObjectVersion for an entry with a VersionId) on each key."""
    try:
        # a loopback test tool; the expat Python bundles refuses entity expansion attacks
        root = ElementTree.fromstring(body)  # noqa: S314
    except ElementTree.ParseError as exc:
        raise Refused(f"the DeleteObjects body is not XML the local IAM gate can read ({exc})") from None
    checks = []
    for entry in root.iter():
        if _local(entry.tag) != "Object":
            continue
        fields = {_local(child.tag): child.text or "" for child in entry}
        if "Key" not in fields:
            raise Refused("a DeleteObjects entry names no Key")
        action = "s3:DeleteObjectVersion" if "VersionId" in fields else "s3:DeleteObject"
        checks.append(Check(action, f"{arn}/{fields['Key']}"))
    return checks or [Check("s3:DeleteObject", f"{arn}/*")]


def _form_key(request: _Request) -> str:
    """The key a presigned POST form stores under, as moto reads it (the field named exactly ``key``)."""
    fields, filename = request.form()
    counted: dict[str, int] = {}
    for name, _ in fields:
        counted[name.lower()] = counted.get(name.lower(), 0) + 1
    duplicated = sorted(name for name, count in counted.items() if count > 1)
    if duplicated:
        raise Refused(f"the POST form has more than one {duplicated[0]!r} field")
    key = next((value for name, value in fields if name == "key"), None)
    if key is None:
        raise Refused("the POST form has no field named 'key'")
    return key.replace("${filename}", os.path.basename(filename or ""))


def _s3_checks(request: _Request) -> list[Check]:
    method, query = request.method, request.query
    if method == "OPTIONS":
        return []  # CORS preflight: anonymous by nature
    host = request.headers.get("host")
    if request.path.startswith("/v20180820/") or "s3-control" in host:
        raise Refused("S3 Control requests are not checked by the local IAM gate")
    if _virtual_host(request):
        raise Refused(f"virtual-host addressing (Host: {host}) is not checked by the local IAM gate: sign path-style")
    bucket, _, key = request.path.lstrip("/").partition("/")  # PATH_INFO is decoded already
    if not bucket:
        if method != "GET":
            raise Refused(f"the local IAM gate does not check {method} /")
        return [Check("s3:ListAllMyBuckets", "*")]
    if key:
        return _s3_object_checks(request, bucket, key)
    arn = f"arn:aws:s3:::{bucket}"
    table = _BUCKET_ACTIONS.get(method)
    if table is None:
        raise Refused(f"the local IAM gate does not check {method} requests on buckets")
    sub = _subresource(query, table, "bucket")
    prefix = request.query_value("prefix")
    if sub == "delete":
        return _delete_objects_checks(arn, request.body)
    if sub:
        context = {"s3:prefix": prefix} if sub == "versions" else {}
        return [Check(f"s3:{table[sub]}", arn, context)]
    if method in ("GET", "HEAD"):
        return [Check("s3:ListBucket", arn, {"s3:prefix": prefix})]
    if method == "PUT":
        return [Check("s3:CreateBucket", arn)]
    if method == "DELETE":
        return [Check("s3:DeleteBucket", arn)]
    if not request.is_form():
        raise Refused("a POST to a bucket is a DeleteObjects or a presigned POST form; this is neither")
    return [Check("s3:PutObject", f"{arn}/{_form_key(request)}")]


def _virtual_host(request: _Request) -> bool:
    """Whether moto takes the bucket from the Host header (moto's own test)."""
    from moto.s3.responses import S3Response

    environ = request.environ
    url = f"http://{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}/"
    host = request.headers.get("host")
    like = SimpleNamespace(headers={"host": host, "Host": host} if host else {}, url=url)
    return bool(S3Response.subdomain_based_buckets(like))


# --- what a JSON request asks for ---------------------------------------------------------------


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise Unanalysable(f"{what} must be a non-empty string")
    return value


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        raise Unanalysable("the body is not JSON") from None
    if not isinstance(parsed, dict):
        raise Unanalysable("the body is not a JSON object")
    return parsed


def _dynamodb_checks(operation: str, data: dict[str, Any], region: str) -> list[Check]:
    def table(name: Any, index: Any = None) -> str:
        name = _text(name, "TableName")
        base = name if name.startswith("arn:") else f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{name}"
        return f"{base}/index/{_text(index, 'IndexName')}" if index is not None else base

    if operation in ("TransactWriteItems", "TransactGetItems"):
        actions = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem"}
        actions |= {"ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}
        items = data.get("TransactItems", [])
        if not isinstance(items, list):
            raise Unanalysable("TransactItems must be a list")
        checks = []
        for item in items:
            if not isinstance(item, dict) or len(item) != 1:
                raise Unanalysable("each of TransactItems must name one operation")
            ((kind, spec),) = item.items()
            if kind not in actions or not isinstance(spec, dict):
                raise Unanalysable(f"TransactItems: unknown operation {kind!r}")
            checks.append(Check(f"dynamodb:{actions[kind]}", table(spec.get("TableName"))))
        return checks
    if operation in ("BatchWriteItem", "BatchGetItem"):
        requested = data.get("RequestItems", {})
        if not isinstance(requested, dict):
            raise Unanalysable("RequestItems must be a map")
        return [Check(f"dynamodb:{operation}", table(name)) for name in requested]
    if "StreamArn" in data:
        return [Check(f"dynamodb:{operation}", _text(data["StreamArn"], "StreamArn"))]
    if "TableName" in data:
        return [Check(f"dynamodb:{operation}", table(data["TableName"], data.get("IndexName")))]
    return [Check(f"dynamodb:{operation}", "*")]


def _named_arn(service: str, kind: str, name: Any, region: str, what: str) -> str:
    name = _text(name, what)
    return name if name.startswith("arn:") else f"arn:aws:{service}:{region}:{ACCOUNT}:{kind}{name}"


def _json_checks(service: str, operation: str, body: bytes, region: str) -> list[Check]:
    data = _json_body(body)
    if service == "dynamodb":
        return _dynamodb_checks(operation, data, region)
    if service == "sqs":
        # a batch call needs the permission of its single call (sqs:DeleteMessage for DeleteMessageBatch)
        operation = operation.removesuffix("Batch")
        if "QueueUrl" in data:
            queue = _text(data["QueueUrl"], "QueueUrl").rstrip("/").rsplit("/", 1)[-1]
        else:
            queue = _text(data["QueueName"], "QueueName") if "QueueName" in data else ""
        return [Check(f"sqs:{operation}", f"arn:aws:sqs:{region}:{ACCOUNT}:{queue}" if queue else "*")]
    if service == "events":
        if operation == "PutEvents":
            entries = data.get("Entries", [])
            if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
                raise Unanalysable("Entries must be a list of objects")
            # each entry is authorised on its own, with its source and detail-type as condition keys
            checks = []
            for entry in entries:
                named = _text(entry.get("EventBusName") or "default", "EventBusName")
                context = {
                    key: _text(entry[field], field)
                    for key, field in (("events:source", "Source"), ("events:detail-type", "DetailType"))
                    if entry.get(field) is not None
                }
                checks.append(
                    Check(
                        "events:PutEvents", _named_arn("events", "event-bus/", named, region, "EventBusName"), context
                    )
                )
            return checks
        bus = data.get("EventBusName") or data.get("Name")
        arn = _named_arn("events", "event-bus/", bus, region, "EventBusName") if bus is not None else "*"
        return [Check(f"events:{operation}", arn)]
    if service == "secretsmanager":
        secret = data.get("SecretId")
        return [Check(f"secretsmanager:{operation}", _secret_arn(_text(secret, "SecretId"), region) if secret else "*")]
    return [Check(f"{service}:{operation}", "*")]


def _secret_arn(secret: str, region: str) -> str:
    """The secret's ARN without the random suffix AWS appends (how the local template names it)."""
    name = secret
    try:
        from moto.secretsmanager.models import secretsmanager_backends

        name = str(secretsmanager_backends[ACCOUNT][region].secrets[secret].name)
    except (KeyError, AttributeError):
        if secret.startswith("arn:"):
            return secret
    return f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:{name}"


# --- the principal -------------------------------------------------------------------------------


def _assumed_keys() -> dict[str, Any]:
    """The access key ids of the roles assumed through the emulator's STS."""
    from moto.sts.models import sts_backends

    return {assumed.access_key_id: assumed for assumed in sts_backends[ACCOUNT]["aws"].assumed_roles}


def assumed_role(access_key_id: str) -> Principal | None:
    """The role whose STS credentials these are, with its policies; None for any other key."""
    from moto.iam.models import iam_backends

    assumed = _assumed_keys().get(access_key_id)
    if assumed is None:
        return None
    role_name = assumed.role_arn.split("/")[-1]
    iam = iam_backends[ACCOUNT]["aws"]
    role = iam.get_role(role_name)
    documents = [json.loads(doc) for doc in role.policies.values()]
    for policy in role.managed_policies.values():
        version = next(v for v in policy.versions if v.is_default)
        document = version.document
        documents.append(json.loads(document) if isinstance(document, str) else document)
    return Principal(
        f"arn:aws:sts::{ACCOUNT}:assumed-role/{role_name}/{assumed.session_name}", role.arn, tuple(documents)
    )


def _resource_policy(resource: str) -> dict[str, Any] | None:
    """The policy of the bucket an S3 ARN names; None for any other resource."""
    if ":s3:::" not in resource:
        return None
    return _bucket_policy(resource.split(":::", 1)[1].split("/", 1)[0])


def _bucket_policy(bucket: str) -> dict[str, Any] | None:
    from moto.s3.models import s3_backends

    found = s3_backends[ACCOUNT]["aws"].buckets.get(bucket)
    if found is None or not found.policy:
        return None
    return dict(json.loads(found.policy))


_SCOPE = re.compile(r"([^/\s]+)/(\d{8})/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request", re.IGNORECASE)


def _parse_scope(scope: str) -> tuple[str, str, str] | None:
    """(access key id, region, service) of a SigV4 credential scope; None when it is not one."""
    found = _SCOPE.fullmatch(scope)
    return (found.group(1), found.group(3), found.group(4).lower()) if found else None


def _parse_header(authorization: str) -> tuple[str, str, str] | None:
    """The scope of a SigV4 Authorization header, read where moto reads it (its routing depends on it)."""
    algorithm, _, rest = authorization.partition(" ")
    credential = rest.split(",")[0].strip()
    if algorithm != "AWS4-HMAC-SHA256" or not credential.startswith("Credential="):
        return None
    return _parse_scope(credential.removeprefix("Credential="))


@dataclass(frozen=True)
class Signer:
    principal: Principal
    region: str
    service: str


# --- the request ---------------------------------------------------------------------------------


class _FormRequest:
    """A form parsed as moto parses it (werkzeug), with the file parts thrown away."""

    @staticmethod
    def parse(environ: dict[str, Any]) -> tuple[list[tuple[str, str]], str | None]:
        from werkzeug.wrappers import Request

        class Discarding(Request):
            def _get_file_stream(self, *args: Any, **kwargs: Any) -> Any:
                return _Discard()

        parsed = Discarding(environ)
        fields = [(str(name), str(value)) for name, value in parsed.form.items(multi=True)]
        upload = parsed.files.get("file")
        return fields, (upload.filename if upload is not None else None)


class _Request:
    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ
        self.method = str(environ["REQUEST_METHOD"]).upper()
        self.path = str(environ.get("PATH_INFO", "/"))
        self.query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        self.headers = _Headers(environ)
        self._body: bytes | None = None
        self._form: tuple[list[tuple[str, str]], str | None] | None = None

    def query_value(self, name: str) -> str:
        return self.query.get(name, [""])[0]

    @property
    def body(self) -> bytes:
        """The request body, read once and put back for moto; Refused when it cannot be read
        without taking it from moto (no Content-Length, not chunked)."""
        if self._body is None:
            raw = self.environ.get("CONTENT_LENGTH")
            if raw not in (None, ""):
                try:
                    length = int(str(raw))
                except ValueError:
                    raise Unanalysable(f"Content-Length {raw!r} is not a number") from None
                if length < 0:
                    raise Unanalysable(f"Content-Length {raw!r} is negative")
                self._body = self.environ["wsgi.input"].read(length) if length else b""
            elif self.environ.get("wsgi.input_terminated"):
                self._body = self.environ["wsgi.input"].read()
            else:
                raise Refused("the request's body has no length, and the local IAM gate needs to read it")
            self.environ["wsgi.input"] = io.BytesIO(self._body)
        return self._body

    def is_form(self) -> bool:
        from werkzeug.http import parse_options_header

        return parse_options_header(self.headers.get("content-type"))[0].lower() == "multipart/form-data"

    def form(self) -> tuple[list[tuple[str, str]], str | None]:
        """The fields of a multipart/form-data POST (a presigned POST) and the file's name, without the file."""
        if self._form is None:
            environ = {**self.environ, "wsgi.input": io.BytesIO(self.body), "CONTENT_LENGTH": str(len(self.body))}
            self._form = _FormRequest.parse(environ)
        return self._form

    def credentials(self, role_keys: Iterable[str]) -> tuple[list[tuple[str, str, str] | None], bool]:
        """The credentials naming one of ``role_keys``, wherever the request carries them: each
        parsed as a SigV4 scope, or None where it is not one; and whether the Authorization header is one."""
        found: list[tuple[str, str, str] | None] = []
        keys = list(role_keys)

        def look(text: str, parse: Callable[[str], tuple[str, str, str] | None] | None) -> None:
            mentioned = [key for key in keys if key in text]
            if not mentioned:
                return
            scope = parse(text) if parse is not None else None
            found.append(scope if scope is not None and scope[0] in mentioned and len(mentioned) == 1 else None)

        authorization = self.headers.get("authorization")
        header_is_role = False
        if authorization:
            before = len(found)
            look(authorization, _parse_header)
            header_is_role = len(found) > before
        for name, values in self.query.items():
            if name.lower() in ("x-amz-credential", "awsaccesskeyid"):
                exact = name == "X-Amz-Credential" and len(values) == 1
                for value in values:
                    look(value, _parse_scope if exact else None)
        if self.method == "POST" and self.is_form():
            try:
                fields, _ = self.form()
            except (Refused, Unanalysable):
                fields = []  # moto reads no form from this body either
            names = [name.lower() for name, _ in fields]
            for name, value in fields:
                if name.lower() in ("x-amz-credential", "awsaccesskeyid"):
                    look(value, _parse_scope if names.count(name.lower()) == 1 else None)
        return found, header_is_role


class _Headers:
    def __init__(self, environ: dict[str, Any]) -> None:
        self._environ = environ

    def get(self, name: str, default: str = "") -> str:
        key = name.upper().replace("-", "_")
        key = key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"
        return str(self._environ.get(key, default))


class _Discard(io.RawIOBase):
    """Where a form's file part goes while the gate reads the fields: nowhere."""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return len(data)

    def seek(self, *_: Any) -> int:
        return 0


def checks(request: _Request, service: str, region: str) -> list[Check]:
    if service == "s3":
        return _s3_checks(request)
    target = request.headers.get("x-amz-target")
    if target:
        return _json_checks(service, target.rsplit(".", 1)[-1], request.body, region)
    operation = (
        request.query_value("Action") or parse_qs(request.body.decode("utf-8", "replace")).get("Action", [""])[0]
    )
    return [Check(f"{service}:{operation}", "*")]


# --- the middleware -----------------------------------------------------------------------------


class IamGate:
    """Wraps moto's WSGI app: requests of an assumed role run only if its policies allow them."""

    def __init__(self, app: Callable[..., Iterable[bytes]], log: Any = sys.stderr) -> None:
        self.app = app
        self.log = log
        self.denied = 0

    def signer(self, request: _Request) -> Signer | None:
        """The role that signed the request, its region and the service moto routes it to; None when
        no role's key is in it. Refused when it carries a role's key the gate cannot read as SigV4."""
        role_keys = _assumed_keys()
        if not role_keys:
            return None
        found, header_is_role = request.credentials(role_keys)
        if not found:
            return None
        if any(scope is None for scope in found):
            raise Refused("the request carries a role's access key in a credential that is not SigV4")
        scopes = {scope for scope in found if scope is not None}
        if len({scope[0] for scope in scopes}) > 1:
            raise Refused("the request carries the credentials of more than one principal")
        if len(scopes) > 1:
            raise Refused("the request carries credentials with different scopes")
        authorization = request.headers.get("authorization")
        if authorization and not header_is_role:
            raise Refused("the request is signed with one key and carries a role's credential besides")
        if authorization:
            parsed = _parse_header(authorization)
            if parsed is None:
                raise Refused("the Authorization header is not a SigV4 signature")
            scope = parsed
        else:
            scope = sorted(scopes)[0]
        access_key, region, service = scope
        service = _SIGNING_ALIASES.get(service, service)
        if not authorization:
            # moto routes an unsigned request by its path and body, never by the credential's scope
            if service != "s3":
                raise Refused(f"a presigned request is an S3 request, and its credential's scope names {service}")
            infer = getattr(self.app, "infer_service_region_host", None)
            host = infer(request.environ, request.path) if infer is not None else None
            if host is not None and not str(host).startswith("s3."):
                raise Refused(f"moto routes this presigned request to {host}, not to S3")
        principal = assumed_role(access_key)
        return Signer(principal, region, service) if principal is not None else None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = _Request(environ)
        # until the credential names it, a denial answers in the shape of a JSON or an S3 service
        service = "dynamodb" if request.headers.get("x-amz-target") else "s3"
        needed: list[Check] = []
        try:
            signer = self.signer(request)
            if signer is not None:
                service = signer.service
                needed = checks(request, service, signer.region)
                denial = self._evaluate(signer.principal, service, needed)
                if denial is not None:
                    return self._deny(service, denial, start_response)
        except Refused as refused:
            return self._deny(service, f"a request with a role's credential is denied: {refused}", start_response)
        except Exception as exc:  # noqa: BLE001 - a request the gate cannot analyse gets 400, never 500
            self.denied += 1
            print(f"[iam] invalid request: {type(exc).__name__}: {exc}", file=self.log, flush=True)
            return _invalid(service, f"the local IAM gate cannot analyse this request: {exc}", start_response)
        if signer is not None and service == "s3" and len(needed) == 1 and needed[0].action == "s3:GetObject":
            return self._missing_as_denied(environ, start_response, signer.principal, needed[0])
        return self.app(environ, start_response)

    def _evaluate(self, principal: Principal, service: str, needed: list[Check]) -> str | None:
        """None when every check is allowed; else the denial's message."""
        for check in needed:
            if service == "sts" and check.action == "sts:GetCallerIdentity":
                continue
            reason = decide(principal, check, _resource_policy(check.resource))
            if reason is not None:
                return (
                    f"User: {principal.arn} is not authorized to perform: {check.action} "
                    f'on resource: "{check.resource}" {reason}'
                )
        return None

    def _missing_as_denied(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        principal: Principal,
        check: Check,
    ) -> Iterable[bytes]:
        """S3 answers a GET/HEAD of a missing key 403, not 404, unless the caller may list it."""
        bucket_arn, _, key = check.resource.partition("/")
        listing = Check("s3:ListBucket", bucket_arn, {"s3:prefix": key})
        hidden: list[str] = []

        def watching(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if status.startswith("404") and decide(principal, listing, _resource_policy(bucket_arn)) is not None:
                hidden.append(f"User: {principal.arn} is not authorized to perform: s3:ListBucket on {bucket_arn}")
                return lambda data: None
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        result = self.app(environ, watching)
        if not hidden:
            return result
        close = getattr(result, "close", None)
        if close is not None:
            close()
        denial = self._deny("s3", hidden[0], start_response)
        return [b""] if environ.get("REQUEST_METHOD", "").upper() == "HEAD" else denial

    def _deny(self, service: str, message: str, start_response: Callable[..., Any]) -> Iterator[bytes]:
        self.denied += 1
        print(f"[iam] denied: {message}", file=self.log, flush=True)
        return _denial(service, message, start_response)


# how each protocol words a refusal (403, AccessDenied) and an unreadable request (400)
_DENIED = ("403 Forbidden", "AccessDenied", "AccessDeniedException", "AccessDenied", "AccessDenied")
_INVALID = ("400 Bad Request", "InvalidRequest", "ValidationException", "ValidationException", "ValidationError")


def _denial(service: str, message: str, start_response: Callable[..., Any]) -> Iterator[bytes]:
    return _error(_DENIED, service, message, start_response)


def _invalid(service: str, message: str, start_response: Callable[..., Any]) -> Iterator[bytes]:
    return _error(_INVALID, service, message, start_response)


def _error(
    kind: tuple[str, str, str, str, str], service: str, message: str, start_response: Callable[..., Any]
) -> Iterator[bytes]:
    status, s3_code, json_code, json_type, query_code = kind
    if service == "s3":
        return _s3_error(status, s3_code, message, start_response)
    if service in _JSON_SERVICES:
        code = f"com.amazonaws.sqs#{json_type}" if service == "sqs" else json_code
        return _json_error(service, code, json_type, message, start_response)
    return _query_error(status, query_code, message, start_response)


def _s3_error(status: str, code: str, message: str, start_response: Callable[..., Any]) -> Iterator[bytes]:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>{_xml(message)}</Message><RequestId>local</RequestId></Error>"
    ).encode()
    start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
    return iter([body])


def _json_error(
    service: str, code: str, query_code: str, message: str, start_response: Callable[..., Any]
) -> Iterator[bytes]:
    body = json.dumps({"__type": code, "message": message}).encode()
    headers = [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(body)))]
    if service == "sqs":
        headers.append(("x-amzn-query-error", f"{query_code};Sender"))
    start_response("400 Bad Request", headers)
    return iter([body])


def _query_error(status: str, code: str, message: str, start_response: Callable[..., Any]) -> Iterator[bytes]:
    body = (
        f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
        f"<Message>{_xml(message)}</Message></Error><RequestId>local</RequestId></ErrorResponse>"
    ).encode()
    start_response(status, [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
    return iter([body])


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
