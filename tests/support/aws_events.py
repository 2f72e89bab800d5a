"""Fixtures of the events AWS sends the processor, shaped the way AWS shapes them: an S3
ObjectCreated notification as S3 puts it on SQS, S3's EventBridge event as the rule delivers it,
and the SQS batch Lambda's event source hands the function. Tests and benchmarks build their
events here. Not the local stack's event source: there moto sends the notifications, and the
batch around them is the local poller's own (``local.poller.sqs_event``, used here too)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote_plus

from local.poller import sqs_event


def s3_notification(
    bucket: str,
    key: str,
    size: int,
    *,
    event_name: str = "ObjectCreated:Post",
    etag: str | None = None,
    sequencer: str = "0055AED6DCD90281E5",
) -> dict[str, Any]:
    """An S3 event notification as S3 sends it to SQS (the key URL-encoded, + for a space).
    S3 always names the version's ETag; without ``etag`` the record leaves it out and the
    processor asks S3 for the current one."""
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "size": size, "sequencer": sequencer}
    if etag is not None:
        obj["eTag"] = etag
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2026-11-22T00:00:00.000Z",
                "eventName": event_name,
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "ingest",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": obj,
                },
            }
        ]
    }


def s3_eventbridge_event(
    bucket: str,
    key: str,
    size: int,
    *,
    etag: str | None = None,
    sequencer: str = "0055AED6DCD90281E5",
    detail_type: str = "Object Created",
) -> dict[str, Any]:
    """S3's EventBridge event for an object written (EventBridge notifications on), as the rule
    delivers it to SQS: the key as it is (not URL-encoded), the ETag as ``etag``."""
    obj: dict[str, Any] = {"key": key, "size": size, "sequencer": sequencer}
    if etag is not None:
        obj["etag"] = etag
    return {
        "version": "0",
        "id": "f5f1e65c-dc3a-93ca-6c1e-b1647eac7963",
        "detail-type": detail_type,
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2026-11-22T00:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": obj,
            "request-id": "57H08PA84AB1JZW0",
            "requester": "123456789012",
            "source-ip-address": "198.51.100.7",
            "reason": "PostObject",
        },
    }


def sqs_batch(*bodies: dict[str, Any], receive_count: int = 1, id_prefix: str = "m") -> dict[str, Any]:
    messages = [
        {
            "MessageId": f"{id_prefix}{i}",
            "ReceiptHandle": f"r{i}",
            "Body": json.dumps(body),
            "Attributes": {"ApproximateReceiveCount": str(receive_count), "SentTimestamp": "0"},
        }
        for i, body in enumerate(bodies)
    ]
    return sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:ingest", "us-east-1")
