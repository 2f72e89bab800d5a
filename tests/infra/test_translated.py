"""Assertions on the CloudFormation that the SAM translator makes of template.yaml, offline.

Parameter values are applied the way CloudFormation applies them (conditions evaluated,
Fn::If resolved) so each test states a deployment and checks what it would get.
"""

from __future__ import annotations

import json
import re
from fnmatch import fnmatchcase
from typing import Any

import pytest

from local.cfn import (
    as_list,
    evaluate_conditions,
    load_template,
    policy_statements,
    resolve_conditionals,
    resources_of_type,
    translate,
)

# dev as a demo: auth off, said explicitly (the default AuthMode is jwt and needs an issuer)
DEV: dict[str, str] = {"AuthMode": "none"}
PROD_WITH_AUTH = {"Stage": "prod", "JwtIssuer": "https://issuer.example.com", "JwtAudience": "client-a,client-b"}
WEBHOOK = {"WebhookUrl": "https://hooks.example.com/uploads"}

FUNCTIONS = ["ApiFunction", "ProcessFunction", "ConsumerFunction", "RetentionFunction", "PublishFunction"]

# The contract with the Python code (functions/directupload/config.py and friends).
ENVIRONMENT = {
    "UPLOADS_TABLE",
    "UPLOADS_BUCKET",
    "EVENT_BUS_NAME",
    "INGEST_QUEUE_URL",
    "DEAD_LETTER_QUEUE_URL",
    "AUTH_MODE",
    "STAGE",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
    "POWERTOOLS_LOGGER_LOG_EVENT",
    "REJECTED_OBJECTS",
    "PROFILES_JSON",
    "QUOTA_MAX_PENDING",
    "QUOTA_DAILY_BYTES",
}
OUTPUTS = {
    "ApiUrl",
    "UploadsBucketName",
    "UploadsTableName",
    "EventBusName",
    "IngestQueueUrl",
    "DeadLetterQueueUrl",
    "RetentionDeadLetterQueueUrl",
    "Region",
}


def deployed(overrides: dict[str, str]) -> dict[str, Any]:
    """The translated template as CloudFormation would create it for these parameter values."""
    translated = translate(overrides)
    conditions = evaluate_conditions(translated, overrides)
    resources = {
        name: resolve_conditionals(resource, conditions)
        for name, resource in translated["Resources"].items()
        if conditions.get(resource.get("Condition", ""), True)
    }
    return {**translated, "Resources": resources}


@pytest.fixture(scope="module")
def dev() -> dict[str, Any]:
    return deployed(DEV)


@pytest.fixture(scope="module")
def prod() -> dict[str, Any]:
    return deployed(PROD_WITH_AUTH)


def ref(name: str) -> dict[str, str]:
    return {"Ref": name}


def get_att(name: str, attribute: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [name, attribute]}


def alias_of(template: dict[str, Any], function: str) -> str:
    aliases = [
        name
        for name, alias in resources_of_type(template, "AWS::Lambda::Alias").items()
        if alias["Properties"]["FunctionName"] == ref(function)
    ]
    assert len(aliases) == 1, f"{function} should have exactly one alias: {aliases}"
    assert template["Resources"][aliases[0]]["Properties"]["Name"] == "live"
    return aliases[0]


def mapping_of(template: dict[str, Any], function: str) -> dict[str, Any]:
    """The properties of the one event source mapping that invokes this function's alias."""
    alias = ref(alias_of(template, function))
    [mapping] = [
        m["Properties"]
        for m in resources_of_type(template, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == alias
    ]
    return mapping


# --- S3 -> SQS -> ProcessFunction ------------------------------------------------------------


def test_bucket_notifies_the_ingest_queue_of_objects_under_incoming(dev: dict[str, Any]) -> None:
    notification = dev["Resources"]["UploadsBucket"]["Properties"]["NotificationConfiguration"]

    [queue_config] = notification["QueueConfigurations"]
    assert queue_config["Queue"] == get_att("IngestQueue", "Arn")
    assert queue_config["Event"].startswith("s3:ObjectCreated:")
    assert queue_config["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "incoming/"}]
    assert set(notification) == {"QueueConfigurations", "EventBridgeConfiguration"}
    # kept on, as GuardDuty Malware Protection set it (a rewrite would turn it off)
    assert notification["EventBridgeConfiguration"] == {"EventBridgeEnabled": True}


def test_queue_policy_admits_exactly_the_uploads_bucket_without_a_cycle(dev: dict[str, Any]) -> None:
    bucket = dev["Resources"]["UploadsBucket"]
    statements = dev["Resources"]["IngestQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    [statement] = [s for s in statements if s["Sid"] == "UploadsBucketNotifications"]
    bucket_name, bucket_vars = bucket["Properties"]["BucketName"]["Fn::Sub"]
    source_arn, arn_vars = statement["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"]

    # the policy names the bucket by the same computed name, not by a reference to it ...
    assert source_arn == "arn:${AWS::Partition}:s3:::" + bucket_name
    assert arn_vars == bucket_vars
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": ref("AWS::AccountId")}
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert as_list(statement["Action"]) == ["sqs:SendMessage"]
    # ... so the bucket can wait for it: S3 checks the permission when it saves the notification.
    assert "IngestQueuePolicy" in as_list(bucket["DependsOn"])
    # the computed name only uses values known before anything exists, and is valid for S3
    assert "${UploadsBucket" not in source_arn
    for stage in load_template()["Parameters"]["Stage"]["AllowedValues"]:
        name = _render_sub(bucket_name, bucket_vars, {"Stage": stage, **SAMPLE_PSEUDO})
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", name), name
        assert name.endswith("-" + SAMPLE_PSEUDO["AWS::StackId"].split("/")[2].split("-")[0])


SAMPLE_PSEUDO = {
    "AWS::AccountId": "123456789012",
    "AWS::StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/directupload-prod/"
    "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
}


def _evaluate(value: Any, known: dict[str, str]) -> Any:
    """The few intrinsic functions a name is computed with."""
    if isinstance(value, dict):
        [(fn, arg)] = value.items()
        if fn == "Ref":
            return known[arg]
        if fn == "Fn::Split":
            return _evaluate(arg[1], known).split(arg[0])
        if fn == "Fn::Select":
            return _evaluate(arg[1], known)[int(arg[0])]
        raise NotImplementedError(fn)
    return value


def _render_sub(pattern: str, variables: dict[str, Any], known: dict[str, str]) -> str:
    values = {**known, **{k: _evaluate(v, known) for k, v in variables.items()}}
    return re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1)], pattern)


def test_processor_reads_the_queue_through_its_alias_with_partial_batch_failures(dev: dict[str, Any]) -> None:
    props = mapping_of(dev, "ProcessFunction")

    assert props["EventSourceArn"] == get_att("IngestQueue", "Arn")
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["ScalingConfig"]["MaximumConcurrency"] == ref("ProcessMaxConcurrency")
    assert props["BatchSize"] == ref("ProcessBatchSize")


def test_ingest_queue_redrives_to_the_dead_letter_queue(dev: dict[str, Any]) -> None:
    redrive = dev["Resources"]["IngestQueue"]["Properties"]["RedrivePolicy"]

    assert redrive["deadLetterTargetArn"] == get_att("DeadLetterQueue", "Arn")
    assert redrive["maxReceiveCount"] == ref("MaxReceiveCount")


def test_visibility_timeout_is_at_least_six_processor_timeouts(dev: dict[str, Any]) -> None:
    visibility = int(dev["Resources"]["IngestQueue"]["Properties"]["VisibilityTimeout"])
    timeout = int(dev["Resources"]["ProcessFunction"]["Properties"]["Timeout"])

    assert visibility >= 6 * timeout


def test_dead_letters_outlive_the_source_queue(dev: dict[str, Any]) -> None:
    """A message keeps its first enqueue time when it moves to the DLQ, so a shorter DLQ
    retention would drop it early."""
    ingest = int(dev["Resources"]["IngestQueue"]["Properties"]["MessageRetentionPeriod"])
    dead = int(dev["Resources"]["DeadLetterQueue"]["Properties"]["MessageRetentionPeriod"])

    assert dead > ingest
    assert dead == 14 * 24 * 3600


def test_queues_are_encrypted(prod: dict[str, Any]) -> None:
    with_webhook = deployed({**PROD_WITH_AUTH, **WEBHOOK})
    queues = resources_of_type(with_webhook, "AWS::SQS::Queue")

    assert {
        "IngestQueue",
        "DeadLetterQueue",
        "RetentionDeadLetterQueue",
        "WebhookQueue",
        "WebhookDeadLetterQueue",
    } <= set(queues)
    for name, queue in queues.items():
        assert queue["Properties"].get("SqsManagedSseEnabled") is True, name


# --- API and events go through the `live` alias ---------------------------------------------


def test_api_integrations_and_permissions_target_the_alias(dev: dict[str, Any]) -> None:
    alias = alias_of(dev, "ApiFunction")
    body = dev["Resources"]["UploadsApi"]["Properties"]["Body"]
    operations = [op for path in body["paths"].values() for op in path.values()]
    permissions = [
        p["Properties"]
        for p in resources_of_type(dev, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]

    assert operations
    for op in operations:
        integration = op["x-amazon-apigateway-integration"]
        assert integration["payloadFormatVersion"] == "2.0"
        assert "${" + alias + "}" in integration["uri"]["Fn::Sub"]
    assert len(permissions) == len(operations)
    assert all(p["FunctionName"] == ref(alias) for p in permissions)


def test_no_route_catches_the_cors_preflight(dev: dict[str, Any]) -> None:
    """An OPTIONS (or ANY) route would take preflights away from API Gateway's CORS answer,
    and with the JWT authorizer on, fail them for lack of a token."""
    body = dev["Resources"]["UploadsApi"]["Properties"]["Body"]
    methods = {method for path in body["paths"].values() for method in path}

    assert methods.isdisjoint({"options", "x-amazon-apigateway-any-method"})
    assert "OPTIONS" in body["x-amazon-apigateway-cors"]["allowMethods"]
    assert body["x-amazon-apigateway-cors"]["allowOrigins"] == ref("AllowedOrigins")
    # a browser may read Retry-After on a 429 or 503 (CORS hides any header not exposed)
    assert [h.lower() for h in body["x-amazon-apigateway-cors"]["exposeHeaders"]] == ["retry-after"]


def test_consumer_rule_listens_on_the_bus_and_targets_the_alias(dev: dict[str, Any]) -> None:
    rules = {
        name: rule["Properties"]
        for name, rule in resources_of_type(dev, "AWS::Events::Rule").items()
        if any(t["Arn"] == ref(alias_of(dev, "ConsumerFunction")) for t in rule["Properties"]["Targets"])
    }

    [rule] = rules.values()
    assert rule["EventBusName"] == ref("EventBus")
    assert rule["EventPattern"]["source"] == ["directupload"]
    assert set(rule["EventPattern"]["detail-type"]) == {
        "Upload Processed",
        "Upload Rejected",
        "Upload Failed",
        "Upload Deleted",
    }


@pytest.fixture(scope="module")
def webhook() -> dict[str, Any]:
    return deployed({**DEV, **WEBHOOK})


def test_webhook_exists_only_when_its_url_is_set_and_hears_what_the_consumer_hears(
    dev: dict[str, Any], webhook: dict[str, Any]
) -> None:
    webhook_only = set(webhook["Resources"]) - set(dev["Resources"])
    rule = webhook["Resources"]["WebhookRule"]["Properties"]
    consumer_rule = next(
        r["Properties"]
        for name, r in resources_of_type(dev, "AWS::Events::Rule").items()
        if name.startswith("ConsumerFunction")
    )

    assert {
        "WebhookRule",
        "WebhookQueue",
        "WebhookQueuePolicy",
        "WebhookSigningSecret",
        "WebhookFunction",
        "WebhookFunctionLogGroup",
        "WebhookDeadLetterQueue",
        "WebhookDeadLetterQueueAlarm",
        "WebhookFunctionErrorsAlarm",
        "WebhookFunctionThrottlesAlarm",
    } <= webhook_only
    assert not [n for n in dev["Resources"] if n.startswith("Webhook")]
    assert rule["EventPattern"] == consumer_rule["EventPattern"]
    [target] = rule["Targets"]
    # signed by WebhookFunction, not by EventBridge: no API destination, no connection, no key
    assert target["Arn"] == get_att("WebhookQueue", "Arn")
    assert "RoleArn" not in target
    assert target["DeadLetterConfig"]["Arn"] == get_att("WebhookDeadLetterQueue", "Arn")
    assert not resources_of_type(webhook, "AWS::Events::ApiDestination")
    assert not resources_of_type(webhook, "AWS::Events::Connection")
    assert not {"WebhookApiKey", "WebhookApiKeyHeader"} & set(load_template()["Parameters"])


def test_webhook_queue_admits_only_its_rule_and_redrives_to_the_alarmed_dead_letter_queue(
    webhook: dict[str, Any],
) -> None:
    queue = webhook["Resources"]["WebhookQueue"]["Properties"]
    [statement] = webhook["Resources"]["WebhookQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    function_timeout = int(webhook["Resources"]["WebhookFunction"]["Properties"]["Timeout"])
    dlq_alarm = webhook["Resources"]["WebhookDeadLetterQueueAlarm"]["Properties"]
    dead = int(webhook["Resources"]["WebhookDeadLetterQueue"]["Properties"]["MessageRetentionPeriod"])

    assert queue["SqsManagedSseEnabled"] is True
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == get_att("WebhookDeadLetterQueue", "Arn")
    assert int(queue["RedrivePolicy"]["maxReceiveCount"]) > 1
    assert int(queue["VisibilityTimeout"]) >= 6 * function_timeout
    assert dead > int(queue["MessageRetentionPeriod"])
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert as_list(statement["Action"]) == ["sqs:SendMessage"]
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": get_att("WebhookRule", "Arn")}}
    assert dlq_alarm["Dimensions"] == [{"Name": "QueueName", "Value": get_att("WebhookDeadLetterQueue", "QueueName")}]
    assert (dlq_alarm["MetricName"], dlq_alarm["Threshold"]) == ("ApproximateNumberOfMessagesVisible", 0)


def test_webhook_function_reads_its_queue_with_partial_failures_and_may_only_read_its_secret(
    webhook: dict[str, Any],
) -> None:
    from directupload.webhooks import ENV_NAMES

    mapping = mapping_of(webhook, "WebhookFunction")
    allowed = _allowed(webhook, _role_of(webhook, "WebhookFunction"))
    variables = webhook["Resources"]["WebhookFunction"]["Properties"]["Environment"]["Variables"]
    secret = webhook["Resources"]["WebhookSigningSecret"]["Properties"]["GenerateSecretString"]
    readers = [
        function
        for function in [*FUNCTIONS, "WebhookFunction"]
        if any(a.startswith("secretsmanager:") for a, _ in _allowed(webhook, _role_of(webhook, function)))
    ]

    assert mapping["EventSourceArn"] == get_att("WebhookQueue", "Arn")
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert readers == ["WebhookFunction"]
    assert [r for a, r in allowed if a.startswith("secretsmanager:")] == [ref("WebhookSigningSecret")]
    assert {a for a, _ in allowed if a.startswith("secretsmanager:")} == {"secretsmanager:GetSecretValue"}
    # SQS: consume its own queue (SAM's poller policy + the backoff), park refusals in its dead-letter queue
    sqs = {(a, json.dumps(r)) for a, r in allowed if a.startswith("sqs:")}
    queue, dlq = json.dumps(get_att("WebhookQueue", "Arn")), json.dumps(get_att("WebhookDeadLetterQueue", "Arn"))
    assert ("sqs:ChangeMessageVisibility", queue) in sqs
    assert {r for _, r in sqs} <= {queue, dlq}
    assert {a for a, r in sqs if r == dlq} == {"sqs:SendMessage"}
    assert not [a for a, _ in allowed if not a.startswith(("sqs:", "secretsmanager:"))]
    # the variables the code reads (webhooks.ENV_NAMES) point at this URL, secret and queue
    assert set(ENV_NAMES.values()) <= set(variables)
    assert variables["WEBHOOK_URL"] == ref("WebhookUrl")
    assert variables["WEBHOOK_SECRET_ARN"] == ref("WebhookSigningSecret")
    assert variables["WEBHOOK_DEAD_LETTER_QUEUE_URL"] == ref("WebhookDeadLetterQueue")
    # 64 letters and digits: valid base64, 48 bytes of key (the spec asks for 24 to 64)
    assert secret["PasswordLength"] % 4 == 0 and secret["PasswordLength"] * 3 // 4 >= 24
    assert secret["ExcludePunctuation"] is True
    assert webhook["Outputs"]["WebhookSigningSecretArn"]["Value"] == ref("WebhookSigningSecret")


# --- JWT authorizer -------------------------------------------------------------------------


def _operations_by_route(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{method.upper()} {path}": op for path, item in body["paths"].items() for method, op in item.items()}


# Routes anyone may call: the API's description and what its profiles accept, nothing about uploads.
PUBLIC_ROUTES = {"GET /openapi.json", "GET /profiles"}
# Routes for trusted backends: IAM (SigV4) authorization, whatever AuthMode says.
BACKEND_ROUTES = {"POST /backend/uploads", "GET /backend/uploads/{uploadId}", "DELETE /backend/uploads/{uploadId}"}
SIGV4_SCHEME = {"type": "apiKey", "name": "Authorization", "in": "header", "x-amazon-apigateway-authtype": "awsSigv4"}


def _schemes(body: dict[str, Any]) -> dict[str, Any]:
    schemes: dict[str, Any] = body.get("components", {}).get("securitySchemes", {})
    return schemes


def test_jwt_authorizer_guards_every_user_route_but_the_public_documents_when_an_issuer_is_set(
    prod: dict[str, Any],
) -> None:
    body = prod["Resources"]["UploadsApi"]["Properties"]["Body"]
    [(name, scheme)] = [(n, s) for n, s in _schemes(body).items() if "x-amazon-apigateway-authorizer" in s]
    authorizer = scheme["x-amazon-apigateway-authorizer"]

    assert authorizer["type"] == "jwt"
    assert authorizer["identitySource"] == "$request.header.Authorization"
    assert authorizer["jwtConfiguration"] == {"issuer": ref("JwtIssuer"), "audience": ref("JwtAudience")}
    for route, op in _operations_by_route(body).items():
        if route in PUBLIC_ROUTES:
            assert "security" not in op, route
        elif route not in BACKEND_ROUTES:
            assert op["security"] == [{name: []}], route


@pytest.mark.parametrize("deployment", ["dev", "prod"])
def test_backend_routes_take_iam_authorization_and_user_routes_never_do(
    deployment: str, request: pytest.FixtureRequest
) -> None:
    body = request.getfixturevalue(deployment)["Resources"]["UploadsApi"]["Properties"]["Body"]
    iam = [name for name, scheme in _schemes(body).items() if scheme == SIGV4_SCHEME]
    assert len(iam) == 1, _schemes(body)
    routes = _operations_by_route(body)

    assert set(routes) >= BACKEND_ROUTES
    for route, op in routes.items():
        uses_iam = any(iam[0] in requirement for requirement in op.get("security", []))
        assert uses_iam == (route in BACKEND_ROUTES), route
        if route in BACKEND_ROUTES:
            assert op["security"] == [{iam[0]: []}], route  # IAM alone, never a JWT as well


def test_the_backend_routes_are_the_ones_the_local_gateway_verifies_sigv4_on() -> None:
    from local.template import LocalTemplate, load

    assert LocalTemplate(load()).iam_routes() == BACKEND_ROUTES


def test_the_api_function_gets_the_issuer_allow_list_as_given(dev: dict[str, Any]) -> None:
    env = dev["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert env["TRUSTED_ISSUER_ROLE_ARNS"] == ref("TrustedIssuerRoleArns")
    assert load_template()["Parameters"]["TrustedIssuerRoleArns"]["Default"] == ""


@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        ("", True),
        ("arn:aws:iam::111122223333:role/jobs", True),
        ("arn:aws:iam::111122223333:role/team/jobs,arn:aws-cn:iam::444455556666:role/b", True),
        ("arn:aws:iam::111122223333:user/alice", False),
        ("arn:aws:iam::111122223333:role/jobs, arn:aws:iam::111122223333:role/b", False),
        ("*", False),
    ],
)
def test_the_allow_list_parameter_takes_role_arns_only(value: str, allowed: bool) -> None:
    pattern = load_template()["Parameters"]["TrustedIssuerRoleArns"]["AllowedPattern"]
    assert (re.fullmatch(pattern, value) is not None) == allowed


def test_the_public_routes_are_the_ones_the_local_gateway_lets_through_without_a_token() -> None:
    from local.template import LocalTemplate, load

    assert LocalTemplate(load()).public_routes() == PUBLIC_ROUTES


def test_no_authorizer_and_anonymous_auth_mode_only_when_auth_mode_none_is_said(dev: dict[str, Any]) -> None:
    body = dev["Resources"]["UploadsApi"]["Properties"]["Body"]

    assert [s for s in _schemes(body).values() if "x-amazon-apigateway-authorizer" in s] == []
    assert all("security" not in op for route, op in _operations_by_route(body).items() if route not in BACKEND_ROUTES)
    for function in FUNCTIONS:
        assert dev["Resources"][function]["Properties"]["Environment"]["Variables"]["AUTH_MODE"] == "none"


def test_auth_is_on_unless_switched_off_and_then_needs_an_issuer() -> None:
    template = load_template()
    assert template["Parameters"]["AuthMode"]["Default"] == "jwt"
    rule = template["Rules"]["IssuerAndAudienceRequiredWithJwt"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "AuthMode"}, "jwt"]}
    asserted = json.dumps(rule["Assertions"])
    assert '"Ref": "JwtIssuer"' in asserted and '"Ref": "JwtAudience"' in asserted


def test_auth_mode_is_jwt_with_an_issuer(prod: dict[str, Any]) -> None:
    for function in FUNCTIONS:
        assert prod["Resources"][function]["Properties"]["Environment"]["Variables"]["AUTH_MODE"] == "jwt"


# --- IAM --------------------------------------------------------------------------------------


def test_each_function_has_its_own_role(dev: dict[str, Any]) -> None:
    functions = resources_of_type(dev, "AWS::Lambda::Function")
    roles = [f["Properties"]["Role"]["Fn::GetAtt"][0] for f in functions.values()]

    assert set(functions) == set(FUNCTIONS)
    assert len(set(roles)) == len(functions)
    for role in roles:
        assert dev["Resources"][role]["Type"] == "AWS::IAM::Role"


def test_no_statement_grants_every_action_or_a_whole_service_on_everything() -> None:
    everything_on = deployed({**PROD_WITH_AUTH, **WEBHOOK, "AlarmEmail": "ops@example.com"})
    statements = list(policy_statements(everything_on))

    assert statements
    for owner, statement in statements:
        actions = [a for a in as_list(statement.get("Action", [])) if isinstance(a, str)]
        resources = as_list(statement.get("Resource", []))
        if statement["Effect"] != "Allow":
            continue
        assert "*" not in actions, (owner, statement)
        if "*" in resources:
            assert not any(a.endswith(":*") for a in actions), (owner, statement)


def _allowed(template: dict[str, Any], role: str) -> list[tuple[str, Any]]:
    """(action, resource) pairs a role's inline policies allow."""
    pairs: list[tuple[str, Any]] = []
    for policy in template["Resources"][role]["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Allow":
                for action in as_list(statement["Action"]):
                    pairs.extend((action, resource) for resource in as_list(statement["Resource"]))
    return pairs


def _role_of(template: dict[str, Any], function: str) -> str:
    return template["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]


def _statements_of(template: dict[str, Any], function: str) -> list[dict[str, Any]]:
    role = template["Resources"][_role_of(template, function)]["Properties"]
    return [s for policy in role.get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]


def under(prefix: str) -> dict[str, str]:
    """A bucket prefix as the template names it in policies."""
    return {"Fn::Sub": "${UploadsBucket.Arn}/" + prefix + "/*"}


INCOMING = under("incoming")
VERIFIED = [under("files"), under("derived")]
EVERY_UPLOAD_PREFIX = [under("incoming"), *VERIFIED, under("quarantine")]


def _s3_grants(template: dict[str, Any], function: str) -> dict[str, list[Any]]:
    """S3 action -> the resources a function's role allows it on."""
    grants: dict[str, list[Any]] = {}
    for action, resource in _allowed(template, _role_of(template, function)):
        if action.startswith("s3:"):
            grants.setdefault(action, []).append(resource)
    return grants


def _same(left: list[Any], right: list[Any]) -> bool:
    return sorted(map(json.dumps, left)) == sorted(map(json.dumps, right))


def test_api_role_may_sign_uploads_only_under_incoming(dev: dict[str, Any]) -> None:
    grants = _s3_grants(dev, "ApiFunction")

    assert grants["s3:PutObject"] == [INCOMING]
    for action in ("s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"):
        assert grants[action] == [INCOMING], action


def test_api_role_lists_names_under_incoming_only(dev: dict[str, Any]) -> None:
    """A retried complete asks whether the object exists by listing its name: the role may list
    only under incoming/ and may never read what is there (HeadObject needs s3:GetObject)."""
    listing = [s for s in _statements_of(dev, "ApiFunction") if "s3:ListBucket" in as_list(s["Action"])]

    assert [s["Condition"] for s in listing] == [{"StringLike": {"s3:prefix": "incoming/*"}}]
    assert INCOMING not in _s3_grants(dev, "ApiFunction")["s3:GetObject"]


def test_api_role_reads_only_verified_objects_and_deletes_only_upload_prefixes(dev: dict[str, Any]) -> None:
    """Presigned downloads run with the API role's permissions: what it may read, any client
    holding a link may read. Unverified (incoming/) and rejected (quarantine/) bytes are not."""
    grants = _s3_grants(dev, "ApiFunction")

    assert _same(grants["s3:GetObject"], VERIFIED)
    assert _same(grants["s3:DeleteObject"], EVERY_UPLOAD_PREFIX)
    assert set(grants) == {
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
        "s3:ListBucket",
        "s3:GetObject",
        "s3:DeleteObject",
    }


def test_processor_never_writes_under_incoming(dev: dict[str, Any]) -> None:
    allowed = _allowed(dev, _role_of(dev, "ProcessFunction"))
    written = [r for a, r in allowed if a == "s3:PutObject"]

    assert written
    assert INCOMING not in written
    assert ("s3:GetObject", INCOMING) in allowed


def test_processor_updates_and_reads_records_but_never_puts_a_whole_item(dev: dict[str, Any]) -> None:
    allowed = {a for a, _ in _allowed(dev, _role_of(dev, "ProcessFunction")) if a.startswith("dynamodb:")}

    assert allowed == {"dynamodb:GetItem", "dynamodb:UpdateItem"}


def test_events_come_only_from_the_publish_function_and_the_consumer_holds_no_inline_policy(
    dev: dict[str, Any],
) -> None:
    """Every event is sent from the table's stream (handlers/publisher.py): the functions that
    write records never call EventBridge, and the PublishFunction reads and writes nothing else."""
    publishers = [
        function
        for function in FUNCTIONS
        if any(a == "events:PutEvents" for a, _ in _allowed(dev, _role_of(dev, function)))
    ]

    assert publishers == ["PublishFunction"]
    allowed = _allowed(dev, _role_of(dev, "PublishFunction"))
    destination = mapping_of(dev, "PublishFunction")["DestinationConfig"]["OnFailure"]["Destination"]
    assert sorted(allowed, key=str) == sorted(
        [("events:PutEvents", get_att("EventBus", "Arn")), ("sqs:SendMessage", destination)], key=str
    )
    assert _allowed(dev, _role_of(dev, "ConsumerFunction")) == []


# The values CloudFormation would give the attributes the bucket policy names.
SAMPLE_ARNS = {
    "UploadsBucket.Arn": "arn:aws:s3:::directupload-dev-123456789012-0f1e2d3c",
    **{f"{f}Role.Arn": f"arn:aws:iam::123456789012:role/directupload-dev-{f}Role-ABC" for f in FUNCTIONS},
}
SOMEONE_ELSE = "arn:aws:iam::123456789012:role/Admin"


def _sample(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        return re.sub(r"\$\{([^}]+)\}", lambda m: SAMPLE_ARNS[m.group(1)], value["Fn::Sub"])
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
        return SAMPLE_ARNS[".".join(value["Fn::GetAtt"])]
    return value


def _matches(patterns: Any, value: str) -> bool:
    return any(fnmatchcase(value, _sample(p)) for p in as_list(patterns))


def _statement_denies(statement: dict[str, Any], principal_arn: str, action: str, key: str) -> bool:
    """Whether this Deny statement applies to one request, for the operators the policy uses."""
    resource = f"{SAMPLE_ARNS['UploadsBucket.Arn']}/{key}"
    if statement["Effect"] != "Deny" or statement["Principal"] != "*":
        return False
    if not _matches(statement["Action"], action) or not _matches(statement["Resource"], resource):
        return False
    for operator, conditions in statement.get("Condition", {}).items():
        for context_key, expected in conditions.items():
            assert (operator, context_key) == ("ArnNotEquals", "aws:PrincipalArn"), "extend _statement_denies"
            if principal_arn in (_sample(e) for e in as_list(expected)):
                return False
    return True


def test_bucket_policy_lets_only_the_processor_write_verified_and_derived_objects(dev: dict[str, Any]) -> None:
    [statement] = [
        s
        for s in dev["Resources"]["UploadsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Sid") == "OnlyTheProcessorWritesVerifiedObjects"
    ]
    processor = SAMPLE_ARNS[f"{_role_of(dev, 'ProcessFunction')}.Arn"]
    others = [SAMPLE_ARNS[f"{_role_of(dev, f)}.Arn"] for f in FUNCTIONS if f != "ProcessFunction"]

    # the exempt principal is exactly the role ProcessFunction runs with ...
    assert statement["Condition"] == {
        "ArnNotEquals": {"aws:PrincipalArn": get_att(_role_of(dev, "ProcessFunction"), "Arn")}
    }
    # ... and it holds the grant the deny leaves it
    assert _same([r for r in _s3_grants(dev, "ProcessFunction")["s3:PutObject"] if r in VERIFIED], VERIFIED)
    for key in ("files/u1/photo.jpg", "derived/u1/thumbnail.webp"):
        assert not _statement_denies(statement, processor, "s3:PutObject", key), key
        for principal in [*others, SOMEONE_ELSE]:
            assert _statement_denies(statement, principal, "s3:PutObject", key), (principal, key)
    # clients keep uploading under incoming/, and reading verified objects is not its business
    for principal in others:
        assert not _statement_denies(statement, principal, "s3:PutObject", "incoming/u1/photo.jpg")
        assert not _statement_denies(statement, principal, "s3:GetObject", "files/u1/photo.jpg")


def test_retention_role_deletes_and_puts_tombstones_but_never_reads_or_writes_objects(dev: dict[str, Any]) -> None:
    role = dev["Resources"][_role_of(dev, "RetentionFunction")]["Properties"]
    grants = _s3_grants(dev, "RetentionFunction")
    allowed = {a for a, _ in _allowed(dev, _role_of(dev, "RetentionFunction"))}

    assert set(grants) == {"s3:DeleteObject"}
    assert _same(grants["s3:DeleteObject"], EVERY_UPLOAD_PREFIX)
    # its tombstones, SAM's own additions: the stream (managed policy) and the on-failure destination
    assert allowed == {"s3:DeleteObject", "dynamodb:PutItem", "sqs:SendMessage"}
    assert any(arn.endswith("/AWSLambdaDynamoDBExecutionRole") for arn in role["ManagedPolicyArns"])


# --- stages ---------------------------------------------------------------------------------

DATA = ["UploadsBucket", "UploadsTable"]


@pytest.mark.parametrize(("stage", "policy"), [("prod", "Retain"), ("dev", "Delete")])
def test_prod_retains_the_bucket_and_tables(stage: str, policy: str) -> None:
    translated = translate({"Stage": stage})

    for name in DATA:
        assert translated["Resources"][name]["DeletionPolicy"] == policy, name
        assert translated["Resources"][name]["UpdateReplacePolicy"] == policy, name


@pytest.mark.parametrize(("stage", "retention"), [("prod", 90), ("dev", 14)])
def test_every_function_logs_to_its_own_group_kept_for_the_stage(stage: str, retention: int) -> None:
    template = deployed({"Stage": stage})
    groups = set()

    for function in FUNCTIONS:
        group = template["Resources"][function]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        groups.add(group)
        assert template["Resources"][group]["Properties"]["RetentionInDays"] == retention
    assert len(groups) == len(FUNCTIONS)
    assert template["Resources"]["ApiAccessLogGroup"]["Properties"]["RetentionInDays"] == retention


def _deployment_group(template: dict[str, Any], function: str) -> dict[str, Any]:
    alias = template["Resources"][alias_of(template, function)]
    group = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]["DeploymentGroupName"]["Ref"]
    return template["Resources"][group]["Properties"]


def _config_name(group: dict[str, Any]) -> str:
    pattern, variables = group["DeploymentConfigName"]["Fn::Sub"]
    return pattern.replace("${ConfigName}", variables["ConfigName"])


def test_prod_shifts_traffic_by_canary_and_rolls_back_on_the_function_errors_alarm(prod: dict[str, Any]) -> None:
    for function in FUNCTIONS:
        group = _deployment_group(prod, function)
        [alarm] = group["AlarmConfiguration"]["Alarms"]
        alarm_name = alarm["Name"]["Ref"]
        alarm_props = prod["Resources"][alarm_name]["Properties"]

        assert _config_name(group) == "CodeDeployDefault.LambdaCanary10Percent5Minutes"
        assert group["AlarmConfiguration"]["Enabled"] is True
        assert "DEPLOYMENT_STOP_ON_ALARM" in group["AutoRollbackConfiguration"]["Events"]
        assert alarm_props["MetricName"] == "Errors"
        assert alarm_props["Dimensions"] == [{"Name": "FunctionName", "Value": ref(function)}]


def test_dev_deploys_all_at_once_without_rollback_alarms(dev: dict[str, Any]) -> None:
    for function in FUNCTIONS:
        group = _deployment_group(dev, function)

        assert _config_name(group) == "CodeDeployDefault.LambdaAllAtOnce"
        assert not group.get("AlarmConfiguration")


def test_prod_alarms_are_stricter_than_dev(prod: dict[str, Any], dev: dict[str, Any]) -> None:
    alarms = resources_of_type(dev, "AWS::CloudWatch::Alarm")
    lambda_alarms = [name for name, a in alarms.items() if a["Properties"]["Namespace"] == "AWS/Lambda"]

    assert len(lambda_alarms) == 2 * len(FUNCTIONS) + 1  # errors and throttles each, the publisher's iterator age
    for name in lambda_alarms:
        assert prod["Resources"][name]["Properties"]["Threshold"] < dev["Resources"][name]["Properties"]["Threshold"]


@pytest.mark.parametrize("queue", ["DeadLetterQueue", "RetentionDeadLetterQueue", "PublishDeadLetterQueue"])
def test_every_function_has_errors_and_throttles_alarms_and_each_dead_letter_queue_one(
    dev: dict[str, Any], queue: str
) -> None:
    alarms = [a["Properties"] for a in resources_of_type(dev, "AWS::CloudWatch::Alarm").values()]
    watched = {(a["MetricName"], a["Dimensions"][0]["Value"]["Ref"]) for a in alarms if a["Namespace"] == "AWS/Lambda"}
    dlq = [a for a in alarms if a["Dimensions"][0]["Value"] == get_att(queue, "QueueName")]

    every = {(metric, f) for f in FUNCTIONS for metric in ("Errors", "Throttles")}
    assert watched == every | {("IteratorAge", "PublishFunction")}
    [dlq_alarm] = dlq
    assert dlq_alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert dlq_alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert dlq_alarm["Threshold"] == 0


def test_alarms_notify_the_topic_only_when_an_email_is_given(dev: dict[str, Any]) -> None:
    with_email = deployed({"AlarmEmail": "ops@example.com"})

    for name, alarm in resources_of_type(with_email, "AWS::CloudWatch::Alarm").items():
        assert alarm["Properties"]["AlarmActions"] == [ref("AlarmTopic")], name
    for name, alarm in resources_of_type(dev, "AWS::CloudWatch::Alarm").items():
        assert "AlarmActions" not in alarm["Properties"], name
    assert "AlarmTopic" not in dev["Resources"]


# --- contract with the code -----------------------------------------------------------------


def test_every_function_gets_the_environment_the_code_reads(dev: dict[str, Any]) -> None:
    for function in FUNCTIONS:
        variables = dev["Resources"][function]["Properties"]["Environment"]["Variables"]

        assert set(variables) >= ENVIRONMENT, function
        assert variables["UPLOADS_TABLE"] == ref("UploadsTable")
        assert variables["UPLOADS_BUCKET"] == ref("UploadsBucket")
        assert variables["EVENT_BUS_NAME"] == ref("EventBus")
        assert variables["INGEST_QUEUE_URL"] == ref("IngestQueue")
        assert variables["DEAD_LETTER_QUEUE_URL"] == ref("DeadLetterQueue")
        assert variables["POWERTOOLS_LOGGER_LOG_EVENT"] == "false"


@pytest.mark.parametrize(("stage", "level"), [("prod", "INFO"), ("dev", "DEBUG")])
def test_log_level_follows_the_stage(stage: str, level: str) -> None:
    template = deployed({"Stage": stage})

    for function in FUNCTIONS:
        variables = template["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert variables["POWERTOOLS_LOG_LEVEL"] == level
        assert variables["STAGE"] == ref("Stage")


def test_uploads_table_is_on_demand_with_ttl_and_point_in_time_recovery(dev: dict[str, Any]) -> None:
    table = dev["Resources"]["UploadsTable"]["Properties"]

    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert [k["KeyType"] for k in table["KeySchema"]] == ["HASH"]
    assert table["TimeToLiveSpecification"]["Enabled"] is True
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["SSESpecification"]["SSEEnabled"] is True


def test_bucket_is_private_tls_only_and_cleans_up_after_itself(dev: dict[str, Any]) -> None:
    bucket = dev["Resources"]["UploadsBucket"]["Properties"]
    statements = dev["Resources"]["UploadsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    [deny] = [s for s in statements if s.get("Sid") == "DenyInsecureTransport"]
    rules = bucket["LifecycleConfiguration"]["Rules"]
    [cors] = bucket["CorsConfiguration"]["CorsRules"]

    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert any(r.get("AbortIncompleteMultipartUpload", {}).get("DaysAfterInitiation") == 1 for r in rules)
    assert any(r.get("Prefix") == "quarantine/" and r.get("ExpirationInDays") == 30 for r in rules)
    assert cors["AllowedOrigins"] == ref("AllowedOrigins")
    assert cors["ExposedHeaders"] == ["ETag"]
    assert set(cors["AllowedMethods"]) >= {"POST", "PUT"}


def test_staged_objects_expire_but_not_before_their_dead_letters(dev: dict[str, Any]) -> None:
    """An upload that failed processing waits in the DeadLetterQueue for a redrive; its object
    under the staging prefix must still be there when the redrive comes."""
    bucket = dev["Resources"]["UploadsBucket"]["Properties"]
    [queue_config] = bucket["NotificationConfiguration"]["QueueConfigurations"]
    [staging] = [r["Value"] for r in queue_config["Filter"]["S3Key"]["Rules"] if r["Name"] == "prefix"]
    rules = bucket["LifecycleConfiguration"]["Rules"]
    dead_letter_days = int(dev["Resources"]["DeadLetterQueue"]["Properties"]["MessageRetentionPeriod"]) / 86400

    [rule] = [r for r in rules if r.get("Prefix") == staging and "ExpirationInDays" in r]
    assert rule["Status"] == "Enabled"
    assert int(rule["ExpirationInDays"]) >= dead_letter_days
    # verified objects live as long as their record (RetentionFunction), never by a bucket rule
    expiring = [r for r in rules if "ExpirationInDays" in r or "ExpirationDate" in r]
    assert {r.get("Prefix") for r in expiring} == {staging, "quarantine/"}


def test_uploads_table_lists_by_owner_through_a_sparse_index_and_streams_both_images(dev: dict[str, Any]) -> None:
    table = dev["Resources"]["UploadsTable"]["Properties"]
    attributes = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    [index] = table["GlobalSecondaryIndexes"]
    [query] = [s for s in _statements_of(dev, "ApiFunction") if "dynamodb:Query" in as_list(s["Action"])]

    assert index["IndexName"] == "byOwner"
    assert index["KeySchema"] == [
        {"AttributeName": "owner", "KeyType": "HASH"},
        {"AttributeName": "created_at", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "ALL"}
    assert attributes == {"pk": "S", "owner": "S", "created_at": "S"}
    # on demand: neither the table nor the index names a capacity
    assert "ProvisionedThroughput" not in index
    # the API may query that index by its name (a renamed index would fail every listing)
    assert {"Fn::Sub": "${UploadsTable.Arn}/index/" + index["IndexName"]} in as_list(query["Resource"])
    # RetentionFunction reads the removed record's keys from the old image, PublishFunction the
    # owed event from the new one (and whether it was owed before from the old)
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}


def test_retention_reads_removals_from_the_stream_and_gives_up_on_a_record_into_its_dead_letter_queue(
    dev: dict[str, Any],
) -> None:
    props = mapping_of(dev, "RetentionFunction")
    [pattern] = [json.loads(f["Pattern"]) for f in props["FilterCriteria"]["Filters"]]
    destination = props["DestinationConfig"]["OnFailure"]["Destination"]

    assert props["EventSourceArn"] == get_att("UploadsTable", "StreamArn")
    assert props["StartingPosition"] == "TRIM_HORIZON"
    assert pattern == {"eventName": ["REMOVE"]}
    # one bad record fails alone and the shard moves on after a bounded number of tries
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["BisectBatchOnFunctionError"] is True
    assert 0 < props["MaximumRetryAttempts"] < 10000
    # the failure message only points into the stream (24 hours of records): give up well before
    assert 0 < props["MaximumRecordAgeInSeconds"] < 24 * 3600
    assert destination == get_att("RetentionDeadLetterQueue", "Arn")
    assert ("sqs:SendMessage", destination) in _allowed(dev, _role_of(dev, "RetentionFunction"))


def test_the_publisher_reads_owed_changes_from_the_stream_in_order_and_waits_out_an_outage(
    dev: dict[str, Any],
) -> None:
    props = mapping_of(dev, "PublishFunction")
    [pattern] = [json.loads(f["Pattern"]) for f in props["FilterCriteria"]["Filters"]]

    assert props["EventSourceArn"] == get_att("UploadsTable", "StreamArn")
    assert props["StartingPosition"] == "TRIM_HORIZON"
    assert pattern == {
        "eventName": ["INSERT", "MODIFY"],
        "dynamodb": {"NewImage": {"pending_event": {"S": [{"exists": True}]}}},
    }
    # retried from the first failure on, never split (a split would let a later event overtake)
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert not props.get("BisectBatchOnFunctionError")
    assert props.get("ParallelizationFactor", 1) == 1
    # an outage holds the events, then the batch is dead-lettered while the stream (24 hours)
    # still has its records
    assert props["MaximumRetryAttempts"] == -1
    assert 6 * 3600 <= props["MaximumRecordAgeInSeconds"] < 24 * 3600
    assert props["DestinationConfig"]["OnFailure"]["Destination"] == get_att("PublishDeadLetterQueue", "Arn")
    assert props["BatchSize"] <= 100


def test_outputs_let_clients_and_tests_discover_the_stack(dev: dict[str, Any]) -> None:
    assert set(dev["Outputs"]) >= OUTPUTS


def test_every_parameter_is_described_and_has_a_default() -> None:
    """So `sam deploy --guided` only asks, never fails for a missing value."""
    for name, spec in load_template()["Parameters"].items():
        assert spec.get("Description"), name
        assert "Default" in spec, name


# --- downloads through CloudFront (DownloadDistribution=cloudfront) ---------------------------------

SAMPLE_PUBLIC_KEY = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----"
SAMPLE_SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:directupload-cloudfront-AbCdEf"
CLOUDFRONT = {
    **DEV,
    "DownloadDistribution": "cloudfront",
    "CloudFrontPublicKey": SAMPLE_PUBLIC_KEY,
    "CloudFrontPrivateKeySecretArn": SAMPLE_SECRET_ARN,
}
# CloudFront's managed cache policy "CachingDisabled"
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"


@pytest.fixture(scope="module")
def cloudfront() -> dict[str, Any]:
    return deployed(CLOUDFRONT)


def _distribution(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    [(name, distribution)] = resources_of_type(template, "AWS::CloudFront::Distribution").items()
    return name, distribution["Properties"]["DistributionConfig"]


def _behaviours(config: dict[str, Any]) -> list[dict[str, Any]]:
    return [config["DefaultCacheBehavior"], *config.get("CacheBehaviors", [])]


def _the(template: dict[str, Any], reference: dict[str, Any], type_: str) -> dict[str, Any]:
    """The properties of the resource a Ref or GetAtt names, which must be of this type."""
    name = reference["Ref"] if "Ref" in reference else reference["Fn::GetAtt"][0]
    resource = template["Resources"][name]
    assert resource["Type"] == type_, (name, resource["Type"])
    return dict(resource["Properties"])


def _signed_query_strings() -> set[str]:
    """The query strings the API puts in a download URL before CloudFront's own parameters."""
    from urllib.parse import parse_qsl, urlsplit

    from directupload.cdn import object_url

    return {name for name, _ in parse_qsl(urlsplit(object_url("d", "k", content_type="t", disposition="d")).query)}


def test_cloudfront_reads_the_private_bucket_through_origin_access_control(cloudfront: dict[str, Any]) -> None:
    _, config = _distribution(cloudfront)
    [origin] = config["Origins"]
    oac = _the(cloudfront, origin["OriginAccessControlId"], "AWS::CloudFront::OriginAccessControl")

    assert origin["DomainName"] == get_att("UploadsBucket", "RegionalDomainName")
    # origin access control, not the legacy origin access identity
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    assert oac["OriginAccessControlConfig"] | {"Name": None, "Description": None} == {
        "Name": None,
        "Description": None,
        "OriginAccessControlOriginType": "s3",
        "SigningBehavior": "always",
        "SigningProtocol": "sigv4",
    }
    assert config["Enabled"] is True
    assert config["ViewerCertificate"] == {"CloudFrontDefaultCertificate": True}
    # the bucket itself stays private
    assert all(cloudfront["Resources"]["UploadsBucket"]["Properties"]["PublicAccessBlockConfiguration"].values())


def test_every_cloudfront_behaviour_is_https_only_read_only_and_needs_a_url_signed_by_the_key_group(
    cloudfront: dict[str, Any],
) -> None:
    from directupload import keys

    _, config = _distribution(cloudfront)
    behaviours = _behaviours(config)
    [origin] = config["Origins"]

    for behaviour in behaviours:
        [group] = behaviour["TrustedKeyGroups"]
        key_group = _the(cloudfront, group, "AWS::CloudFront::KeyGroup")["KeyGroupConfig"]
        [public_key] = key_group["Items"]

        assert behaviour["ViewerProtocolPolicy"] == "https-only"
        assert behaviour["TargetOriginId"] == origin["Id"]
        assert set(behaviour["AllowedMethods"]) == {"GET", "HEAD"}
        assert _the(cloudfront, public_key, "AWS::CloudFront::PublicKey")["PublicKeyConfig"]["EncodedKey"] == ref(
            "CloudFrontPublicKey"
        )
    # only the verified and derived prefixes of the key scheme have behaviours of their own ...
    assert {b["PathPattern"] for b in config["CacheBehaviors"]} == {keys.FILES + "*", keys.DERIVED + "*"}
    # ... and the default one never reaches the bucket: nothing cached, 404 at the edge
    default = config["DefaultCacheBehavior"]
    [association] = default["FunctionAssociations"]
    refuse = _the(cloudfront, association["FunctionARN"], "AWS::CloudFront::Function")
    assert default["CachePolicyId"] == CACHING_DISABLED
    assert association["EventType"] == "viewer-request"
    assert "statusCode: 404" in refuse["FunctionCode"]
    assert "request" not in refuse["FunctionCode"].split("return", 1)[1]


def test_cloudfront_caches_and_forwards_exactly_the_response_overrides_the_api_signs(
    cloudfront: dict[str, Any],
) -> None:
    """S3 sets Content-Type and Content-Disposition from response-* query strings on signed
    requests (origin access control signs with SigV4): they must reach S3 and be in the cache key,
    or one cached copy would answer with another download's headers."""
    _, config = _distribution(cloudfront)

    for behaviour in config["CacheBehaviors"]:
        policy = _the(cloudfront, ref(behaviour["CachePolicyId"]["Ref"]), "AWS::CloudFront::CachePolicy")
        in_key = policy["CachePolicyConfig"]["ParametersInCacheKeyAndForwardedToOrigin"]
        query = in_key["QueryStringsConfig"]

        assert query["QueryStringBehavior"] == "whitelist"
        assert (
            set(query["QueryStrings"])
            == _signed_query_strings()
            == {
                "response-content-type",
                "response-content-disposition",
            }
        )
        assert in_key["HeadersConfig"] == {"HeaderBehavior": "none"}
        assert in_key["CookiesConfig"] == {"CookieBehavior": "none"}
        assert "OriginRequestPolicyId" not in behaviour  # what is in the cache key is forwarded anyway


def test_cloudfront_answers_with_nosniff_a_sandboxing_csp_no_referrer_and_hsts(cloudfront: dict[str, Any]) -> None:
    _, config = _distribution(cloudfront)
    [policy_id] = {json.dumps(b["ResponseHeadersPolicyId"]) for b in _behaviours(config)}
    policy = _the(cloudfront, json.loads(policy_id), "AWS::CloudFront::ResponseHeadersPolicy")
    security = policy["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    csp = security["ContentSecurityPolicy"]["ContentSecurityPolicy"]
    directives = {d.strip().split(" ", 1)[0]: d.strip() for d in csp.split(";")}

    assert security["ContentTypeOptions"] == {"Override": True}
    assert directives["default-src"] == "default-src 'none'"
    assert directives["sandbox"] == "sandbox"  # no scripts, no forms, an opaque origin
    assert "script-src" not in directives
    assert {"img-src", "media-src", "style-src"} <= set(directives)
    assert security["ReferrerPolicy"] == {"ReferrerPolicy": "no-referrer", "Override": True}
    assert security["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 31536000
    assert all(header["Override"] is True for header in security.values())


def test_the_bucket_lets_only_this_distribution_read_only_verified_and_derived_objects(
    cloudfront: dict[str, Any],
) -> None:
    name, _ = _distribution(cloudfront)
    statements = cloudfront["Resources"]["UploadsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    to_cloudfront = [s for s in statements if s.get("Principal") == {"Service": "cloudfront.amazonaws.com"}]
    [statement] = to_cloudfront
    source_arn = statement["Condition"]["StringEquals"]["AWS:SourceArn"]["Fn::Sub"]

    assert statement["Effect"] == "Allow"
    assert as_list(statement["Action"]) == ["s3:GetObject"]
    assert _same(as_list(statement["Resource"]), VERIFIED)
    assert set(statement["Condition"]) == {"StringEquals"}
    # the distribution's ARN: this account's, this stack's distribution
    assert (
        _render_sub(source_arn, {}, {"AWS::Partition": "aws", "AWS::AccountId": "123456789012", name: "E2ABC"})
        == "arn:aws:cloudfront::123456789012:distribution/E2ABC"
    )


def test_the_api_may_read_exactly_the_signing_key_secret_and_learns_where_to_sign(cloudfront: dict[str, Any]) -> None:
    from directupload.config import ENV_NAMES

    name, _ = _distribution(cloudfront)
    granted = [
        (function, statement)
        for function in FUNCTIONS
        for statement in _statements_of(cloudfront, function)
        if any(a.startswith("secretsmanager:") for a in as_list(statement["Action"]))
    ]
    [(function, statement)] = granted
    [resource] = as_list(statement["Resource"])
    pattern, variables = resource["Fn::Sub"]
    known = {
        "AWS::Partition": "aws",
        "AWS::Region": "eu-west-1",
        "AWS::AccountId": "123456789012",
        "CloudFrontPrivateKeySecretArn": SAMPLE_SECRET_ARN,
    }
    variables_of = cloudfront["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]
    [public_key] = resources_of_type(cloudfront, "AWS::CloudFront::PublicKey")
    output = translate(CLOUDFRONT)["Outputs"]["DownloadDomain"]

    assert function == "ApiFunction"
    assert as_list(statement["Action"]) == ["secretsmanager:GetSecretValue"]
    assert _render_sub(pattern, variables, known) == SAMPLE_SECRET_ARN
    # the variables the code reads (config.ENV_NAMES) point at this distribution, key and secret
    assert variables_of["DOWNLOAD_DOMAIN"] == get_att(name, "DomainName")
    assert variables_of["CLOUDFRONT_KEY_PAIR_ID"] == ref(public_key)
    assert variables_of["CLOUDFRONT_PRIVATE_KEY_SECRET_ARN"] == ref("CloudFrontPrivateKeySecretArn")
    assert {"DOWNLOAD_DOMAIN", "CLOUDFRONT_KEY_PAIR_ID", "CLOUDFRONT_PRIVATE_KEY_SECRET_ARN"} <= set(ENV_NAMES.values())
    assert (output["Condition"], output["Value"]) == ("DownloadsThroughCloudFront", get_att(name, "DomainName"))


def test_by_default_there_is_no_distribution_no_grant_to_cloudfront_and_no_secret_access(
    dev: dict[str, Any],
) -> None:
    assert load_template()["Parameters"]["DownloadDistribution"]["Default"] == "none"
    assert not [n for n, r in dev["Resources"].items() if r["Type"].startswith("AWS::CloudFront::")]
    statements = dev["Resources"]["UploadsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert not [s for s in statements if "cloudfront" in json.dumps(s.get("Principal", {}))]
    for function in FUNCTIONS:
        actions = [a for a, _ in _allowed(dev, _role_of(dev, function))]
        assert not [a for a in actions if a.startswith("secretsmanager:")], function
    variables = dev["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]
    # empty: the settings treat them as unset, and downloads are S3 presigned GETs
    for name in ("DOWNLOAD_DOMAIN", "CLOUDFRONT_KEY_PAIR_ID", "CLOUDFRONT_PRIVATE_KEY_SECRET_ARN"):
        assert variables[name] == "", name


def test_cloudfront_needs_both_key_parameters_and_they_take_what_openssl_and_secrets_manager_give() -> None:
    template = load_template()
    rule = template["Rules"]["SigningKeyRequiredWithCloudFront"]
    asserted = json.dumps(rule["Assertions"])
    parameters = template["Parameters"]
    pem = parameters["CloudFrontPublicKey"]["AllowedPattern"]
    arn = parameters["CloudFrontPrivateKeySecretArn"]["AllowedPattern"]

    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "DownloadDistribution"}, "cloudfront"]}
    assert '"Ref": "CloudFrontPublicKey"' in asserted and '"Ref": "CloudFrontPrivateKeySecretArn"' in asserted
    # CloudFormation matches AllowedPattern against the whole value
    assert re.fullmatch(pem, SAMPLE_PUBLIC_KEY + "\n") and re.fullmatch(pem, "")
    # a private key pasted by mistake (assembled here so the secrets scan does not flag this file)
    private = "RSA " + "PRIVATE KEY"
    assert not re.fullmatch(pem, f"-----BEGIN {private}-----\nMII\n-----END {private}-----")
    assert re.fullmatch(arn, SAMPLE_SECRET_ARN) and re.fullmatch(arn, "")
    assert not re.fullmatch(arn, "directupload-cloudfront")


def test_the_cloudfront_translation_has_no_cfn_lint_error_or_warning() -> None:
    """Schema, references and dependency cycles (bucket policy -> distribution -> bucket) of the
    resources only this parameter value creates."""
    from cfnlint.api import ManualArgs, lint

    matches = lint(json.dumps(translate(CLOUDFRONT)), config=ManualArgs(regions=["us-east-1", "eu-west-1"]))

    assert matches == [], "\n".join(str(m) for m in matches)


def test_guardduty_scans_staging_and_its_verdicts_reach_only_the_processor(dev: dict[str, Any]) -> None:
    resources = dev["Resources"]
    plan = resources["MalwareProtectionPlan"]["Properties"]
    assert plan["ProtectedResource"]["S3Bucket"] == {
        "BucketName": ref("UploadsBucket"),
        "ObjectPrefixes": ["incoming/scan/"],  # the staging of scan-required profiles only
    }
    assert plan["Actions"] == {"Tagging": {"Status": "ENABLED"}}
    assert plan["Role"] == get_att("MalwareProtectionRole", "Arn")
    role = resources["MalwareProtectionRole"]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "malware-protection-plan.guardduty.amazonaws.com"}
    # it reads and tags the scanned staging only: never the verified files/, nor the staging of
    # profiles without a scan, nor anything else of the bucket
    for statement in role["Policies"][0]["PolicyDocument"]["Statement"]:
        for resource in as_list(statement["Resource"]):
            text = json.dumps(resource)
            assert "files/" not in text and "derived/" not in text and "quarantine/" not in text, statement["Sid"]
            if {"s3:GetObject", "s3:PutObjectTagging"} & set(as_list(statement["Action"])):
                assert text.endswith('/incoming/scan/*"}'), resource

    rule = resources["ScanResultRule"]["Properties"]
    assert "EventBusName" not in rule  # GuardDuty publishes on the default bus
    assert rule["EventPattern"]["source"] == ["aws.guardduty"]
    assert rule["EventPattern"]["detail-type"] == ["GuardDuty Malware Protection Object Scan Result"]
    assert rule["EventPattern"]["detail"]["s3ObjectDetails"]["objectKey"] == [{"prefix": "incoming/scan/"}]
    [target] = rule["Targets"]
    assert target["Arn"] == get_att("IngestQueue", "Arn")
    statements = resources["IngestQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    [verdicts] = [s for s in statements if s["Sid"] == "MalwareScanVerdicts"]
    assert verdicts["Principal"] == {"Service": "events.amazonaws.com"}
    assert verdicts["Condition"] == {"ArnEquals": {"aws:SourceArn": get_att("ScanResultRule", "Arn")}}

    process_env = resources["ProcessFunction"]["Properties"]["Environment"]["Variables"]
    assert process_env["MALWARE_SCANNING"] == ref("MalwareProtection")
    alarm = resources["ScanTimeoutsAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("DirectUpload", "ScanTimeouts")


def test_without_malware_protection_there_is_no_plan_rule_or_statement() -> None:
    off = deployed({**DEV, "MalwareProtection": "disabled"})
    assert not {"MalwareProtectionPlan", "MalwareProtectionRole", "ScanResultRule", "ScanTimeoutsAlarm"} & set(
        off["Resources"]
    )
    statements = off["Resources"]["IngestQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert [s["Sid"] for s in statements] == ["UploadsBucketNotifications"]


# --- ExistingBuckets: buckets the stack does not own ------------------------------------------

EXISTING = {**DEV, "ExistingBuckets": "acme-uploads,acme-reports"}
EXISTING_BUCKET_NAMES = ["acme-uploads", "acme-reports"]


@pytest.fixture(scope="module")
def existing() -> dict[str, Any]:
    return deployed(EXISTING)


def _concrete(template: dict[str, Any], value: Any) -> Any:
    """``value`` with the parameters' values and sample names put in (Fn::Split, Fn::Join, Fn::Sub ...)."""
    from local.template import LocalTemplate

    return LocalTemplate(template, parameters=EXISTING).resolve(value)


def _concrete_s3_grants(template: dict[str, Any]) -> dict[str, list[str]]:
    """Every S3 resource each role's inline policies name, concrete."""
    grants: dict[str, list[str]] = {}
    for name, statement in policy_statements(template):
        if not any(str(a).startswith("s3:") for a in as_list(statement.get("Action"))):
            continue
        if template["Resources"][name]["Type"] != "AWS::IAM::Role":
            continue
        grants.setdefault(name, []).extend(as_list(_concrete(template, statement["Resource"])))
    return grants


def test_with_existing_buckets_the_stack_creates_no_bucket_policy_or_plan(existing: dict[str, Any]) -> None:
    for type_ in ("AWS::S3::Bucket", "AWS::S3::BucketPolicy", "AWS::GuardDuty::MalwareProtectionPlan"):
        assert resources_of_type(existing, type_) == {}, type_
    env = existing["Resources"]["ProcessFunction"]["Properties"]["Environment"]["Variables"]
    assert _concrete(existing, env["UPLOADS_BUCKET"]) == "acme-uploads"
    assert _concrete(existing, env["UPLOADS_BUCKETS"]) == "acme-uploads,acme-reports"


def test_existing_buckets_reach_the_ingest_queue_through_their_eventbridge_events(existing: dict[str, Any]) -> None:
    rule = existing["Resources"]["ObjectCreatedRule"]["Properties"]
    pattern = _concrete(existing, rule["EventPattern"])
    assert pattern == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": EXISTING_BUCKET_NAMES}, "object": {"key": [{"prefix": "incoming/"}]}},
    }
    assert "EventBusName" not in rule  # S3 publishes on the default bus
    assert [t["Arn"] for t in rule["Targets"]] == [get_att("IngestQueue", "Arn")]
    # the queue admits that rule (and the scanner's), and no bucket notification of its own
    statements = existing["Resources"]["IngestQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    sources = {s["Sid"]: s["Condition"]["ArnEquals"]["aws:SourceArn"] for s in statements}
    assert sources == {
        "ExistingBucketsObjectCreated": get_att("ObjectCreatedRule", "Arn"),
        "MalwareScanVerdicts": get_att("ScanResultRule", "Arn"),
    }
    verdicts = _concrete(existing, existing["Resources"]["ScanResultRule"]["Properties"]["EventPattern"])
    assert verdicts["detail"]["s3ObjectDetails"]["bucketName"] == EXISTING_BUCKET_NAMES


def test_every_s3_grant_names_exactly_the_existing_buckets_under_the_product_prefixes(
    existing: dict[str, Any], dev: dict[str, Any]
) -> None:
    grants = _concrete_s3_grants(existing)
    assert set(grants) >= {"ApiFunctionRole", "ProcessFunctionRole", "RetentionFunctionRole", "MalwareProtectionRole"}
    for role, resources in grants.items():
        for arn in resources:
            bucket, _, path = arn.removeprefix("arn:aws:s3:::").partition("/")
            assert bucket in EXISTING_BUCKET_NAMES, (role, arn)
            assert path == "" or path.split("/")[0] in {
                "incoming",
                "files",
                "derived",
                "quarantine",
                "malware-protection-resource-validation-object",
            }, (role, arn)
        # each grant covers every configured bucket alike
        for name in EXISTING_BUCKET_NAMES:
            mine = sorted(a.split("/", 1)[1] if "/" in a else "" for a in resources if f":::{name}" in a)
            theirs = sorted(
                a.split("/", 1)[1] if "/" in a else "" for a in resources if f":::{EXISTING_BUCKET_NAMES[0]}" in a
            )
            assert mine == theirs, (role, name)
    # and the same prefixes as with the stack's own bucket
    own = {
        role: sorted({a.split("/", 1)[1] if "/" in a else "" for a in r})
        for role, r in _concrete_s3_grants(dev).items()
    }
    ours = {role: sorted({a.split("/", 1)[1] if "/" in a else "" for a in r}) for role, r in grants.items()}
    assert ours == own


def test_the_api_signs_uploads_only_under_incoming_of_the_existing_buckets(existing: dict[str, Any]) -> None:
    role = existing["Resources"]["ApiFunctionRole"]
    [statement] = [
        s
        for s in policy_statements({"Resources": {"ApiFunctionRole": role}})
        if s[1].get("Sid") == "SignUploadsUnderIncoming"
    ]
    assert _concrete(existing, statement[1]["Resource"]) == [
        f"arn:aws:s3:::{b}/incoming/*" for b in EXISTING_BUCKET_NAMES
    ]


def test_cloudfront_downloads_need_the_stacks_own_bucket() -> None:
    rules = load_template()["Rules"]["SigningKeyRequiredWithCloudFront"]["Assertions"]
    assert {"Fn::Equals": [{"Fn::Join": [",", {"Ref": "ExistingBuckets"}]}, ""]} in [r["Assert"] for r in rules]
    conditions = evaluate_conditions(load_template(), {**EXISTING, "DownloadDistribution": "cloudfront"})
    assert conditions["DownloadsThroughCloudFront"] is False


# --- SnapStart ------------------------------------------------------------------------------------


def test_snapstart_is_off_by_default_and_on_published_versions_of_the_two_hot_functions_when_enabled(
    dev: dict[str, Any],
) -> None:
    enabled = deployed({**DEV, "SnapStart": "enabled"})

    for function in FUNCTIONS:
        assert "SnapStart" not in dev["Resources"][function]["Properties"], function
    for function in ["ApiFunction", "ProcessFunction"]:
        props = enabled["Resources"][function]["Properties"]
        assert props["SnapStart"] == {"ApplyOn": "PublishedVersions"}, function
        assert props["Runtime"] >= "python3.12"  # SnapStart's first Python runtime
        assert props.get("EphemeralStorage", {"Size": 512})["Size"] <= 512  # SnapStart allows no more
        # SnapStart serves only published versions: the alias every event source invokes names one
        alias = enabled["Resources"][alias_of(enabled, function)]["Properties"]
        version = alias["FunctionVersion"]["Fn::GetAtt"][0]
        assert enabled["Resources"][version]["Type"] == "AWS::Lambda::Version"
    for function in ["ConsumerFunction", "RetentionFunction"]:
        assert "SnapStart" not in enabled["Resources"][function]["Properties"], function


def test_the_snapstart_translation_has_no_cfn_lint_error_or_warning() -> None:
    from cfnlint.api import ManualArgs, lint

    translated = translate({**PROD_WITH_AUTH, "SnapStart": "enabled"})
    matches = lint(json.dumps(translated), config=ManualArgs(regions=["us-east-1", "eu-west-1"]))

    assert matches == [], "\n".join(str(m) for m in matches)
