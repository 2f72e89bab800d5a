"""Event generators: the shapes API Gateway, SQS and S3 send. API Gateway's events and the SQS
batches are built by the same code the local stack uses to send them (local/gateway.py,
local/poller.py), so the two cannot drift apart; S3's notifications as S3 shapes them
(tests/support/aws_events.py)."""

from __future__ import annotations

import json
from typing import Any

from local.gateway import api_gateway_event
from tests.support.aws_events import s3_notification, sqs_batch


def http(
    method: str,
    path: str,
    body: Any = None,
    *,
    claims: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    iam: dict[str, Any] | None = None,
) -> dict[str, Any]:
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    all_headers = {"content-type": "application/json", "host": "api.test", **(headers or {})}
    return api_gateway_event(method, path, all_headers, data, "198.51.100.7", claims, iam)


__all__ = ["http", "s3_notification", "sqs_batch"]
