"""Creates in the emulator the resources template.yaml declares, with the template's settings."""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass
from typing import Any

from directupload import keys
from local.template import LocalTemplate


@dataclass(frozen=True)
class Provisioned:
    bucket: str  # the default bucket
    uploads_table: str
    event_bus: str
    ingest_queue_url: str
    dead_letter_queue_url: str
    events_queue_url: str  # local only: what the bus delivers, shown to the developer
    uploads_table_stream_arn: str  # what RetentionFunction reads; "" when the table streams nothing
    retention_dead_letter_queue_url: str  # "" when the template declares no such queue
    # the optional webhook (WebhookUrl set): "" without one
    webhook_queue_url: str = ""
    webhook_dead_letter_queue_url: str = ""
    webhook_secret_id: str = ""
    # local only: the notifications the local malware scanner (local/scanner.py) drains, as
    # GuardDuty sees every object under the protected prefix; "" without a malware protection plan
    scan_requests_queue_url: str = ""
    buckets: tuple[str, ...] = ()  # every configured bucket, the default first


def _queue(sqs: Any, tpl: LocalTemplate, logical_id: str) -> str:
    props = tpl.properties(logical_id)
    attributes: dict[str, str] = {}
    for prop in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds"):
        if prop in props:
            attributes[prop] = str(props[prop])
    if "RedrivePolicy" in props:
        policy = props["RedrivePolicy"]
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": policy["deadLetterTargetArn"], "maxReceiveCount": int(policy["maxReceiveCount"])}
        )
    return str(sqs.create_queue(QueueName=tpl.physical_name(logical_id), Attributes=attributes)["QueueUrl"])


def _index(index: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's GlobalSecondaryIndex as the DynamoDB API takes it on an on-demand table
    (CloudFormation's and the API's shapes agree; capacity settings have no use locally)."""
    return {key: index[key] for key in ("IndexName", "KeySchema", "Projection")}


def _table(ddb: Any, tpl: LocalTemplate, logical_id: str) -> str:
    props = tpl.properties(logical_id)
    name = tpl.physical_name(logical_id)
    extra: dict[str, Any] = {}
    if props.get("GlobalSecondaryIndexes"):
        extra["GlobalSecondaryIndexes"] = [_index(index) for index in props["GlobalSecondaryIndexes"]]
    stream = props.get("StreamSpecification")
    if stream:
        # CloudFormation turns the stream on by naming a view type; the API says so explicitly.
        extra["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    ddb.create_table(
        TableName=name,
        KeySchema=props["KeySchema"],
        AttributeDefinitions=props["AttributeDefinitions"],
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        ddb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]}
        )
    return name


def _cors_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's CorsRule spelled as the S3 API spells it."""
    out: dict[str, Any] = {
        key: rule[key] for key in ("AllowedHeaders", "AllowedMethods", "AllowedOrigins") if key in rule
    }
    if "ExposedHeaders" in rule:
        out["ExposeHeaders"] = rule["ExposedHeaders"]
    if "MaxAge" in rule:
        out["MaxAgeSeconds"] = int(rule["MaxAge"])
    return out


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's lifecycle Rule spelled as the S3 API spells it (the parts the template uses)."""
    out: dict[str, Any] = {"Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
    if "Id" in rule:
        out["ID"] = rule["Id"]
    if "ExpirationInDays" in rule:
        out["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "AbortIncompleteMultipartUpload" in rule:
        days = rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
        out["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": int(days)}
    unknown = set(rule) - {"Id", "Status", "Prefix", "ExpirationInDays", "AbortIncompleteMultipartUpload"}
    if unknown:
        raise NotImplementedError(f"lifecycle rule {rule.get('Id')}: translate {sorted(unknown)} for the local stack")
    return out


def _generated_secret(spec: dict[str, Any]) -> str:
    """A value as CloudFormation's GenerateSecretString makes one (the options the template uses)."""
    unknown = set(spec) - {"PasswordLength", "ExcludePunctuation", "IncludeSpace"}
    if unknown:
        raise NotImplementedError(f"GenerateSecretString: translate {sorted(unknown)} for the local stack")
    alphabet = string.ascii_letters + string.digits
    if not spec.get("ExcludePunctuation"):
        alphabet += string.punctuation
    if spec.get("IncludeSpace"):
        alphabet += " "
    return "".join(secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32))))


def _secret(secretsmanager: Any, tpl: LocalTemplate, logical_id: str) -> str:
    """The secret, generated now in the emulator (never written anywhere else); ``!Ref`` gives its
    ARN without AWS's random suffix locally, which the emulator takes wherever it takes an ARN."""
    props = tpl.properties(logical_id)
    name = tpl.physical_name(logical_id)
    value = props.get("SecretString") or _generated_secret(props.get("GenerateSecretString", {}))
    secretsmanager.create_secret(Name=name, SecretString=value, Description=props.get("Description", ""))
    return name


def _rules_to_queues(events: Any, tpl: LocalTemplate) -> None:
    """The template's EventBridge rules whose targets are queues (the webhook's): the emulator
    delivers to an SQS target as EventBridge does. Rules with function targets are SAM's, and the
    event tap plays them."""
    for logical_id in tpl.resources("AWS::Events::Rule"):
        props = tpl.properties(logical_id)
        targets = [t for t in props.get("Targets", []) if str(t.get("Arn", "")).startswith("arn:aws:sqs:")]
        if not targets:
            continue
        name = tpl.physical_name(logical_id)
        bus = props.get("EventBusName", "default")  # none named: the default bus (GuardDuty's verdicts)
        events.put_rule(
            Name=name,
            EventBusName=bus,
            EventPattern=json.dumps(props["EventPattern"]),
            State=props.get("State", "ENABLED"),
        )
        events.put_targets(
            Rule=name,
            EventBusName=bus,
            Targets=[{"Id": t["Id"], "Arn": t["Arn"]} for t in targets],
        )


def _scan_requests_queue(tpl: LocalTemplate, sqs: Any) -> tuple[str, str] | None:
    """Local only: GuardDuty watches a plan's prefixes itself; the local scanner gets the same
    ObjectCreated notifications through a queue of its own. (url, arn), or None without scanning:
    no plan of the stack's own bucket, and no malware protection for existing buckets (whose
    owner's plan the local stack plays)."""
    if not tpl.condition("MalwareProtectionEnabled"):
        return None
    url = sqs.create_queue(QueueName=f"{tpl.prefix}-local-scan-requests")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return str(url), str(arn)


def _scan_notifications(prefixes: list[str], scan_requests: tuple[str, str] | None) -> list[dict[str, Any]]:
    if scan_requests is None:
        return []
    return [
        {
            "QueueArn": scan_requests[1],
            "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}] if prefix else []}},
        }
        for prefix in prefixes or [""]
    ]


def _own_bucket(tpl: LocalTemplate, s3: Any, bucket_id: str, scan_requests: tuple[str, str] | None) -> str:
    """The stack's own bucket, configured as the template says (S3 -> SQS notifications)."""
    bucket = tpl.physical_name(bucket_id)
    props = tpl.properties(bucket_id)
    s3.create_bucket(Bucket=bucket)
    if "CorsConfiguration" in props:
        rules = [_cors_rule(rule) for rule in props["CorsConfiguration"]["CorsRules"]]
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
    # Stored, so the local bucket describes itself like the real one; the emulator expires nothing.
    if "LifecycleConfiguration" in props:
        rules = [_lifecycle_rule(rule) for rule in props["LifecycleConfiguration"]["Rules"]]
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    queue_configs = []
    for config in props.get("NotificationConfiguration", {}).get("QueueConfigurations", []):
        entry: dict[str, Any] = {"QueueArn": config["Queue"], "Events": [config["Event"]]}
        rules = config.get("Filter", {}).get("S3Key", {}).get("Rules", [])
        if rules:
            entry["Filter"] = {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}}
        queue_configs.append(entry)
    for plan_id in tpl.resources("AWS::GuardDuty::MalwareProtectionPlan"):
        protected = tpl.properties(plan_id)["ProtectedResource"]["S3Bucket"]
        queue_configs += _scan_notifications(list(protected.get("ObjectPrefixes") or []), scan_requests)
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"QueueConfigurations": queue_configs}
    )
    # Evaluated for the functions' roles by the emulator's IAM gate (local/iam_gate.py).
    for policy_id in tpl.resources("AWS::S3::BucketPolicy"):
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(tpl.properties(policy_id)["PolicyDocument"]))
    return bucket


def configure_existing_bucket(
    tpl: LocalTemplate,
    s3: Any,
    bucket: str,
    *,
    processor_role_arn: str,
    scan_requests: tuple[str, str] | None = None,
) -> None:
    """What an existing bucket's owner does (docs/existing-buckets.md): block public access,
    default encryption, the bucket policy and CORS rule the product needs
    (scripts/check_bucket.py states them), EventBridge notifications on, and, with malware
    protection, the owner's plan on incoming/scan/ (played by the local scanner)."""
    from scripts.check_bucket import required_cors_rule, required_policy_statements

    s3.create_bucket(Bucket=bucket)
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    policy = {"Version": "2012-10-17", "Statement": required_policy_statements(bucket, processor_role_arn)}
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [required_cors_rule(tpl.ref("AllowedOrigins"))]})
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "EventBridgeConfiguration": {},
            "QueueConfigurations": _scan_notifications([keys.SCANNED], scan_requests),
        },
    )


def provision(
    tpl: LocalTemplate, s3: Any, sqs: Any, ddb: Any, events: Any, secretsmanager: Any | None = None
) -> Provisioned:
    queues = tpl.resources("AWS::SQS::Queue")
    # dead-letter queues first: the others' redrive policies name them
    order = sorted(queues, key=lambda q: "RedrivePolicy" in queues[q].get("Properties", {}))
    urls = {logical_id: _queue(sqs, tpl, logical_id) for logical_id in order}

    for logical_id in tpl.resources("AWS::DynamoDB::Table"):
        _table(ddb, tpl, logical_id)

    own = tpl.resources("AWS::S3::Bucket")
    scan_requests = _scan_requests_queue(tpl, sqs)
    if own:
        (bucket_id,) = own
        buckets = [_own_bucket(tpl, s3, bucket_id, scan_requests)]
    else:
        # ExistingBuckets: made and configured outside the template, by their owner (here, as the
        # owner would, following docs/existing-buckets.md); S3 -> EventBridge -> the rule's queue
        buckets = [name for name in tpl.ref("ExistingBuckets") if name]
        for name in buckets:
            configure_existing_bucket(
                tpl, s3, name, processor_role_arn=tpl.arn("ProcessFunctionRole"), scan_requests=scan_requests
            )

    (bus_id,) = tpl.resources("AWS::Events::EventBus")
    bus = tpl.physical_name(bus_id)
    events.create_event_bus(Name=bus)

    # Local only: every event on the bus is also delivered to a queue the stack drains and shows.
    events_queue = sqs.create_queue(QueueName=f"{tpl.prefix}-delivered-events")["QueueUrl"]
    events_arn = sqs.get_queue_attributes(QueueUrl=events_queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="local-show-events", EventBusName=bus, EventPattern=json.dumps({"source": ["directupload"]}))
    events.put_targets(Rule="local-show-events", EventBusName=bus, Targets=[{"Id": "local", "Arn": events_arn}])

    _rules_to_queues(events, tpl)
    secret_ids = {}
    for logical_id in tpl.resources("AWS::SecretsManager::Secret"):
        if secretsmanager is None:
            raise ValueError(f"{logical_id}: provision() needs a secretsmanager client for this template")
        secret_ids[logical_id] = _secret(secretsmanager, tpl, logical_id)

    env = tpl.function_environment("ProcessFunction")
    # the queue the functions' INGEST_QUEUE_URL names (other queues may redrive too: the webhook's)
    ingest = next(lid for lid in queues if tpl.physical_name(lid) == env["INGEST_QUEUE_URL"].rsplit("/", 1)[1])
    dlq = tpl.properties(ingest)["RedrivePolicy"]["deadLetterTargetArn"].rsplit(":", 1)[1]
    uploads_table = env.get("UPLOADS_TABLE", "")
    stream_arn = ddb.describe_table(TableName=uploads_table)["Table"].get("LatestStreamArn", "")
    return Provisioned(
        scan_requests_queue_url=scan_requests[0] if scan_requests else "",
        bucket=buckets[0],
        buckets=tuple(buckets),
        uploads_table=uploads_table,
        event_bus=bus,
        ingest_queue_url=urls[ingest],
        dead_letter_queue_url=next(url for url in urls.values() if url.endswith("/" + dlq)),
        events_queue_url=events_queue,
        uploads_table_stream_arn=stream_arn,
        retention_dead_letter_queue_url=urls.get("RetentionDeadLetterQueue", ""),
        webhook_queue_url=urls.get("WebhookQueue", ""),
        webhook_dead_letter_queue_url=urls.get("WebhookDeadLetterQueue", ""),
        webhook_secret_id=secret_ids.get("WebhookSigningSecret", ""),
    )
