"""Each function's role, as SAM writes it, created in the emulator's IAM and assumed for the function.

The SAM translation of template.yaml (local/cfn.py, the same one the infra tests assert on) gives
every function's execution role: its inline policies (the template's ``Policies``) and the managed
policies SAM attaches (basic execution, X-Ray, the event sources' read policies). The local stack
creates those roles in the emulator, resolved for the local resource names, and gives each
function the credentials of its role from the emulator's STS, as Lambda gives a function its
role's credentials in its environment. The emulator's IAM gate (local/iam_gate.py) then allows
or denies each call by that role's policies: a missing permission fails locally as on AWS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from local.template import ACCOUNT, LocalTemplate

LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


@dataclass(frozen=True)
class FunctionRole:
    function: str  # logical id, e.g. ApiFunction
    role_arn: str
    credentials: dict[str, str]  # AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN

    def environment(self) -> dict[str, str]:
        return dict(self.credentials)


def function_roles(tpl: LocalTemplate) -> dict[str, dict[str, Any]]:
    """Function logical id -> its translated role resource (AWS::IAM::Role), unresolved."""
    import logging

    from local.cfn import translate

    logging.getLogger("samtranslator").setLevel(logging.ERROR)  # feature-toggle notices
    translated = translate({key: value for key, value in tpl.parameters.items() if key in tpl.raw["Parameters"]})
    resources = translated["Resources"]
    roles: dict[str, dict[str, Any]] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        if "Condition" in resource and not tpl.condition(resource["Condition"]):
            continue  # a function this configuration does not create (the webhook's without WebhookUrl)
        role = resource["Properties"]["Role"]
        role_id = role["Fn::GetAtt"][0] if isinstance(role, dict) and "Fn::GetAtt" in role else None
        if role_id is None or role_id not in resources:
            raise NotImplementedError(f"{logical_id}: the local stack assumes SAM's implicit role for each function")
        roles[logical_id] = resources[role_id]
    return roles


def create_roles(tpl: LocalTemplate, iam: Any, sts: Any) -> dict[str, FunctionRole]:
    """Create each function's role in the emulator and assume it: function logical id -> role."""
    out: dict[str, FunctionRole] = {}
    for function, role in function_roles(tpl).items():
        props = role["Properties"]
        name = tpl.physical_name(f"{function}Role")
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST))["Role"]["Arn"]
        for policy in props.get("Policies", []):
            # IAM takes a document without a Version as 2008-10-17; the emulator wants one
            document = {"Version": "2012-10-17", **tpl.resolve(policy["PolicyDocument"])}
            iam.put_role_policy(RoleName=name, PolicyName=policy["PolicyName"], PolicyDocument=json.dumps(document))
        for managed in props.get("ManagedPolicyArns", []):
            iam.attach_role_policy(RoleName=name, PolicyArn=tpl.resolve(managed))
        creds = sts.assume_role(RoleArn=arn, RoleSessionName=function, DurationSeconds=43200)["Credentials"]
        out[function] = FunctionRole(
            function,
            arn,
            {
                "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
                "AWS_SESSION_TOKEN": creds["SessionToken"],
            },
        )
    return out


# The local stack's trusted backend (TrustedIssuerRoleArns): a role with a path, as roles of
# services often have, so the local stack also shows a session matching its role across the path.
ISSUER_ROLE_NAME = "directupload-local-trusted-issuer"
ISSUER_ROLE_PATH = "/backends/"
ISSUER_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role{ISSUER_ROLE_PATH}{ISSUER_ROLE_NAME}"
ACCOUNT_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}
    ],
}


def invoke_policy(region: str, api_id: str = "local") -> dict[str, Any]:
    """What a trusted backend's role needs on AWS too: execute-api:Invoke on the backend routes."""
    routes = f"arn:aws:execute-api:{region}:{ACCOUNT}:{api_id}/*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "CallTheBackendRoutes",
                "Effect": "Allow",
                "Action": "execute-api:Invoke",
                "Resource": [
                    f"{routes}/POST/backend/uploads",
                    f"{routes}/GET/backend/uploads/*",
                    f"{routes}/DELETE/backend/uploads/*",
                ],
            }
        ],
    }


def create_issuer_role(iam: Any, region: str) -> str:
    """The local trusted backend's role, in the emulator's IAM; its ARN (what the allow-list names)."""
    arn = iam.create_role(
        RoleName=ISSUER_ROLE_NAME, Path=ISSUER_ROLE_PATH, AssumeRolePolicyDocument=json.dumps(ACCOUNT_TRUST)
    )["Role"]["Arn"]
    iam.put_role_policy(
        RoleName=ISSUER_ROLE_NAME, PolicyName="invoke-backend-routes", PolicyDocument=json.dumps(invoke_policy(region))
    )
    return str(arn)
