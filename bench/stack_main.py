"""The local stack with template parameters overridden, as `sam deploy --parameter-overrides` would:
``python -m bench.stack_main --state-dir D --parameter QuotaMaxPending=100000``.

``python -m local.stack`` takes no parameters; this starts the very same ``LocalStack`` (same
emulator, gateway, poller, handlers) with some. Free ports, auth off, quiet; SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from pathlib import Path

import bench  # noqa: F401 - puts functions/ on the path
from local.stack import LocalStack, StackOptions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--parameter", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    parameters = dict(item.split("=", 1) for item in args.parameter)
    stack = LocalStack(
        StackOptions(port=0, emulator_port=0, state_dir=args.state_dir, auth="none", quiet=True, parameters=parameters)
    ).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with contextlib.suppress(KeyboardInterrupt):
        done.wait()
    stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
