"""Reads template.yaml, the one source of truth for resources, and resolves what the local
stack needs from it: resource properties and the functions' environment variables."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from local import ROOT

TEMPLATE = ROOT / "template.yaml"
ACCOUNT = "123456789012"


def load(path: Path = TEMPLATE) -> dict[str, Any]:
    from cfnlint.decode import decode_str

    template, matches = decode_str(path.read_text())
    if template is None:
        raise RuntimeError(f"cannot parse {path}: {matches}")
    return dict(template)


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


@dataclass
class LocalTemplate:
    """The template with its intrinsic functions resolved against local names."""

    raw: dict[str, Any]
    region: str = "us-east-1"
    prefix: str = "directupload-local"
    parameters: dict[str, str] = field(default_factory=dict)
    endpoint: str = ""

    def resources(self, type_: str) -> dict[str, dict[str, Any]]:
        """The resources of one type that this configuration creates (their Condition holds)."""
        return {
            name: res
            for name, res in self.raw.get("Resources", {}).items()
            if res.get("Type") == type_ and ("Condition" not in res or self.condition(res["Condition"]))
        }

    def resource(self, logical_id: str) -> dict[str, Any]:
        return dict(self.raw["Resources"][logical_id])

    def properties(self, logical_id: str) -> dict[str, Any]:
        return dict(self.resolve(self.raw["Resources"][logical_id].get("Properties", {})))

    # names
    def physical_name(self, logical_id: str) -> str:
        return f"{self.prefix}-{_kebab(logical_id)}"

    def arn(self, logical_id: str) -> str:
        name = self.physical_name(logical_id)
        if logical_id not in self.raw["Resources"] and self._implicit_role(logical_id):
            return f"arn:aws:iam::{ACCOUNT}:role/{name}"
        res_type = self.raw["Resources"][logical_id]["Type"]
        if res_type == "AWS::SQS::Queue":
            return f"arn:aws:sqs:{self.region}:{ACCOUNT}:{name}"
        if res_type == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{name}"
        if res_type == "AWS::DynamoDB::Table":
            return f"arn:aws:dynamodb:{self.region}:{ACCOUNT}:table/{name}"
        if res_type == "AWS::Events::EventBus":
            return f"arn:aws:events:{self.region}:{ACCOUNT}:event-bus/{name}"
        if res_type == "AWS::SecretsManager::Secret":
            # without the random suffix AWS appends: the emulator takes this partial ARN, and its
            # IAM gate names every secret by it (local/iam_gate.py)
            return f"arn:aws:secretsmanager:{self.region}:{ACCOUNT}:secret:{name}"
        return f"arn:aws:local:{self.region}:{ACCOUNT}:{name}"

    def _computed_names(self) -> dict[str, str]:
        """A computed BucketName expression (as JSON) -> the logical id of the bucket it names."""
        return {
            json.dumps(res["Properties"]["BucketName"], sort_keys=True): logical_id
            for logical_id, res in self.raw.get("Resources", {}).items()
            if isinstance(res.get("Properties", {}).get("BucketName"), Mapping)
        }

    def _implicit_role(self, logical_id: str) -> bool:
        """SAM's role for a function that names none: ``{Function}Role`` (local/roles.py creates it)."""
        function = self.raw["Resources"].get(logical_id.removesuffix("Role"), {})
        return (
            logical_id.endswith("Role")
            and function.get("Type") == "AWS::Serverless::Function"
            and "Role" not in function.get("Properties", {})
        )

    def ref(self, name: str) -> Any:
        params = self.raw.get("Parameters", {})
        if name in params:
            value = self.parameters.get(name, str(params[name].get("Default", "")))
            if params[name].get("Type") == "CommaDelimitedList":
                return [item.strip() for item in value.split(",")]
            return value
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT,
            "AWS::StackName": self.prefix,
            "AWS::Partition": "aws",
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{ACCOUNT}:stack/{self.prefix}/0",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        }
        if name in pseudo:
            return pseudo[name]
        res = self.raw.get("Resources", {}).get(name)
        if res is None:
            raise KeyError(f"!Ref {name}: no such parameter or resource")
        if res["Type"] == "AWS::SQS::Queue":
            return f"{self.endpoint}/{ACCOUNT}/{self.physical_name(name)}"
        if res["Type"] == "AWS::SecretsManager::Secret":
            return self.arn(name)  # Ref of a secret is its ARN
        return self.physical_name(name)

    def get_att(self, logical_id: str, attribute: str) -> str:
        if attribute == "Arn":
            return self.arn(logical_id)
        if attribute == "QueueName":
            return self.physical_name(logical_id)
        if attribute == "QueueUrl":
            return self.ref(logical_id)
        return self.physical_name(logical_id)

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.raw.get("Conditions", {})[name]))

    # intrinsic functions, as far as the local stack needs them
    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            # AWS::NoValue in a list (an !If without its else) drops the item, as in CloudFormation
            return [item for item in (self.resolve(entry) for entry in node) if item is not None]
        if not isinstance(node, Mapping):
            return node
        if len(node) == 1:
            ((fn, arg),) = node.items()
            if fn == "Fn::Sub" and (named := self._computed_names().get(json.dumps(node, sort_keys=True))):
                # the template computes a bucket's name and repeats the expression to avoid a
                # cycle (ScanResultRule); locally that resource has its local name
                return self.physical_name(named)
            intrinsic = self._intrinsics.get(fn)
            if intrinsic is not None:
                return intrinsic(arg)
        return {key: self.resolve(value) for key, value in node.items()}

    @cached_property
    def _intrinsics(self) -> dict[str, Callable[[Any], Any]]:
        """Each intrinsic function by name: its argument (unresolved) -> its value."""
        return {
            "Ref": self.ref,
            "Fn::GetAtt": self._get_att,
            "Fn::Sub": self._sub,
            "Fn::If": lambda arg: self.resolve(arg[1] if self.condition(arg[0]) else arg[2]),
            "Fn::Equals": self._equals,
            "Fn::Not": lambda arg: not self.resolve(arg[0]),
            "Fn::And": lambda arg: all(self.resolve(item) for item in arg),
            "Fn::Or": lambda arg: any(self.resolve(item) for item in arg),
            "Condition": self.condition,
            "Fn::Join": lambda arg: arg[0].join(str(i) for i in self.resolve(arg[1])),
            "Fn::Select": lambda arg: self.resolve(arg[1])[int(arg[0])],
            "Fn::Split": lambda arg: str(self.resolve(arg[1])).split(arg[0]),
            "Fn::FindInMap": self._find_in_map,
        }

    def _get_att(self, arg: Any) -> Any:
        logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
        return self.get_att(logical_id, attribute)

    def _sub(self, arg: Any) -> str:
        text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def sub(match: re.Match[str]) -> str:
            var = match.group(1)
            if var in extra:
                return str(extra[var])
            if "." in var:
                return str(self.get_att(*var.split(".", 1)))
            return str(self.ref(var))

        return re.sub(r"\$\{([^}!]+)\}", sub, text)

    def _equals(self, arg: Any) -> bool:
        left, right = self.resolve(arg)
        return str(left) == str(right)

    def _find_in_map(self, arg: Any) -> Any:
        table, key, attr = self.resolve(arg)
        return self.raw["Mappings"][table][key][attr]

    def public_routes(self) -> frozenset[str]:
        """The HTTP API's routes that need no token: those of the API's OpenAPI body with no
        ``security`` when the JWT authorizer is on ("GET /openapi.json")."""
        (api_id,) = self.resources("AWS::Serverless::HttpApi")
        paths = self.raw["Resources"][api_id]["Properties"].get("DefinitionBody", {}).get("paths", {})
        return frozenset(
            f"{method.upper()} {path}"
            for path, methods in paths.items()
            if "{" not in path
            for method, spec in methods.items()
            if "security" not in (spec or {})
        )

    def iam_routes(self) -> frozenset[str]:
        """The HTTP API's routes with IAM authorization (an event's ``Auth: Authorizer: AWS_IAM``),
        as "METHOD /path/{param}"."""
        return frozenset(
            f"{event['Properties']['Method'].upper()} {event['Properties']['Path']}"
            for function in self.resources("AWS::Serverless::Function").values()
            for event in function.get("Properties", {}).get("Events", {}).values()
            if event.get("Type") == "HttpApi" and (event["Properties"].get("Auth") or {}).get("Authorizer") == "AWS_IAM"
        )

    def globals(self, name: str, default: Any = None) -> Any:
        """A property of the template's ``Globals: Function`` section, resolved."""
        return self.resolve(self.raw.get("Globals", {}).get("Function", {}).get(name, default))

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """Globals' variables overlaid with the function's own, resolved."""
        variables: dict[str, Any] = {}
        glob = self.raw.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        variables.update(glob)
        own = self.raw["Resources"][logical_id].get("Properties", {}).get("Environment", {}).get("Variables", {})
        variables.update(own)
        resolved = {}
        for name, value in variables.items():
            value = self.resolve(value)
            if value is not None:
                resolved[name] = str(value).lower() if isinstance(value, bool) else str(value)
        return resolved
