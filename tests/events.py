"""Event generators: the shapes API Gateway, SQS and S3 send, built by the same code the
local stack uses to send them (so the two cannot drift apart)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote_plus

from local.gateway import api_gateway_event
from local.poller import sqs_event


def http(
    method: str,
    path: str,
    body: Any = None,
    *,
    claims: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> dict[str, Any]:
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    all_headers = {"content-type": "application/json", "host": "api.test", **(headers or {})}
    return api_gateway_event(method, path, all_headers, data, "198.51.100.7", claims)


def s3_notification(
    bucket: str,
    key: str,
    size: int,
    *,
    event_name: str = "ObjectCreated:Post",
    etag: str = "0" * 32,
    sequencer: str = "0055AED6DCD90281E5",
) -> dict[str, Any]:
    """An S3 event notification as S3 sends it to SQS (the key URL-encoded, + for a space)."""
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
                    "object": {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag, "sequencer": sequencer},
                },
            }
        ]
    }


def sqs_batch(*bodies: dict[str, Any], receive_count: int = 1) -> dict[str, Any]:
    messages = [
        {
            "MessageId": f"m{i}",
            "ReceiptHandle": f"r{i}",
            "Body": json.dumps(body),
            "Attributes": {"ApproximateReceiveCount": str(receive_count), "SentTimestamp": "0"},
        }
        for i, body in enumerate(bodies)
    ]
    return sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:ingest", "us-east-1")
