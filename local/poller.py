"""What Lambda's SQS event source mapping does: long-poll the queue, hand batches to the
function, delete what succeeded, and leave the reported failures for a retry."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from local.lambda_runtime import LocalFunction


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS event source sends a function."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


class QueuePoller(threading.Thread):
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        function: LocalFunction,
        *,
        batch_size: int = 10,
        wait_seconds: int = 1,
        retry_delay: int = 1,
        region: str = "us-east-1",
        on_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        super().__init__(name=f"poller-{function.name}", daemon=True)
        self.sqs = sqs
        self.queue_url = queue_url
        self.function = function
        self.batch_size = batch_size
        self.wait_seconds = wait_seconds
        self.retry_delay = retry_delay
        self.region = region
        self.on_batch = on_batch
        self.stopping = threading.Event()
        self.queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.batches = 0
        self.failures = 0

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # noqa: BLE001 - the poller outlives any one failure, as Lambda's does
                print(f"[poller] {type(exc).__name__}: {exc}", flush=True)
                time.sleep(0.5)

    def poll_once(self) -> int:
        reply = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = reply.get("Messages", [])
        if not messages:
            return 0
        result = self.function.invoke(sqs_event(messages, self.queue_arn, self.region)) or {}
        failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        for message in messages:
            if message["MessageId"] in failed:
                # Lambda waits out the queue's visibility timeout; locally a retry comes sooner.
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=self.retry_delay
                )
        self.batches += 1
        self.failures += len(failed)
        if self.on_batch:
            self.on_batch(len(messages), len(failed))
        return len(messages)


class EventTap(threading.Thread):
    """Drains the local queue every bus event is copied to: prints it, appends it to a JSON Lines
    file, and hands it to the sample consumer as its EventBridge rule would."""

    def __init__(
        self, sqs: Any, queue_url: str, log_path: Path, consumer: LocalFunction | None = None, quiet: bool = False
    ) -> None:
        super().__init__(name="event-tap", daemon=True)
        self.sqs = sqs
        self.queue_url = queue_url
        self.log_path = log_path
        self.consumer = consumer
        self.quiet = quiet
        self.stopping = threading.Event()
        self.seen = 0

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        while not self.stopping.is_set():
            try:
                reply = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            except Exception as exc:  # noqa: BLE001 - keep tapping through a passing emulator error
                print(f"[events] {type(exc).__name__}: {exc}", flush=True)
                time.sleep(0.5)
                continue
            for message in reply.get("Messages", []):
                event = json.loads(message["Body"])
                with self.log_path.open("a") as log:
                    log.write(json.dumps(event, separators=(",", ":")) + "\n")
                self.seen += 1
                if not self.quiet:
                    detail = event.get("detail", {})
                    print(
                        f"[event] {event.get('detail-type')}: upload {detail.get('uploadId')} "
                        f"({detail.get('profile')}, {detail.get('size')} bytes)",
                        flush=True,
                    )
                if self.consumer is not None:
                    self.consumer.invoke(event)
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
