"""What Lambda's SQS event source mapping does: long-poll the queue, hand batches to the
function, delete what succeeded, and leave the reported failures for a retry.

The queue's redrive policy does the rest, as on AWS: the emulator moves a message that was
received maxReceiveCount times to the dead-letter queue on the next receive. Failed
messages come back after ``retry_delay`` seconds, whatever backoff the function set.
With the LOCAL_FAULT_* variables set (local/faults.py) the poller also injects throttling
into the function's AWS calls and delivers some notifications twice."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from local.faults import Faults
from local.lambda_runtime import Function

DUPLICATE_ATTRIBUTE = "local-duplicate"


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
        function: Function,
        *,
        batch_size: int = 10,
        wait_seconds: int = 1,
        retry_delay: int = 1,
        region: str = "us-east-1",
        on_batch: Callable[[int, int], None] | None = None,
        faults: Faults | None = None,
        delivery_sqs: Any = None,
        inject_faults: bool = True,
    ) -> None:
        super().__init__(name=f"poller-{function.name}", daemon=True)
        self.sqs = sqs
        # S3 sends the duplicate notifications, not the function's role (the local stack's workers
        # poll with the function's role, as the event source mapping does)
        self.delivery_sqs = delivery_sqs or sqs
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
        self.faults = faults if faults is not None else Faults.from_env() if inject_faults else None
        if self.faults is not None:
            from directupload import aws  # the very clients the function's code uses

            self.faults.install({name: aws.client(name) for name in ("s3", "dynamodb", "events")})
            print(f"[faults] injecting: {self.faults.describe()}", flush=True)

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # noqa: BLE001 - the poller outlives any one failure, as Lambda's does
                if self.stopping.wait(0.5):
                    break  # the stack is shutting down (Ctrl-C stops the emulator beside it)
                print(f"[poller] {type(exc).__name__}: {exc}", flush=True)

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
        self._duplicate_some(messages)
        event = sqs_event(messages, self.queue_arn, self.region)
        try:
            if self.faults is not None:
                with self.faults.armed():
                    result = self.function.invoke(event) or {}
            else:
                result = self.function.invoke(event) or {}
            failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
        except Exception as exc:  # noqa: BLE001 - an invocation error fails the whole batch, as on Lambda
            print(f"[poller] {self.function.name} failed the batch: {type(exc).__name__}: {exc}", flush=True)
            failed = {m["MessageId"] for m in messages}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self._settle(
                self.sqs.delete_message_batch,
                [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        retry = [m for m in messages if m["MessageId"] in failed]
        if retry:
            # Lambda waits out the queue's visibility timeout; locally a retry comes sooner.
            self._settle(
                self.sqs.change_message_visibility_batch,
                [
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": self.retry_delay}
                    for i, m in enumerate(retry)
                ],
            )
        self.batches += 1
        self.failures += len(failed)
        if self.on_batch:
            self.on_batch(len(messages), len(failed))
        return len(messages)

    def _settle(self, call: Callable[..., Any], entries: list[dict[str, Any]], attempts: int = 5) -> None:
        """Delete a batch, or set when it comes back, as the event source does: retried through a
        passing emulator error (else a handled message would wait out the queue's visibility
        timeout, 90 minutes). A visibility change is retried only when it never reached the
        emulator: one applied whose reply was lost must not make a later receive visible again."""
        from botocore.exceptions import EndpointConnectionError

        retry_any = call.__name__ == "delete_message_batch"  # a deletion is the same done twice
        for attempt in range(1, attempts + 1):
            try:
                reply = call(QueueUrl=self.queue_url, Entries=entries)
            except Exception as exc:  # noqa: BLE001 - any emulator error is reported
                if self.stopping.is_set():
                    return  # the stack is shutting down (Ctrl-C stops the emulator beside it)
                print(f"[poller] {call.__name__} failed (attempt {attempt}): {type(exc).__name__}: {exc}", flush=True)
                if not (retry_any or isinstance(exc, EndpointConnectionError)):
                    return
            else:
                failed = {f["Id"] for f in reply.get("Failed", [])}
                if not failed:
                    return
                print(f"[poller] {call.__name__} refused {reply['Failed']} (attempt {attempt})", flush=True)
                entries = [e for e in entries if e["Id"] in failed]
            if attempt < attempts:
                time.sleep(0.2 * attempt)

    def _duplicate_some(self, messages: list[dict[str, Any]]) -> None:
        """S3 delivers at least once: send some notifications again, a little later (so out of order)."""
        if self.faults is None:
            return
        for message in messages:
            first_delivery = message.get("Attributes", {}).get("ApproximateReceiveCount", "1") == "1"
            copy = DUPLICATE_ATTRIBUTE in message.get("MessageAttributes", {})
            if not first_delivery or copy or not self.faults.duplicate():
                continue
            print(f"[fault] duplicate {message['MessageId']}", flush=True)
            self.delivery_sqs.send_message(
                QueueUrl=self.queue_url,
                MessageBody=message["Body"],
                DelaySeconds=random.randint(0, 2),  # jitter: a late, out-of-order copy
                MessageAttributes={DUPLICATE_ATTRIBUTE: {"DataType": "String", "StringValue": message["MessageId"]}},
            )


class EventTap(threading.Thread):
    """Drains the local queue every bus event is copied to: prints it, appends it to a JSON Lines
    file, and hands it to the sample consumer as its EventBridge rule would."""

    def __init__(
        self, sqs: Any, queue_url: str, log_path: Path, consumer: Function | None = None, quiet: bool = False
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
                if self.stopping.wait(0.5):
                    break  # the stack is shutting down
                print(f"[events] {type(exc).__name__}: {exc}", flush=True)
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
                    try:
                        self.consumer.invoke(event)
                    except Exception as exc:  # noqa: BLE001 - a failing consumer must not stop the tap
                        print(f"[events] {self.consumer.name}: {type(exc).__name__}: {exc}", flush=True)
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
