"""Trusted backends: which IAM callers may act on the /backend routes, and for which owners.

An app's own backend (a job, another service) calls those routes signed with SigV4; API Gateway
verifies the signature (IAM authorization) and hands the function the caller's ARN in
``requestContext.authorizer.iam.userArn``. A backend runs as an IAM role, so that ARN is its
assumed-role session: ``arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION``. The allow-list
(template parameter TrustedIssuerRoleArns) names roles: ``arn:aws:iam::ACCOUNT:role/PATH/ROLE``.
A session's ARN has no path, and a role's name is unique in its account whatever its path, so a
session matches an allowed role of the same partition, account and name; the path, when the
allow-list gives one, is not compared. Anything else (an IAM user, the account root, a federated
user) is no trusted backend.

The owner a backend names becomes the upload's owner, as a JWT ``sub`` does: it is the partition
key of the owner's quota item (``owner#{owner}``) and of the ``byOwner`` index, and it goes into
events and logs. So it is bounded to what every one of those holds as is: 1-128 characters of
ASCII letters, digits and ``. _ - : @ | + =`` starting with a letter or digit (Cognito's UUIDs,
``auth0|...``, ``google-oauth2|...``, e-mail addresses), never ``#`` (the keys' separator),
``/``, whitespace, quotes or control characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from directupload.errors import Forbidden, Unprocessable

OWNER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@|+=-]{0,127}$"
_OWNER = re.compile(OWNER_PATTERN)
# IAM's role names: letters, digits and +=,.@_- (the allow-list is comma-separated, so no comma)
_NAME = r"[A-Za-z0-9+=.@_-]{1,64}"
_ROLE_ARN = re.compile(rf"arn:(aws[a-z-]*):iam::(\d{{12}}):role/((?:[A-Za-z0-9+=.@_-]+/)*)({_NAME})")
_SESSION_ARN = re.compile(rf"arn:(aws[a-z-]*):sts::(\d{{12}}):assumed-role/({_NAME})/([A-Za-z0-9+=,.@_-]{{2,64}})")


@dataclass(frozen=True)
class RoleArn:
    partition: str
    account: str
    name: str
    path: str = "/"  # IAM's path of the role, "/" or "/a/b/"

    @classmethod
    def parse(cls, arn: str) -> RoleArn:
        """An IAM role ARN, or ValueError naming what is wrong with it."""
        found = _ROLE_ARN.fullmatch(arn.strip())
        if found is None:
            raise ValueError(f"{arn!r} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
        partition, account, path, name = found.groups()
        return cls(partition, account, name, "/" + path)

    def __str__(self) -> str:
        return f"arn:{self.partition}:iam::{self.account}:role{self.path}{self.name}"

    def same_role(self, other: RoleArn) -> bool:
        return (self.partition, self.account, self.name) == (other.partition, other.account, other.name)


def parse_allow_list(value: str) -> tuple[RoleArn, ...]:
    """The comma-separated role ARNs of TRUSTED_ISSUER_ROLE_ARNS ("" = none)."""
    return tuple(RoleArn.parse(item) for item in value.split(",") if item.strip())


def session_role(user_arn: str) -> RoleArn | None:
    """The role of an assumed-role session ARN (path unknown: "/"); None for any other principal."""
    found = _SESSION_ARN.fullmatch(user_arn)
    if found is None:
        return None
    partition, account, name, _session = found.groups()
    return RoleArn(partition, account, name)


@dataclass(frozen=True)
class TrustedIssuers:
    allowed: tuple[RoleArn, ...]

    def issuer(self, user_arn: str | None) -> RoleArn:
        """The allowed role the caller's session belongs to (as the allow-list spells it), or
        Forbidden: no IAM caller, not an assumed role, or a role not on the list."""
        if not user_arn:
            raise Forbidden("this route takes IAM (SigV4) authorization by a trusted backend")
        role = session_role(user_arn)
        if role is None:
            raise Forbidden("only an IAM role's session may call the backend routes")
        for allowed in self.allowed:
            if allowed.same_role(role):
                return allowed
        if not self.allowed:
            raise Forbidden("no trusted backend is configured (TrustedIssuerRoleArns is empty)")
        raise Forbidden(f"the role {role.name!r} of account {role.account} is not a trusted backend")

    @classmethod
    def of(cls, arns: Iterable[RoleArn]) -> TrustedIssuers:
        return cls(tuple(arns))


def check_owner(owner: str | None) -> str:
    """The owner a backend names, or Unprocessable (422) when there is none or it has characters
    the owner's keys and index entries do not hold (see the module's docstring)."""
    if not owner:
        raise Unprocessable("name the owner the upload is for (owner)")
    if not _OWNER.fullmatch(owner):
        raise Unprocessable(
            "owner must be 1-128 ASCII letters, digits or . _ - : @ | + = starting with a letter or digit"
        )
    return owner
