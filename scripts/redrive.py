"""Move dead-lettered S3 notifications back to the ingest queue, so they are processed again.

    python -m scripts.redrive                           # the local stack (reads .local/stack.json)
    python -m scripts.redrive --stack directupload-dev  # a deployed stack (reads its outputs)
    python -m scripts.redrive --queue URL --dlq URL     # any two queues

Each message is received from the dead-letter queue, sent to the source queue with the same
body and attributes, and only then deleted: a crash in between sends a message twice, never
zero times, and the processor's idempotency makes the second copy a no-op. The redriven
copy starts with a receive count of 1, so it gets the full set of retries again.

Fix the cause first (a bad deployment, a missing permission, an outage): a message that
fails again goes back to the dead-letter queue after MaxReceiveCount attempts.
(SQS's StartMessageMoveTask does the same server-side on AWS; this works on every
emulator too and reports exactly what it moved.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_STATE = Path(__file__).resolve().parent.parent / ".local" / "stack.json"
BATCH = 10  # SQS's most per receive/send/delete call


@dataclass
class RedriveReport:
    moved: int = 0
    failed: list[str] = field(default_factory=list)  # message ids left in the dead-letter queue

    def __str__(self) -> str:
        text = f"moved {self.moved} message(s) back to the source queue"
        if self.failed:
            text += f"; {len(self.failed)} could not be sent and stay in the dead-letter queue"
        return text


def redrive(
    sqs: Any, dlq_url: str, queue_url: str, *, limit: int | None = None, visibility_timeout: int = 60
) -> RedriveReport:
    """Move up to ``limit`` messages (all when None) from ``dlq_url`` to ``queue_url``."""
    report = RedriveReport()
    seen: set[str] = set()
    while limit is None or report.moved + len(report.failed) < limit:
        want = BATCH if limit is None else min(BATCH, limit - report.moved - len(report.failed))
        reply = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=want,
            WaitTimeSeconds=1,
            # long enough to send and delete; a message whose send fails reappears after it
            VisibilityTimeout=visibility_timeout,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = [m for m in reply.get("Messages", []) if m["MessageId"] not in seen]
        if not messages:
            return report
        seen.update(m["MessageId"] for m in messages)
        entries = []
        for i, message in enumerate(messages):
            entry: dict[str, Any] = {"Id": str(i), "MessageBody": message["Body"]}
            if message.get("MessageAttributes"):
                entry["MessageAttributes"] = message["MessageAttributes"]
            entries.append(entry)
        sent = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        for failure in sent.get("Failed", []):
            report.failed.append(messages[int(failure["Id"])]["MessageId"])
        delivered = [messages[int(ok["Id"])] for ok in sent.get("Successful", [])]
        if delivered:
            deleted = sqs.delete_message_batch(
                QueueUrl=dlq_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(delivered)],
            )
            if deleted.get("Failed"):
                # already sent: the copy left behind is redriven again later, and deduplicated then
                print(f"warning: {len(deleted['Failed'])} message(s) sent but not deleted", file=sys.stderr)
        report.moved += len(delivered)
    return report


@dataclass(frozen=True)
class Target:
    queue_url: str
    dlq_url: str
    region: str | None = None
    endpoint_url: str | None = None


def from_local_state(path: Path) -> Target:
    info = json.loads(path.read_text())
    return Target(info["ingestQueueUrl"], info["deadLetterQueueUrl"], info.get("region"), info.get("emulatorUrl"))


def from_stack_outputs(stack: str, region: str | None) -> Target:
    import boto3

    from scripts.stack_outputs import StackOutputsError, stack_outputs

    try:
        outputs = stack_outputs(boto3.client("cloudformation", region_name=region), stack)
    except StackOutputsError as exc:
        raise SystemExit(str(exc)) from None
    missing = {"IngestQueueUrl", "DeadLetterQueueUrl"} - set(outputs)
    if missing:
        raise SystemExit(f"stack {stack} has no output(s) {', '.join(sorted(missing))}")
    return Target(outputs["IngestQueueUrl"], outputs["DeadLetterQueueUrl"], region or outputs.get("Region"))


def resolve(args: argparse.Namespace) -> Target:
    if args.queue or args.dlq:
        if not (args.queue and args.dlq):
            raise SystemExit("--queue and --dlq go together")
        return Target(args.queue, args.dlq, args.region, args.endpoint_url)
    if args.stack:
        return from_stack_outputs(args.stack, args.region)
    if not args.state.exists():
        raise SystemExit(f"{args.state} not found: start the local stack (make run), or pass --stack or --queue/--dlq")
    return from_local_state(args.state)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Move dead-lettered notifications back to the ingest queue.")
    parser.add_argument("--stack", default=os.environ.get("STACK") or None, help="CloudFormation stack name (AWS)")
    parser.add_argument("--queue", default=os.environ.get("QUEUE") or None, help="source (ingest) queue URL")
    parser.add_argument("--dlq", default=os.environ.get("DLQ") or None, help="dead-letter queue URL")
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE, help="the local stack's stack.json")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    parser.add_argument("--endpoint-url", default=None, help="SQS endpoint (an emulator)")
    parser.add_argument("--limit", type=int, default=None, help="move at most this many messages")
    args = parser.parse_args(argv)

    target = resolve(args)
    import boto3

    if target.endpoint_url and not os.environ.get("AWS_ACCESS_KEY_ID"):
        # the local emulator accepts any credentials; these are placeholders, not secrets
        os.environ.update({"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"})
    sqs = boto3.client("sqs", region_name=target.region, endpoint_url=target.endpoint_url)
    print(f"redriving {target.dlq_url} -> {target.queue_url}")
    report = redrive(sqs, target.dlq_url, target.queue_url, limit=args.limit)
    print(report)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
