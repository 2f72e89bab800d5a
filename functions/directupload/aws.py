"""One cached factory for boto3 clients: built on first use, reused for the container's life.

Endpoints come from the standard ``AWS_ENDPOINT_URL`` variables, so the local stack
points the very same code at its emulator without a line of code changing here.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

# SigV4 everywhere: without it boto3 presigns with legacy SigV2 in us-east-1.
_S3_CONFIG = Config(signature_version="s3v4", retries={"mode": "standard", "max_attempts": 3})
_DEFAULT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3})


@cache
def client(service: str) -> Any:
    session = boto3.session.Session()
    return session.client(service, config=_S3_CONFIG if service == "s3" else _DEFAULT_CONFIG)
