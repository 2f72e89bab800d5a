"""What Lambda gives a handler: a context object, and one invocation at a time per container."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from local.template import ACCOUNT

Handler = Callable[[dict[str, Any], Any], Any]


class Function(Protocol):
    """What invokes a function: a LocalFunction here, or a FunctionProcess (local/function_host.py)."""

    name: str

    def invoke(self, event: dict[str, Any]) -> Any: ...


@dataclass
class LocalContext:
    """Lambda's context object for one invocation starting now: ``timeout_seconds`` of it left,
    the function's ARN in the local account (the attributes powertools and the handlers read).
    The one fake context of the local stack, the tests and the benchmarks."""

    function_name: str
    memory_limit_in_mb: int = 1024
    timeout_seconds: float = 60.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = ""
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"
    _deadline: float = field(init=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        if not self.invoked_function_arn:
            self.invoked_function_arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{self.function_name}"
        if not self.log_group_name:
            self.log_group_name = f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LocalFunction:
    """One warm 'container' of a function: calls are serialised, as Lambda never runs two at once in one."""

    def __init__(self, name: str, handler: Handler, timeout: float = 60.0) -> None:
        self.name = name
        self.handler = handler
        self.timeout = timeout
        self._lock = threading.Lock()

    def invoke(self, event: dict[str, Any]) -> Any:
        context = LocalContext(self.name, timeout_seconds=self.timeout)
        with self._lock:
            return self.handler(event, context)
