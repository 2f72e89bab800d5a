"""One ProcessFunction 'container' in its own process: what Lambda's SQS event source runs up
to ProcessMaxConcurrency of. The local stack starts `--process-workers` of these; each polls
the ingest queue and hands its batches to the very same processor handler. With `--function
WebhookFunction --handler handlers.webhook.lambda_handler` one polls the webhook's queue instead
(no fault injection there: the LOCAL_FAULT_* variables are about processing).

The environment (the functions' variables, the emulator's endpoint, LOCAL_FAULT_*) is
inherited from the stack that starts it.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import warnings
from typing import Any

from local.emulator import _die_with_parent
from local.lambda_runtime import LocalFunction
from local.poller import QueuePoller


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue-url", required=True)
    parser.add_argument("--retry-delay", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--function", default="ProcessFunction", help="the function's logical id")
    parser.add_argument("--handler", default="handlers.processor.lambda_handler", help="module.function")
    args = parser.parse_args(argv)
    if sys.platform == "linux":
        _die_with_parent()
    # metrics are off locally; powertools still warns on every flush that there were none
    warnings.filterwarnings("ignore", message="No application metrics to publish")

    import boto3

    module, _, name = args.handler.rpartition(".")
    handler = getattr(importlib.import_module(module), name)
    function = LocalFunction(args.function, handler, timeout=args.timeout)
    sqs = boto3.client("sqs", region_name=args.region)
    poller = QueuePoller(
        sqs,
        args.queue_url,
        function,
        retry_delay=args.retry_delay,
        region=args.region,
        inject_faults=args.function == "ProcessFunction",
    )

    def stop(*_: Any) -> None:
        poller.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    poller.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
