"""Driving the real ProcessFunction handler in process, as its SQS event source would: one
message body, S3's notification of an object, the malware scanner's verdict on it, or the
whole ingest queue. Every test layer that hands the processor work does it through here.

``aws`` is the ``aws`` fixture of tests/conftest.py (clients and the provisioned resources)."""

from __future__ import annotations

import json
from typing import Any

from local.lambda_runtime import LocalContext
from tests.events import s3_notification, sqs_batch


def handle(
    *bodies: dict[str, Any], receive_count: int = 1, remaining_seconds: float = 900, id_prefix: str = "m"
) -> dict[str, Any]:
    """The processor handling one SQS batch of these message bodies (the ``receive_count``-th
    delivery of each; messages ``{id_prefix}0``, ``{id_prefix}1``...: another prefix, other
    messages); its reply, ``batchItemFailures`` and all."""
    from handlers import processor

    event = sqs_batch(*bodies, receive_count=receive_count, id_prefix=id_prefix)
    reply: dict[str, Any] = processor.lambda_handler(
        event, LocalContext("ProcessFunction", timeout_seconds=remaining_seconds)
    )
    return reply


def current_etag(aws: Any, key: str) -> str | None:
    """The ETag S3 would name in the notification of the object now at ``key``."""
    try:
        return str(aws.s3.head_object(Bucket=aws.bucket, Key=key)["ETag"]).strip('"')
    except aws.s3.exceptions.ClientError:
        return None


def process(
    aws: Any,
    key: str,
    size: int,
    receive_count: int = 1,
    etag: str | None = None,
    sequencer: str | None = None,
    scan: bool = True,
    id_prefix: str = "m",
) -> dict[str, Any]:
    """The processor handling S3's notification of the object now at ``key`` (or of ``etag``).
    Another write of the key has another ``sequencer``; a repeated notification has the same.
    With ``scan`` (as the deployed stack does), an upload that then waits for its malware scan
    is scanned by the real ClamAV scanner and the processor handles that verdict too."""
    etag = etag or current_etag(aws, key)
    body = s3_notification(aws.bucket, key, size, etag=etag, **({"sequencer": sequencer} if sequencer else {}))
    reply = handle(body, receive_count=receive_count, id_prefix=id_prefix)
    if scan and etag and not reply.get("batchItemFailures") and awaiting_scan(aws, key, etag):
        return deliver_verdict(aws, key, etag)
    return reply


def awaiting_scan(aws: Any, key: str, etag: str) -> bool:
    """Whether the upload at ``key`` waits for the malware scan of version ``etag``."""
    from directupload import keys, wiring

    upload_id = keys.upload_id_from_key(key)
    record = wiring.store().get(upload_id) if upload_id else None
    return record is not None and record.status.value == "SCANNING" and record.scan_etag == etag


def scan_verdict(
    aws: Any, key: str, etag: str, status: str | None = None, threats: tuple[str, ...] = (), tag: bool = True
) -> dict[str, Any]:
    """GuardDuty's scan result event for version ``etag`` of ``key``, as EventBridge delivers it to
    the queue: from a real ClamAV scan of the object (local/scanner.py), or with ``status`` given."""
    import uuid
    from datetime import UTC, datetime

    from local.scanner import TAG, Scanner, Verdict, scan_result_event

    if status:
        verdict: Verdict | None = Verdict(status, threats)
        if tag and current_etag(aws, key) == etag:  # the scanner tags the version it scanned
            aws.s3.put_object_tagging(Bucket=aws.bucket, Key=key, Tagging={"TagSet": [{"Key": TAG, "Value": status}]})
    else:
        verdict = Scanner(None, aws.s3, None, "", "us-east-1").scan(aws.bucket, key, etag)
        assert verdict is not None, f"{key} ({etag}) is not in the bucket to scan"
        aws.s3.put_object_tagging(
            Bucket=aws.bucket, Key=key, Tagging={"TagSet": [{"Key": TAG, "Value": verdict.status}]}
        )
    assert verdict is not None
    entry = scan_result_event(aws.bucket, key, etag, verdict, "us-east-1")
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": entry["DetailType"],
        "source": entry["Source"],
        "account": "123456789012",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": entry["Resources"],
        "detail": json.loads(entry["Detail"]),
    }


def deliver_verdict(
    aws: Any,
    key: str,
    etag: str,
    status: str | None = None,
    threats: tuple[str, ...] = (),
    receive_count: int = 1,
    tag: bool = True,
) -> dict[str, Any]:
    """The processor handling the scanner's verdict on version ``etag`` of ``key`` (``tag``: the
    scanner tagged the object it scanned, as GuardDuty does)."""
    return handle(scan_verdict(aws, key, etag, status, threats, tag), receive_count=receive_count)


def scan_once(aws: Any) -> int:
    """The malware scanner (local/scanner.py: real ClamAV, playing GuardDuty) over every object S3
    announced to it since the last call; its verdicts go to the bus, whose rule brings them to the
    ingest queue. Returns how many notifications it handled."""
    from local.scanner import Scanner

    url = aws.resources.scan_requests_queue_url
    if not url:
        return 0
    scanner = Scanner(aws.sqs, aws.s3, aws.events, url, "us-east-1")
    handled = 0
    while messages := aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
        "Messages", []
    ):
        for message in messages:
            scanner.handle(json.loads(message["Body"]))
            aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            handled += 1
    return handled


def deliver_ingest_queue(aws: Any, scan: bool = False) -> list[dict[str, Any]]:
    """What the ingest queue holds (what S3 or EventBridge really sent it), handed to the processor
    batch by batch as Lambda's SQS event source does, until it is empty; the replies. With ``scan``,
    the malware scanner runs whenever the queue is empty and its verdicts are delivered too."""
    from handlers import processor
    from local.poller import sqs_event

    url = aws.resources.ingest_queue_url
    arn = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    replies: list[dict[str, Any]] = []
    while True:
        messages = aws.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            if scan and scan_once(aws):
                continue
            return replies
        event = sqs_event(messages, arn, aws.sqs.meta.region_name)
        replies.append(processor.lambda_handler(event, LocalContext("ProcessFunction", timeout_seconds=900)))
        for message in messages:
            aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


_PUBLISHERS: dict[str, Any] = {}


def publish_owed(aws: Any) -> None:
    """The real PublishFunction handling the table's stream as its event source mapping would
    (the template's filter and batch size, retried from the first reported failure): every
    change written since the last call, so the events they owe reach the bus."""
    from local.harness import client
    from local.lambda_runtime import LocalFunction
    from local.retention import StreamPoller, mapping_of
    from local.template import load

    arn = aws.dynamodb.describe_table(TableName=aws.resources.uploads_table)["Table"]["LatestStreamArn"]
    poller = _PUBLISHERS.get(arn)
    if poller is None:
        from handlers import publisher

        function = LocalFunction("PublishFunction", publisher.lambda_handler)
        if "mapping" not in _PUBLISHERS:
            _PUBLISHERS["mapping"] = mapping_of(load(), "PublishFunction")
        patterns, batch_size, retries = _PUBLISHERS["mapping"]
        poller = StreamPoller(client("dynamodbstreams"), arn, function, patterns, batch_size, retries, retry_delay=0)
        _PUBLISHERS[arn] = poller
    poller.poll()
