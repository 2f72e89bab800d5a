"""Creates in the emulator the resources template.yaml declares, with the template's settings."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from local.template import LocalTemplate


@dataclass(frozen=True)
class Provisioned:
    bucket: str
    uploads_table: str
    idempotency_table: str
    event_bus: str
    ingest_queue_url: str
    dead_letter_queue_url: str
    events_queue_url: str  # local only: what the bus delivers, shown to the developer


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


def _table(ddb: Any, tpl: LocalTemplate, logical_id: str) -> str:
    props = tpl.properties(logical_id)
    name = tpl.physical_name(logical_id)
    ddb.create_table(
        TableName=name,
        KeySchema=props["KeySchema"],
        AttributeDefinitions=props["AttributeDefinitions"],
        BillingMode="PAY_PER_REQUEST",
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


def provision(tpl: LocalTemplate, s3: Any, sqs: Any, ddb: Any, events: Any) -> Provisioned:
    queues = tpl.resources("AWS::SQS::Queue")
    # dead-letter queues first: the others' redrive policies name them
    order = sorted(queues, key=lambda q: "RedrivePolicy" in queues[q].get("Properties", {}))
    urls = {logical_id: _queue(sqs, tpl, logical_id) for logical_id in order}

    for logical_id in tpl.resources("AWS::DynamoDB::Table"):
        _table(ddb, tpl, logical_id)

    (bucket_id,) = tpl.resources("AWS::S3::Bucket")
    bucket = tpl.physical_name(bucket_id)
    props = tpl.properties(bucket_id)
    s3.create_bucket(Bucket=bucket)
    if "CorsConfiguration" in props:
        rules = [_cors_rule(rule) for rule in props["CorsConfiguration"]["CorsRules"]]
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
    queue_configs = []
    for config in props.get("NotificationConfiguration", {}).get("QueueConfigurations", []):
        entry: dict[str, Any] = {"QueueArn": config["Queue"], "Events": [config["Event"]]}
        rules = config.get("Filter", {}).get("S3Key", {}).get("Rules", [])
        if rules:
            entry["Filter"] = {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}}
        queue_configs.append(entry)
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"QueueConfigurations": queue_configs}
    )

    (bus_id,) = tpl.resources("AWS::Events::EventBus")
    bus = tpl.physical_name(bus_id)
    events.create_event_bus(Name=bus)

    # Local only: every event on the bus is also delivered to a queue the stack drains and shows.
    events_queue = sqs.create_queue(QueueName=f"{tpl.prefix}-delivered-events")["QueueUrl"]
    events_arn = sqs.get_queue_attributes(QueueUrl=events_queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="local-show-events", EventBusName=bus, EventPattern=json.dumps({"source": ["directupload"]}))
    events.put_targets(Rule="local-show-events", EventBusName=bus, Targets=[{"Id": "local", "Arn": events_arn}])

    env = tpl.function_environment("ProcessFunction")
    ingest = next(lid for lid in queues if "RedrivePolicy" in queues[lid].get("Properties", {}))
    dlq = tpl.properties(ingest)["RedrivePolicy"]["deadLetterTargetArn"].rsplit(":", 1)[1]
    return Provisioned(
        bucket=bucket,
        uploads_table=env.get("UPLOADS_TABLE", ""),
        idempotency_table=env.get("IDEMPOTENCY_TABLE", ""),
        event_bus=bus,
        ingest_queue_url=urls[ingest],
        dead_letter_queue_url=next(url for url in urls.values() if url.endswith("/" + dlq)),
        events_queue_url=events_queue,
    )
