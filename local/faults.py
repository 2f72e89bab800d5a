"""Fault injection for the local stack (never part of a deployment).

Environment variables, read only here, when the local stack's poller starts:

  LOCAL_FAULT_RATE      0..1  share of ProcessFunction's S3 and UploadsTable calls, and of
                              PublishFunction's EventBridge calls, answered with a throttling
                              error (default 0)
  LOCAL_DUPLICATE_RATE  0..1  share of S3 notifications the poller delivers a second time,
                              a moment later (default 0)
  LOCAL_POISON_KEYS     comma-separated patterns (fnmatch) on object keys: every S3 call for a
                              matching object fails, so its notification exhausts its retries
  LOCAL_FAULTS_SWITCH   a file path: faults apply only while it exists (delete it to turn
                              every fault off, e.g. before a redrive)
  LOCAL_FAULT_SEED      seeds the random choices

The errors are real ``botocore`` ClientErrors: a ``before-call`` hook on the functions' own
boto3 clients answers with an error response instead of sending the request, so the code
path is the one a throttled call takes on AWS after botocore's own retries gave up. Only
calls made while the poller runs ProcessFunction, or while PublishFunction runs, are affected
(the API shares the clients).

Every injected fault prints one ``[fault] ...`` line, so a test can count them in the log.
"""

from __future__ import annotations

import fnmatch
import os
import random
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.awsrequest import AWSResponse

# What each service answers when it throttles (HTTP status, error code).
_THROTTLE = {
    "s3": (503, "SlowDown", "Please reduce your request rate."),
    "dynamodb": (400, "ThrottlingException", "Rate of requests exceeds the allowed throughput."),
    "events": (400, "ThrottlingException", "Rate exceeded."),
}
_CONTEXT_KEY = "local_fault"


@dataclass
class Faults:
    fault_rate: float = 0.0
    duplicate_rate: float = 0.0
    poison: tuple[str, ...] = ()
    switch: Path | None = None
    seed: int | None = None
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)  # fault injection, not security
        self._lock = threading.Lock()
        self._armed = threading.local()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Faults | None:
        env = os.environ if env is None else env
        fault_rate = float(env.get("LOCAL_FAULT_RATE") or 0)
        duplicate_rate = float(env.get("LOCAL_DUPLICATE_RATE") or 0)
        poison = tuple(p.strip() for p in (env.get("LOCAL_POISON_KEYS") or "").split(",") if p.strip())
        if not (fault_rate or duplicate_rate or poison):
            return None
        for name, rate in (("LOCAL_FAULT_RATE", fault_rate), ("LOCAL_DUPLICATE_RATE", duplicate_rate)):
            if not 0 <= rate <= 1:
                raise ValueError(f"{name} must be between 0 and 1, not {rate}")
        switch = env.get("LOCAL_FAULTS_SWITCH")
        seed = env.get("LOCAL_FAULT_SEED")
        return cls(
            fault_rate=fault_rate,
            duplicate_rate=duplicate_rate,
            poison=poison,
            switch=Path(switch) if switch else None,
            seed=int(seed) if seed else None,
        )

    @property
    def on(self) -> bool:
        return self.switch is None or self.switch.exists()

    def describe(self) -> str:
        return (
            f"fault rate {self.fault_rate}, duplicate rate {self.duplicate_rate}, "
            f"poison {list(self.poison)}, switch {self.switch or 'none (always on)'}"
        )

    # hooks
    def install(self, clients: Mapping[str, Any]) -> None:
        """Hook the clients ProcessFunction uses (service name -> boto3 client)."""
        for service, client in clients.items():
            if service not in _THROTTLE:
                raise ValueError(f"no throttling error known for {service}")
            client.meta.events.register("before-parameter-build", self._decide)
            client.meta.events.register_first("before-call", self._answer)

    @contextmanager
    def armed(self) -> Iterator[None]:
        """Faults apply to calls made by this thread inside the block (one function invocation)."""
        self._armed.on = True
        try:
            yield
        finally:
            self._armed.on = False

    def _decide(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if not getattr(self._armed, "on", False) or not self.on:
            return
        service = model.service_model.endpoint_prefix
        key = params.get("Key")
        if isinstance(key, str) and any(fnmatch.fnmatchcase(key, pattern) for pattern in self.poison):
            context[_CONTEXT_KEY] = ("poison", service, model.name, key)
            return
        with self._lock:
            hit = self.fault_rate and self._random.random() < self.fault_rate
        if hit:
            context[_CONTEXT_KEY] = ("throttle", service, model.name, key if isinstance(key, str) else "")

    def _answer(self, model: Any, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        decided = context.get(_CONTEXT_KEY)
        if decided is None:
            return None
        kind, service, operation, key = decided
        status, code, message = _THROTTLE[service]
        with self._lock:
            self.counts[kind] += 1
        print(f"[fault] {kind} {service}.{operation} {key}".rstrip(), flush=True)
        response = AWSResponse(url="", status_code=status, headers={}, raw=None)
        parsed = {
            "Error": {"Code": code, "Message": f"{message} (injected by the local stack)"},
            "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}, "RetryAttempts": 0},
        }
        return response, parsed

    # duplicate deliveries
    def duplicate(self) -> bool:
        if not self.duplicate_rate or not self.on:
            return False
        with self._lock:
            hit = self._random.random() < self.duplicate_rate
            if hit:
                self.counts["duplicate"] += 1
        return hit
