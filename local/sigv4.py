"""IAM authorization of the HTTP API's AWS_IAM routes, locally: what API Gateway does before it
calls the function for a route with ``Authorizer: AWS_IAM`` (the trusted-backend routes).

API Gateway recomputes the request's SigV4 signature (service ``execute-api``) with the secret
of the access key it names, refuses a stale or tampered request, and evaluates the caller's IAM
policies for ``execute-api:Invoke`` on the route's ARN; the function then gets the caller in
``requestContext.authorizer.iam``. Locally, the secret of an access key is known where the
credentials were issued: the emulator's STS (the role sessions of ``sts:AssumeRole``). So the
check runs in the emulator's process (``VerifyingApp``, in front of the IAM gate) and the gateway
asks it over loopback (``EmulatorVerifier``): the request goes there, the verdict and the caller
come back, a secret never leaves the emulator. The signature is recomputed with botocore's own
signer over exactly the headers the request says it signed.

Refused (403, each with API Gateway's wording): no Authorization header, a header that is not
SigV4, a credential scope for another service or region, no or a stale ``X-Amz-Date`` (more than
5 minutes off), an access key STS never issued or a session token that is not the key's, a
signature that does not match, a body other than the one ``X-Amz-Content-SHA256`` names, or a
role whose policies do not allow ``execute-api:Invoke`` on the route. IAM users' keys are not
known locally (the local stack's callers are role sessions).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

VERIFY_PATH = "/_local/verify-sigv4"
SERVICE = "execute-api"
MAX_SKEW = timedelta(minutes=5)
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=([^/\s,]+)/(\d{8})/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request,\s*"
    r"SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})"
)


class SignatureRefused(PermissionError):
    """The request is not one API Gateway's IAM authorization lets through (a 403)."""


@dataclass(frozen=True)
class Authorization:
    access_key: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


@dataclass(frozen=True)
class KnownKey:
    """What STS knows of an access key it issued."""

    secret_key: str
    session_token: str
    session_arn: str  # arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION
    user_id: str  # ROLEID:SESSION
    account: str


def parse_authorization(value: str) -> Authorization:
    found = _AUTHORIZATION.fullmatch(value.strip())
    if found is None:
        raise SignatureRefused("Authorization header requires a SigV4 AWS4-HMAC-SHA256 signature")
    access_key, date, region, service, signed, signature = found.groups()
    return Authorization(access_key, date, region, service, tuple(signed.split(";")), signature)


def _header(headers: dict[str, str], name: str) -> str | None:
    return next((value for key, value in headers.items() if key.lower() == name), None)


def verify(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    *,
    region: str,
    known_key: Callable[[str], KnownKey | None],
    now: datetime | None = None,
) -> tuple[Authorization, KnownKey]:
    """Check the request's SigV4 signature as API Gateway does; SignatureRefused says why not."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest, HTTPHeaders
    from botocore.credentials import Credentials

    value = _header(headers, "authorization")
    if not value:
        raise SignatureRefused("Missing Authentication Token (sign the request with SigV4)")
    auth = parse_authorization(value)
    if auth.service != SERVICE or auth.region != region:
        raise SignatureRefused(f"Credential should be scoped to a valid region and service {SERVICE} in {region}")
    signed = set(auth.signed_headers)
    if "host" not in signed or "x-amz-date" not in signed:
        raise SignatureRefused("SignedHeaders must include host and x-amz-date")
    stamp = _header(headers, "x-amz-date") or ""
    try:
        when = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise SignatureRefused("X-Amz-Date is missing or not a SigV4 timestamp") from None
    if abs((now or datetime.now(UTC)) - when) > MAX_SKEW or stamp[:8] != auth.date:
        raise SignatureRefused("Signature expired: the request's X-Amz-Date is more than 5 minutes off")
    key = known_key(auth.access_key)
    if key is None or not hmac.compare_digest(key.session_token, _header(headers, "x-amz-security-token") or ""):
        raise SignatureRefused("The security token included in the request is invalid")
    content_sha = _header(headers, "x-amz-content-sha256")
    if content_sha is not None and content_sha != hashlib.sha256(body).hexdigest():
        raise SignatureRefused("The request body does not match its X-Amz-Content-SHA256")

    request = AWSRequest(method=method, url=url, data=body)
    request.context["timestamp"] = stamp
    for name in auth.signed_headers:
        present = _header(headers, name)
        if present is None:
            raise SignatureRefused(f"the signed header {name} is not in the request")
        request.headers[name] = present

    class Receiving(SigV4Auth):
        def headers_to_sign(self, request: Any) -> Any:  # exactly what the caller signed
            chosen = HTTPHeaders()
            for name in auth.signed_headers:
                chosen[name] = request.headers[name]
            return chosen

    signer = Receiving(Credentials(auth.access_key, key.secret_key, key.session_token), SERVICE, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, auth.signature):
        raise SignatureRefused(
            "The request signature we calculated does not match the signature you provided. Check your AWS "
            "Secret Access Key and signing method."
        )
    return auth, key


def iam_context(auth: Authorization, key: KnownKey) -> dict[str, Any]:
    """``requestContext.authorizer.iam`` as API Gateway's payload 2.0 gives it."""
    return {
        "accessKey": auth.access_key,
        "accountId": key.account,
        "callerId": key.user_id,
        "cognitoIdentity": None,
        "principalOrgId": None,
        "userArn": key.session_arn,
        "userId": key.user_id,
    }


def route_arn(region: str, account: str, api_id: str, stage: str, method: str, path: str) -> str:
    """The resource ``execute-api:Invoke`` is checked on: ``API_ID/STAGE/METHOD/path``."""
    return f"arn:aws:execute-api:{region}:{account}:{api_id}/{stage}/{method.upper()}/{path.lstrip('/')}"


# --- in the emulator's process ------------------------------------------------------------------


def _sts_key(access_key: str) -> KnownKey | None:
    from moto.sts.models import sts_backends

    from local.iam_gate import ACCOUNT

    for assumed in sts_backends[ACCOUNT]["aws"].assumed_roles:
        if assumed.access_key_id == access_key:
            return KnownKey(
                assumed.secret_access_key, assumed.session_token, assumed.arn, assumed.user_id, assumed.account_id
            )
    return None


class VerifyingApp:
    """WSGI middleware of the emulator: ``POST /_local/verify-sigv4`` with the request as JSON
    ``{method, url, headers, body (base64), region, resource}`` answers 200 ``{"iam": ...}`` or
    403 ``{"message": ...}``; anything else goes to the wrapped app."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != VERIFY_PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        payload: dict[str, Any]
        try:
            asked = json.loads(environ["wsgi.input"].read(length))
            status, payload = 200, {"iam": self._verify(asked)}
        except SignatureRefused as exc:
            status, payload = 403, {"message": str(exc)}
        except (ValueError, KeyError, TypeError, IndexError):  # UnicodeError is a ValueError
            status, payload = 400, {"message": "the request cannot be verified: a signed part of it is malformed"}
        data = json.dumps(payload).encode()
        start_response(
            "200 OK" if status == 200 else f"{status} Refused",
            [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
        )
        return [data]

    @staticmethod
    def _verify(asked: dict[str, Any]) -> dict[str, Any]:
        from local.iam_gate import Check, assumed_role, decide

        auth, key = verify(
            str(asked["method"]),
            str(asked["url"]),
            {str(k): str(v) for k, v in dict(asked["headers"]).items()},
            base64.b64decode(asked.get("body") or ""),
            region=str(asked["region"]),
            known_key=_sts_key,
        )
        principal = assumed_role(auth.access_key)
        if principal is None:
            raise SignatureRefused("The security token included in the request is invalid")
        denied = decide(principal, Check("execute-api:Invoke", str(asked["resource"])))
        if denied is not None:
            raise SignatureRefused(
                f"User: {key.session_arn} is not authorized to perform: execute-api:Invoke on resource: "
                f"{asked['resource']} ({denied})"
            )
        return iam_context(auth, key)


# --- in the gateway's process -------------------------------------------------------------------


@dataclass(frozen=True)
class EmulatorVerifier:
    """The gateway's side: asks the emulator to verify a request signed for one of its routes."""

    emulator_url: str
    region: str
    account: str
    api_id: str = "local"
    stage: str = "$default"

    def __call__(self, method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        """The caller's ``authorizer.iam`` context, or SignatureRefused."""
        import requests

        if not _header(headers, "authorization"):  # as API Gateway, without asking IAM
            raise SignatureRefused("Missing Authentication Token (sign the request with SigV4)")
        asked: dict[str, Any] = {
            "method": method,
            "url": url,
            "headers": headers,
            "body": base64.b64encode(body).decode(),
            "region": self.region,
            "resource": route_arn(self.region, self.account, self.api_id, self.stage, method, urlsplit(url).path),
        }
        reply = requests.post(self.emulator_url + VERIFY_PATH, json=asked, timeout=10)
        if reply.status_code in (400, 403):  # a request it cannot read is refused as well, as on AWS
            raise SignatureRefused(str(reply.json().get("message", "Forbidden")))
        reply.raise_for_status()
        return dict(reply.json()["iam"])
