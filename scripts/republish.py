"""Send again the events of the upload records changed since a moment.

    python -m scripts.republish --since 2026-12-01T10:00:00Z                          # the local stack
    python -m scripts.republish --since 2026-12-01T10:00:00Z --stack directupload-dev  # a deployed stack

The PublishFunction sends every event from the UploadsTable's stream, which keeps a change for 24
hours. When EventBridge refused events for longer than that (the PublishDeadLetterQueue has
messages, and its alarm fired), the changes it could not send are gone from the stream, but the
records still name the event their last change owes (``pending_event``). This sends, for every
upload record whose last change is at or after ``--since`` (``--until``, optional, bounds it),
that event again, built from the record alone exactly as the PublishFunction builds it, in the
order of the changes. A consumer that has one already sees it again (consumers key on
``detail.uploadId`` and ``detail-type``). Only a record's current event is there to send: an
upload processed and then deleted in the outage gets its ``Upload Deleted``.

It scans the table once (every item is read): an operator's tool, run with the operator's
credentials, never on a hot path.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE = ROOT / ".local" / "stack.json"
if str(ROOT / "functions") not in sys.path:  # the product's own event code
    sys.path.insert(0, str(ROOT / "functions"))


@dataclass(frozen=True)
class Target:
    table: str
    bus: str
    bucket: str
    rejected_objects: str = "quarantine"
    region: str | None = None
    endpoint_url: str | None = None


def owed_since(ddb: Any, table: str, since: datetime, until: datetime | None = None) -> Iterator[Any]:
    """The upload records changed in [since, until] that owe an event, oldest change first."""
    since, until = since.astimezone(UTC), until.astimezone(UTC) if until is not None else None
    from directupload.store import record_from_item

    condition = "begins_with(pk, :upload) AND attribute_exists(pending_event) AND updated_at >= :since"
    values = {":upload": {"S": "upload#"}, ":since": {"S": since.isoformat()}}
    if until is not None:
        condition += " AND updated_at <= :until"
        values[":until"] = {"S": until.isoformat()}
    found = []
    for page in ddb.get_paginator("scan").paginate(
        TableName=table, FilterExpression=condition, ExpressionAttributeValues=values, ConsistentRead=True
    ):
        found += [record_from_item(item) for item in page.get("Items", [])]
    yield from sorted(found, key=lambda record: record.updated_at)


def republish(
    ddb: Any, publisher: Any, target: Target, since: datetime, until: datetime | None = None
) -> list[tuple[str, str]]:
    """Send the events; the (upload id, detail-type) of each one sent, in order."""
    from directupload import events

    owed = []
    for record in owed_since(ddb, target.table, since, until):
        event = events.owed_event(record, record.bucket or target.bucket, target.rejected_objects)
        if event is not None:
            owed.append(event)
    publisher.publish_all(owed)
    return [(detail["uploadId"], kind) for kind, detail in owed]


def from_local_state(path: Path) -> Target:
    info = json.loads(path.read_text())
    table, bus, bucket = info["uploadsTable"], info["eventBus"], info["bucket"]
    return Target(table, bus, bucket, region=info.get("region"), endpoint_url=info["emulatorUrl"])


def from_stack(stack: str, region: str | None) -> Target:
    import boto3

    from scripts.stack_outputs import StackOutputsError, stack_outputs

    cloudformation = boto3.client("cloudformation", region_name=region)
    try:
        outputs = stack_outputs(cloudformation, stack)
    except StackOutputsError as exc:
        raise SystemExit(str(exc)) from None
    missing = {"UploadsTableName", "EventBusName", "UploadsBucketName"} - set(outputs)
    if missing:
        raise SystemExit(f"stack {stack} has no output(s) {', '.join(sorted(missing))}")
    (described,) = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    parameters = {p["ParameterKey"]: p.get("ParameterValue") for p in described.get("Parameters", [])}
    return Target(
        outputs["UploadsTableName"],
        outputs["EventBusName"],
        outputs["UploadsBucketName"],
        parameters.get("RejectedObjects") or "quarantine",
        region or outputs.get("Region"),
    )


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO time (e.g. 2026-12-01T10:00:00Z)") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give the time zone (e.g. 2026-12-01T10:00:00Z)")
    return moment.astimezone(UTC)  # the records' times are UTC, compared as text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Send again the events of upload records changed since a moment.")
    parser.add_argument("--since", type=_moment, required=True, help="ISO time with zone: the first change to send")
    parser.add_argument("--until", type=_moment, default=None, help="ISO time with zone: the last change to send")
    parser.add_argument("--stack", default=os.environ.get("STACK") or None, help="CloudFormation stack name (AWS)")
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE, help="the local stack's stack.json")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    args = parser.parse_args(argv)

    if args.stack:
        target = from_stack(args.stack, args.region)
    elif args.state.exists():
        target = from_local_state(args.state)
    else:
        raise SystemExit(f"{args.state} not found: start the local stack (make run), or pass --stack")
    import boto3

    from directupload.events import EventPublisher

    if target.endpoint_url and not os.environ.get("AWS_ACCESS_KEY_ID"):
        # the local emulator accepts any credentials; these are placeholders, not secrets
        os.environ.update({"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"})
    session = boto3.session.Session(region_name=target.region)
    ddb = session.client("dynamodb", endpoint_url=target.endpoint_url)
    publisher = EventPublisher(target.bus, session.client("events", endpoint_url=target.endpoint_url))
    sent = republish(ddb, publisher, target, args.since, args.until)
    for upload_id, kind in sent:
        print(f"{kind}\t{upload_id}")
    print(f"sent {len(sent)} event(s) again to {target.bus}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
