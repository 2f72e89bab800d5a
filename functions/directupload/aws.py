"""One cached factory for boto3 clients: built on first use, reused for the container's life.

Endpoints come from the standard ``AWS_ENDPOINT_URL`` variables, so the local stack
points the very same code at its emulator without a line of code changing here.

Every client comes from one boto3 session: a session loads and parses botocore's data
files (endpoints, partitions, service models) once for all its clients, where a session per
client parsed them again for each, which a cold start paid (docs/performance.md).
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

# SigV4 everywhere: without it boto3 presigns with legacy SigV2 in us-east-1.
# Response checksums only when asked for (ChecksumMode): by default botocore asks on every GetObject
# and hashes the whole stream again (SHA-256 for a declared checksum) beside the processor's own
# SHA-256; processing/verify.py asks where S3's checksum can stand in for that hash.
_S3_CONFIG = Config(
    signature_version="s3v4",
    retries={"mode": "standard", "max_attempts": 3},
    response_checksum_validation="when_required",
)
_DEFAULT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3})


class _Clients:
    """``client(service)``, cached; ``client.cache_clear()`` forgets the clients and their session."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # a boto3 session is not thread-safe; its clients are
        self._session: boto3.session.Session | None = None
        self._clients: dict[str, Any] = {}

    def __call__(self, service: str) -> Any:
        built = self._clients.get(service)
        if built is not None:
            return built
        with self._lock:
            if service not in self._clients:
                if self._session is None:
                    self._session = boto3.session.Session()
                self._clients[service] = self._session.client(
                    service, config=_S3_CONFIG if service == "s3" else _DEFAULT_CONFIG
                )
            return self._clients[service]

    def cache_clear(self) -> None:
        with self._lock:
            self._session = None
            self._clients.clear()


client = _Clients()
