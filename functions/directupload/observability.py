"""Logger, Tracer and Metrics: one place, one namespace, shared by every layer.

The Tracer loads the X-Ray SDK (and patches botocore with it) only when tracing is on: on Lambda
unless ``POWERTOOLS_TRACE_DISABLED`` says otherwise, the powertools rule. Off (the local stack, the
tests, a deployment that turns tracing off), it gets a provider that records nothing, so a cold
start never imports the SDK it would not use.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

SERVICE = "directupload"


class _NoSegment(BaseSegment):
    def close(self, end_time: int | None = None) -> None:
        pass

    def add_subsegment(self, subsegment: Any) -> None:
        pass

    def remove_subsegment(self, subsegment: Any) -> None:
        pass

    def put_annotation(self, key: str, value: Any) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        pass

    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None:
        pass


class NoTracing(BaseProvider):
    """The Tracer's provider while tracing is off: subsegments that record nothing."""

    @contextmanager
    def in_subsegment(self, name: Any = None, **kwargs: Any) -> Generator[BaseSegment, None, None]:
        yield _NoSegment()

    @asynccontextmanager
    async def in_subsegment_async(self, name: Any = None, **kwargs: Any) -> Any:
        yield _NoSegment()

    def put_annotation(self, key: str, value: Any) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        pass

    def patch(self, modules: Sequence[str]) -> None:
        pass

    def patch_all(self) -> None:
        pass


def tracing_enabled(env: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Powertools' own rule: on in Lambda (not SAM local), unless POWERTOOLS_TRACE_DISABLED."""
    if resolve_truthy_env_var_choice(env=env.get("POWERTOOLS_TRACE_DISABLED", "false")):
        return False
    return bool(env.get("LAMBDA_TASK_ROOT")) and not env.get("AWS_SAM_LOCAL") and not env.get("AWS_CHALICE_CLI_MODE")


def _tracer() -> Tracer:
    if tracing_enabled():
        return Tracer(service=SERVICE)  # the X-Ray SDK, botocore patched
    # disabled=True would import the SDK only to switch it off: the provider records nothing anyway
    tracer = Tracer(service=SERVICE, disabled=False, provider=NoTracing(), auto_patch=False)
    tracer.disabled = True
    return tracer


logger = Logger(service=SERVICE)
tracer = _tracer()
metrics = Metrics(namespace="DirectUpload", service=SERVICE)
