"""Offline helpers for template.yaml: load it, resolve what CloudFormation would resolve for
given parameter values, and translate it with the SAM translator, with no AWS account.

Everything the infra tests assert on is read from here, never restated by hand; the local
stack reads the functions' roles (the policies SAM writes for them) from the same translation.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

from cfnlint.decode import decode_str

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
REGION = "eu-west-1"
LANGUAGE_EXTENSIONS = "AWS::LanguageExtensions"
SAM_TRANSFORM = "AWS::Serverless-2016-10-31"
# What `sam package` puts in place of a local CodeUri.
PACKAGED_CODE_URI = "s3://sam-artifacts/functions.zip"
NO_VALUE = {"Ref": "AWS::NoValue"}


@cache
def _load_text(text: str) -> str:
    template, matches = decode_str(text)
    if template is None:
        raise ValueError(f"template.yaml does not parse: {matches}")
    # JSON round trip: plain dicts and lists, no YAML node classes or shared objects.
    return json.dumps(template)


def load_template() -> dict[str, Any]:
    """template.yaml as plain data, short tags (!Ref, !Sub, !If ...) in their long form."""
    return json.loads(_load_text(TEMPLATE.read_text()))


def transforms(template: Mapping[str, Any]) -> list[str]:
    declared = template.get("Transform", [])
    return list(declared) if isinstance(declared, list) else [declared]


def parameter_values(template: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Values CloudFormation would see: defaults, then overrides; comma lists as lists."""
    values: dict[str, Any] = {}
    for name, spec in template.get("Parameters", {}).items():
        value = (overrides or {}).get(name, spec.get("Default"))
        if value is None:
            continue
        if spec.get("Type") == "CommaDelimitedList" and isinstance(value, str):
            value = value.split(",")
        values[name] = value
    unknown = set(overrides or {}) - set(values)
    if unknown:
        raise KeyError(f"not parameters of template.yaml: {sorted(unknown)}")
    return values


def _condition_value(expr: Any, params: Mapping[str, Any], conditions: Mapping[str, Any], done: dict[str, bool]) -> Any:
    if isinstance(expr, dict) and len(expr) == 1:
        ((fn, arg),) = expr.items()
        if fn == "Ref":
            if arg == "AWS::Region":
                return REGION
            return params[arg]
        if fn == "Condition":
            return evaluate_condition(arg, params, conditions, done)
        if fn == "Fn::Equals":
            left, right = (_condition_value(a, params, conditions, done) for a in arg)
            return left == right
        if fn == "Fn::Not":
            return not _condition_value(arg[0], params, conditions, done)
        if fn == "Fn::And":
            return all(_condition_value(a, params, conditions, done) for a in arg)
        if fn == "Fn::Or":
            return any(_condition_value(a, params, conditions, done) for a in arg)
        if fn == "Fn::Join":  # of a CommaDelimitedList parameter (its value is the comma-separated text)
            sep, items = arg
            value = _condition_value(items, params, conditions, done)
            parts = value if isinstance(value, list) else [p.strip() for p in str(value).split(",")]
            return sep.join(str(p) for p in parts)
        raise NotImplementedError(f"condition function {fn} is not evaluated offline")
    return expr


def evaluate_condition(
    name: str, params: Mapping[str, Any], conditions: Mapping[str, Any], done: dict[str, bool]
) -> bool:
    if name not in done:
        done[name] = bool(_condition_value(conditions[name], params, conditions, done))
    return done[name]


def evaluate_conditions(template: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> dict[str, bool]:
    params = parameter_values(template, overrides)
    conditions = template.get("Conditions", {})
    done: dict[str, bool] = {}
    for name in conditions:
        evaluate_condition(name, params, conditions, done)
    return done


def resolve_conditionals(value: Any, conditions: Mapping[str, bool]) -> Any:
    """Fn::If and AWS::NoValue resolved as CloudFormation does for these condition values."""
    if isinstance(value, dict):
        if set(value) == {"Fn::If"}:
            name, when_true, when_false = value["Fn::If"]
            return resolve_conditionals(when_true if conditions[name] else when_false, conditions)
        out = {}
        for key, item in value.items():
            resolved = resolve_conditionals(item, conditions)
            if resolved != NO_VALUE:
                out[key] = resolved
        return out
    if isinstance(value, list):
        return [r for r in (resolve_conditionals(item, conditions) for item in value) if r != NO_VALUE]
    return value


def _walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def apply_language_extensions(template: dict[str, Any], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What the AWS::LanguageExtensions transform does to this template before SAM runs.

    The template uses it only for `DeletionPolicy` / `UpdateReplacePolicy` with !If; anything
    else it could do fails loudly here rather than being translated wrongly.
    """
    template = copy.deepcopy(template)
    if LANGUAGE_EXTENSIONS not in transforms(template):
        return template
    for node in _walk(template):
        if isinstance(node, dict):
            used = {k for k in node if k.startswith("Fn::ForEach") or k in ("Fn::Length", "Fn::ToJsonString")}
            if used:
                raise NotImplementedError(f"{sorted(used)}: extend apply_language_extensions() before using them")
    conditions = evaluate_conditions(template, overrides)
    for resource in template["Resources"].values():
        for attribute in ("DeletionPolicy", "UpdateReplacePolicy"):
            if attribute in resource:
                resource[attribute] = resolve_conditionals(resource[attribute], conditions)
    rest = [t for t in transforms(template) if t != LANGUAGE_EXTENSIONS]
    template["Transform"] = rest[0] if len(rest) == 1 else rest
    return template


class _NoManagedPolicies:
    """The translator's managed-policy loader, without the IAM call: the template names no
    managed policy by name (SAM adds the ones it needs by ARN)."""

    def load(self) -> dict[str, str]:
        return {}


def _package(template: dict[str, Any]) -> dict[str, Any]:
    """Replace local CodeUri values by an S3 URI, as `sam package` does before CloudFormation."""
    function_globals = template.get("Globals", {}).get("Function", {})
    if "CodeUri" in function_globals:
        function_globals["CodeUri"] = PACKAGED_CODE_URI
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function" and "CodeUri" in resource.get("Properties", {}):
            resource["Properties"]["CodeUri"] = PACKAGED_CODE_URI
    return template


@cache
def _translate(overrides_json: str) -> str:
    from samtranslator.translator.transform import transform

    overrides = json.loads(overrides_json)
    template = _package(apply_language_extensions(load_template(), overrides))
    params = {**parameter_values(template, overrides), "AWS::Region": REGION}
    # The translator asks boto3 for the region (no network call is made).
    with mock.patch.dict(os.environ, {"AWS_DEFAULT_REGION": REGION}):
        translated = transform(template, params, _NoManagedPolicies())
    return json.dumps(translated)


def translate(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The CloudFormation template that SAM produces for these parameter values."""
    return json.loads(_translate(json.dumps(dict(overrides or {}), sort_keys=True)))


def resources_of_type(template: Mapping[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r.get("Type") == type_}


def policy_statements(template: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(resource name, statement) for every policy statement anywhere in the template."""
    for name, resource in template["Resources"].items():
        for node in _walk(resource.get("Properties", {})):
            if isinstance(node, dict) and isinstance(node.get("Statement"), list):
                for statement in node["Statement"]:
                    yield name, statement


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
