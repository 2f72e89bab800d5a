"""One event-source poller with its function's 'container': what Lambda's SQS event source runs
up to the function's concurrency of. The local stack starts `--process-workers` of these for the
ProcessFunction (the ingest queue) and, with a webhook, one for the WebhookFunction (`--function
WebhookFunction --handler handlers.webhook:lambda_handler`, no fault injection: the LOCAL_FAULT_*
variables are about processing). Each hands its batches to the very same handler, which runs in
a process of its own under the function's timeout (local/function_host.py).

The environment (the function's variables, its role's credentials, the emulator's endpoint,
LOCAL_FAULT_*) is inherited from the stack that starts it: the poller receives and deletes
messages with the function's role, as Lambda's event source mapping does.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings
from typing import Any

from local.emulator import _die_with_parent
from local.function_host import FunctionProcess
from local.poller import QueuePoller


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue-url", required=True)
    parser.add_argument("--retry-delay", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--memory", type=int, default=1024)
    parser.add_argument("--function", default="ProcessFunction", help="the function's logical id")
    parser.add_argument("--handler", default="handlers.processor:lambda_handler", help="module:function")
    args = parser.parse_args(argv)
    if sys.platform == "linux":
        _die_with_parent()
    # metrics are off locally; powertools still warns on every flush that there were none
    warnings.filterwarnings("ignore", message="No application metrics to publish")

    import boto3

    processing = args.function == "ProcessFunction"
    function = FunctionProcess(
        args.function, args.handler, dict(os.environ), args.timeout, args.memory, inject_faults=processing
    )
    sqs = boto3.client("sqs", region_name=args.region)
    # the emulator's own keys (placeholders, not secrets), for what S3 itself sends
    s3_as_sender = boto3.client(
        "sqs",
        region_name=args.region,
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - the emulator's placeholder, not a secret
        aws_session_token="",
    )
    poller = QueuePoller(
        sqs,
        args.queue_url,
        function,
        retry_delay=args.retry_delay,
        region=args.region,
        inject_faults=processing,
        delivery_sqs=s3_as_sender,
    )

    def stop(*_: Any) -> None:
        poller.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    poller.run()
    function.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
