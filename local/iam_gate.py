"""IAM in the emulator: a function's calls are allowed or denied by its role's policies, as on AWS.

A WSGI middleware in front of moto's server. moto can authenticate requests itself
(``INITIAL_NO_AUTH_ACTION_COUNT``), but its authorization cannot test least privilege: DynamoDB
and EventBridge calls are checked against the resource ``*`` (so a grant on a table never
matches), an Allow whose condition does not hold counts as an explicit deny, bucket policies are
not evaluated for API calls, and presigned requests have no Authorization header and fail.

Who is checked: requests signed with credentials of a role assumed through the emulator's STS,
which is how the local stack runs every function (local/roles.py). The header, the query string
of a presigned URL, and the ``x-amz-credential`` field of a presigned POST form all name the
signer, and S3 checks a presigned request against its signer's permissions when it is used, as
here. Everything else (the harness's own keys, which play the account's administrator and AWS's
own services: provisioning, the event source pollers, the tests' inspection) passes unchecked.

How it decides, per AWS's evaluation logic for one account: an explicit Deny in the role's
policies or in the bucket's policy wins; otherwise an Allow in either is needed. Actions and
resources match with ``*`` and ``?`` wildcards; conditions are evaluated for the keys this gate
knows (``aws:PrincipalArn``, ``aws:SecureTransport``, ``s3:prefix``) with the common operators.
A condition on any other key never holds, so a grant that depends on one is denied locally
and shows up in a test rather than passing unnoticed.

What it does not do (also in the README): it does not verify signatures (the access key alone
names the principal), credentials do not expire, loopback HTTP counts as TLS
(``aws:SecureTransport`` is true), and only the actions of the services the product uses are
mapped (S3, DynamoDB, SQS, EventBridge, Secrets Manager, STS); an unmapped request of a checked
principal is checked as ``service:Operation`` on ``*``.
"""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

ACCOUNT = "123456789012"
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")


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


# --- policy evaluation ------------------------------------------------------------------------


def _glob(pattern: str, value: str, ignore_case: bool = False) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL) is not None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


_NEGATED = ("StringNotEquals", "StringNotLike", "ArnNotEquals", "ArnNotLike", "StringNotEqualsIgnoreCase")


def _operator_holds(operator: str, actual: str, expected: str) -> bool:
    base = operator.removesuffix("IfExists")
    if base in ("StringEquals", "StringNotEquals", "ArnEquals", "ArnNotEquals"):
        return actual == expected
    if base in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        return actual.lower() == expected.lower()
    if base in ("StringLike", "StringNotLike", "ArnLike", "ArnNotLike"):
        return _glob(expected, actual)
    if base == "Bool":
        return actual.lower() == str(expected).lower()
    raise KeyError(operator)


def _conditions_hold(conditions: dict[str, Any], context: dict[str, str]) -> bool:
    keys = {key.lower(): value for key, value in context.items()}
    for operator, tests in conditions.items():
        qualifier, _, operator = operator.rpartition(":")  # ForAnyValue:/ForAllValues: (single values here)
        base = operator.removesuffix("IfExists")
        for key, expected in tests.items():
            actual = keys.get(key.lower())
            if base == "Null":
                if (actual is None) != (str(expected).lower() == "true"):
                    return False
                continue
            if actual is None:
                if operator.endswith("IfExists") or (base in _NEGATED and not qualifier):
                    continue
                return False
            try:
                matched = any(_operator_holds(operator, actual, str(e)) for e in _as_list(expected))
            except KeyError:
                return False  # an operator this gate does not evaluate never holds
            if matched == (base in _NEGATED):
                return False
    return True


def _matches(statement: dict[str, Any], check: Check) -> bool:
    if "Action" in statement:
        if not any(_glob(a, check.action, ignore_case=True) for a in _as_list(statement["Action"])):
            return False
    elif any(_glob(a, check.action, ignore_case=True) for a in _as_list(statement.get("NotAction", []))):
        return False
    if "Resource" in statement:
        if not any(_glob(r, check.resource) for r in _as_list(statement["Resource"])):
            return False
    elif "NotResource" in statement and any(_glob(r, check.resource) for r in _as_list(statement["NotResource"])):
        return False
    return _conditions_hold(statement.get("Condition", {}), check.context)


def _names(statement: dict[str, Any], principal: Principal) -> bool:
    """Whether a resource policy statement's Principal covers this role."""
    named = statement.get("Principal")
    if named == "*":
        return True
    if not isinstance(named, dict):
        return False
    aws = _as_list(named.get("AWS", []))
    return "*" in aws or principal.role_arn in aws or principal.arn in aws


def decide(principal: Principal, check: Check, resource_policy: dict[str, Any] | None = None) -> str | None:
    """None when the request is allowed; else why it is denied (AWS's wording)."""
    context = {"aws:PrincipalArn": principal.role_arn, "aws:SecureTransport": "true", **check.context}
    scoped = Check(check.action, check.resource, context)
    identity = [s for policy in principal.policies for s in _as_list(policy.get("Statement", []))]
    resource = [s for s in _as_list((resource_policy or {}).get("Statement", [])) if _names(s, principal)]
    if any(s.get("Effect") == "Deny" and _matches(s, scoped) for s in identity):
        return "with an explicit deny in an identity-based policy"
    if any(s.get("Effect") == "Deny" and _matches(s, scoped) for s in resource):
        return "with an explicit deny in a resource-based policy"
    if any(s.get("Effect") == "Allow" and _matches(s, scoped) for s in identity + resource):
        return None
    return f"because no identity-based policy allows the {check.action} action"


# --- what a request asks for --------------------------------------------------------------------


def _s3_object_checks(method: str, bucket: str, key: str, query: dict[str, str], headers: Any) -> list[Check]:
    arn = f"arn:aws:s3:::{bucket}/{key}"
    version = "Version" if "versionId" in query else ""
    if method in ("GET", "HEAD"):
        if "tagging" in query:
            return [Check(f"s3:GetObject{version}Tagging", arn)]
        if "uploadId" in query:
            return [Check("s3:ListMultipartUploadParts", arn)]
        if "acl" in query:
            return [Check(f"s3:GetObject{version}Acl", arn)]
        if "attributes" in query:
            return [Check(f"s3:GetObject{version}", arn), Check(f"s3:GetObject{version}Attributes", arn)]
        return [Check(f"s3:GetObject{version}", arn)]
    if method == "PUT":
        if "tagging" in query:
            return [Check(f"s3:PutObject{version}Tagging", arn)]
        if "acl" in query:
            return [Check(f"s3:PutObject{version}Acl", arn)]
        checks = [Check("s3:PutObject", arn)]
        source = headers.get("x-amz-copy-source")
        if source:
            path, _, qs = unquote(source).lstrip("/").partition("?")
            checks.append(
                Check("s3:GetObjectVersion" if "versionId=" in qs else "s3:GetObject", f"arn:aws:s3:::{path}")
            )
        if headers.get("x-amz-tagging"):
            checks.append(Check("s3:PutObjectTagging", arn))
        return checks
    if method == "POST":
        return [Check("s3:RestoreObject", arn)] if "restore" in query else [Check("s3:PutObject", arn)]
    if method == "DELETE":
        if "uploadId" in query:
            return [Check("s3:AbortMultipartUpload", arn)]
        if "tagging" in query:
            return [Check(f"s3:DeleteObject{version}Tagging", arn)]
        return [Check(f"s3:DeleteObject{version}", arn)]
    return []


def _s3_checks(request: _Request) -> list[Check]:
    method, query, headers = request.method, request.query, request.headers
    bucket, _, key = request.path.lstrip("/").partition("/")
    bucket, key = unquote(bucket), unquote(key)
    if method == "OPTIONS":
        return []  # CORS preflight: anonymous by nature
    if not bucket:
        return [Check("s3:ListAllMyBuckets", "*")]
    if key:
        return _s3_object_checks(method, bucket, key, query, headers)
    arn = f"arn:aws:s3:::{bucket}"
    if method in ("GET", "HEAD"):
        if "uploads" in query:
            return [Check("s3:ListBucketMultipartUploads", arn)]
        if "versions" in query:
            return [Check("s3:ListBucketVersions", arn, {"s3:prefix": query.get("prefix", "")})]
        sub = next((name for name in query if name not in ("list-type", "prefix", "delimiter", "max-keys")), None)
        if sub and sub not in ("continuation-token", "start-after", "encoding-type", "fetch-owner", "marker"):
            return [Check(f"s3:GetBucket{sub[:1].upper()}{sub[1:]}", arn)]
        return [Check("s3:ListBucket", arn, {"s3:prefix": query.get("prefix", "")})]
    if method == "POST" and "delete" in query:
        keys = re.findall(rb"<Key>(.*?)</Key>", request.body, re.DOTALL)
        return [Check("s3:DeleteObject", f"{arn}/{k.decode()}") for k in keys] or [Check("s3:DeleteObject", f"{arn}/*")]
    if method == "POST":
        return [Check("s3:PutObject", f"{arn}/{request.form().get('key', '')}")]
    return [Check(f"s3:{'PutBucket' if method == 'PUT' else 'DeleteBucket'}", arn)]


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _dynamodb_checks(operation: str, data: dict[str, Any], region: str) -> list[Check]:
    def table(name: str, index: str | None = None) -> str:
        base = name if name.startswith("arn:") else f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{name}"
        return f"{base}/index/{index}" if index else base

    if operation in ("TransactWriteItems", "TransactGetItems"):
        actions = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem"}
        actions |= {"ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}
        return [
            Check(f"dynamodb:{actions[kind]}", table(spec["TableName"]))
            for item in data.get("TransactItems", [])
            for kind, spec in item.items()
        ]
    if operation in ("BatchWriteItem", "BatchGetItem"):
        return [Check(f"dynamodb:{operation}", table(name)) for name in data.get("RequestItems", {})]
    if "StreamArn" in data:
        return [Check(f"dynamodb:{operation}", data["StreamArn"])]
    if "TableName" in data:
        return [Check(f"dynamodb:{operation}", table(data["TableName"], data.get("IndexName")))]
    return [Check(f"dynamodb:{operation}", "*")]


def _named_arn(service: str, kind: str, name: str, region: str) -> str:
    return name if name.startswith("arn:") else f"arn:aws:{service}:{region}:{ACCOUNT}:{kind}{name}"


def _json_checks(service: str, operation: str, body: bytes, region: str) -> list[Check]:
    data = _json_body(body)
    if service == "dynamodb":
        return _dynamodb_checks(operation, data, region)
    if service == "sqs":
        # a batch call needs the permission of its single call (sqs:DeleteMessage for DeleteMessageBatch)
        operation = operation.removesuffix("Batch")
        queue = str(data.get("QueueUrl", "")).rstrip("/").rsplit("/", 1)[-1] or data.get("QueueName", "")
        return [Check(f"sqs:{operation}", f"arn:aws:sqs:{region}:{ACCOUNT}:{queue}" if queue else "*")]
    if service == "events":
        if operation == "PutEvents":
            buses = {str(entry.get("EventBusName") or "default") for entry in data.get("Entries", [])}
            return [Check("events:PutEvents", _named_arn("events", "event-bus/", bus, region)) for bus in sorted(buses)]
        bus = data.get("EventBusName") or data.get("Name")
        return [Check(f"events:{operation}", _named_arn("events", "event-bus/", bus, region) if bus else "*")]
    if service == "secretsmanager":
        secret = data.get("SecretId")
        return [Check(f"secretsmanager:{operation}", _secret_arn(secret, region) if secret else "*")]
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


def assumed_role(access_key_id: str) -> Principal | None:
    """The role whose STS credentials these are, with its policies; None for any other key."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    for assumed in sts_backends[ACCOUNT]["aws"].assumed_roles:
        if assumed.access_key_id != access_key_id:
            continue
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
    return None


def _bucket_policy(bucket: str) -> dict[str, Any] | None:
    from moto.s3.models import s3_backends

    found = s3_backends[ACCOUNT]["aws"].buckets.get(bucket)
    if found is None or not found.policy:
        return None
    return dict(json.loads(found.policy))


# --- the middleware -----------------------------------------------------------------------------


class _Request:
    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ
        self.method = str(environ["REQUEST_METHOD"]).upper()
        self.path = str(environ.get("PATH_INFO", "/"))
        self.query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}
        self.headers = _Headers(environ)
        self._body: bytes | None = None
        self._form: dict[str, str] | None = None

    @property
    def body(self) -> bytes:
        """The request body, read once and put back for moto."""
        if self._body is None:
            length = int(self.environ.get("CONTENT_LENGTH") or 0)
            self._body = self.environ["wsgi.input"].read(length) if length else b""
            self.environ["wsgi.input"] = io.BytesIO(self._body)
        return self._body

    def form(self) -> dict[str, str]:
        """The fields of a multipart/form-data POST (a presigned POST), without the file."""
        if self._form is None:
            from werkzeug.formparser import parse_form_data

            environ = {**self.environ, "wsgi.input": io.BytesIO(self.body)}
            _, fields, _ = parse_form_data(environ, stream_factory=_discard)
            self._form = {name.lower(): value for name, value in fields.items()}
        return self._form

    def credential(self) -> tuple[str, str, str] | None:
        """(access key id, region, service) of the signer, wherever the request names it."""
        found = _CREDENTIAL.search(self.headers.get("authorization", ""))
        if found:
            return found.group(1), found.group(2), found.group(3)
        scope = self.query.get("X-Amz-Credential")
        if scope is None and self.method == "POST" and "multipart/form-data" in self.headers.get("content-type", ""):
            scope = self.form().get("x-amz-credential")
        parts = (scope or "").split("/")
        return (parts[0], parts[2], parts[3]) if len(parts) == 5 else None


class _Headers:
    def __init__(self, environ: dict[str, Any]) -> None:
        self._environ = environ

    def get(self, name: str, default: str = "") -> str:
        key = name.upper().replace("-", "_")
        key = key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"
        return str(self._environ.get(key, default))


def _discard(
    total_content_length: int | None, content_type: str | None, filename: str | None, content_length: int | None = None
) -> Any:
    return _Discard()


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
    operation = request.query.get("Action") or parse_qs(request.body.decode("utf-8", "replace")).get("Action", [""])[0]
    return [Check(f"{service}:{operation}", "*")]


class IamGate:
    """Wraps moto's WSGI app: requests of an assumed role run only if its policies allow them."""

    def __init__(self, app: Callable[..., Iterable[bytes]], log: Any = sys.stderr) -> None:
        self.app = app
        self.log = log
        self.denied = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = _Request(environ)
        credential = request.credential()
        principal = assumed_role(credential[0]) if credential else None
        if principal is None or credential is None:
            return self.app(environ, start_response)
        _, region, service = credential
        for check in checks(request, service, region):
            if service == "sts" and check.action == "sts:GetCallerIdentity":
                continue
            bucket = check.resource.split(":::", 1)[1].split("/", 1)[0] if ":s3:::" in check.resource else None
            bucket_policy = _bucket_policy(bucket) if bucket else None
            reason = decide(principal, check, bucket_policy)
            if reason is not None:
                self.denied += 1
                message = (
                    f"User: {principal.arn} is not authorized to perform: {check.action} "
                    f'on resource: "{check.resource}" {reason}'
                )
                print(f"[iam] denied: {message}", file=self.log, flush=True)
                return _denial(service, message, start_response)
        return self.app(environ, start_response)


def _denial(service: str, message: str, start_response: Callable[..., Any]) -> Iterator[bytes]:
    if service == "s3":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
            f"<Message>{_xml(message)}</Message><RequestId>local</RequestId></Error>"
        ).encode()
        start_response("403 Forbidden", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
        return iter([body])
    if service in ("dynamodb", "events", "secretsmanager", "sqs"):
        code = "com.amazonaws.sqs#AccessDenied" if service == "sqs" else "AccessDeniedException"
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(body)))]
        if service == "sqs":
            headers.append(("x-amzn-query-error", "AccessDenied;Sender"))
        start_response("400 Bad Request", headers)
        return iter([body])
    body = (
        "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
        f"<Message>{_xml(message)}</Message></Error><RequestId>local</RequestId></ErrorResponse>"
    ).encode()
    start_response("403 Forbidden", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
    return iter([body])


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
