import time

from local.lambda_runtime import LocalContext


def context(name: str = "test", remaining_seconds: float = 900) -> LocalContext:
    """A Lambda context with ``remaining_seconds`` of the invocation left (a fresh 15 minutes)."""
    return LocalContext(
        function_name=name, timeout_seconds=remaining_seconds, _deadline=time.monotonic() + remaining_seconds
    )
