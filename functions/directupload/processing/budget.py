"""A budget per file: the decoding steps run in a child process with a memory limit and a
wall-clock limit, so a file that would make a decoder run for minutes or exhaust the function's
memory ends REJECTED (``too-complex``) instead of timing out the whole SQS batch.

The child is forked (Lambda offers no /dev/shm, so no multiprocessing queues or pools: one
pipe), inherits the verified object as it is in memory, lowers its address-space limit
(RLIMIT_AS) to what it already uses plus the budget, runs the step and sends back its result.
Exceptions there are properties of the bytes as anywhere (``run_step``); a child that is
killed, runs out of memory or out of time is a rejection too. Only steps that decode bytes
(``needs_body``) are run this way: ``verify`` only reports what was already hashed.
"""

from __future__ import annotations

import os
import resource
import warnings
from dataclasses import dataclass
from typing import Any

from directupload.errors import Rejected
from directupload.processing.steps import Step, StepResult, VerifiedObject, run_step

# Reported by the child through the pipe: ("ok", StepResult) | ("rejected", code, message)
# | ("error", description): a fault of ours (a result that cannot be sent), not of the file
_Message = tuple[Any, ...]
# Left to the parent of the function's memory when the child's budget is sized to fit in it.
MEMORY_MARGIN = 64 * 1024 * 1024


class StepCrashedError(RuntimeError):
    """The child failed for a reason that is not the file's: retried like any transient fault."""


@dataclass(frozen=True)
class Budget:
    seconds: float = 120.0  # well under the ProcessFunction's 900 s timeout
    memory_bytes: int = 640 * 1024 * 1024  # of the function's 1024 MB


def run_within(step: Step, obj: VerifiedObject, budget: Budget) -> StepResult:
    """``run_step`` in a forked child bounded by ``budget``."""
    import multiprocessing  # here: a profile whose steps decode nothing never loads it (cold start)

    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(step, obj, sender, _memory_for_child(budget)), daemon=True)
    with warnings.catch_warnings():
        # Python warns about fork() in a process with threads. A function's only other thread
        # (the S3 read-ahead) has ended when steps run, and the child only decodes and sends;
        # a child that hung anyway would be killed at the deadline like any slow decoder.
        warnings.simplefilter("ignore", DeprecationWarning)
        child.start()
    sender.close()
    try:
        if not receiver.poll(budget.seconds):
            raise Rejected("too-complex", f"decoding took longer than {budget.seconds:g} s")
        try:
            message: _Message = receiver.recv()
        except EOFError:  # the child died without a word: killed for its memory, most likely
            child.join(timeout=5)
            raise Rejected("too-complex", f"decoding the file needs more than its budget ({child.exitcode})") from None
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join(timeout=5)
    if message[0] == "rejected":
        raise Rejected(message[1], message[2])
    if message[0] == "error":
        raise StepCrashedError(f"the {step.name} step failed in its child process: {message[1]}")
    result: StepResult = message[1]
    return result


def _child(step: Step, obj: VerifiedObject, sender: Any, memory_bytes: int) -> None:
    try:
        in_use = _address_space()
        resource.setrlimit(resource.RLIMIT_AS, (in_use + memory_bytes, in_use + memory_bytes))
        try:
            sender.send(("ok", run_step(step, obj)))
        except Rejected as rejection:
            sender.send(("rejected", rejection.code, rejection.message))
        except MemoryError:
            sender.send(("rejected", "too-complex", "decoding the file needs more memory than its budget"))
        except BaseException as exc:  # noqa: BLE001 - ours, not the file's (say so, the parent retries)
            sender.send(("error", f"{type(exc).__name__}: {str(exc)[:200]}"))
    finally:
        sender.close()
        os._exit(0)  # no atexit handlers, no flushing of the parent's buffers a second time


def _memory_for_child(budget: Budget) -> int:
    """The budget, or less where the function's memory (what Lambda kills it over) minus what the
    parent holds resident would not fit it: a forked child's pages count against the same limit."""
    function_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
    if not function_mb.isdigit():
        return budget.memory_bytes
    with open("/proc/self/statm") as statm:
        resident = int(statm.read().split()[1]) * resource.getpagesize()
    headroom = int(function_mb) * 1024 * 1024 - resident - MEMORY_MARGIN
    return max(64 * 1024 * 1024, min(budget.memory_bytes, headroom))


def _address_space() -> int:
    """This process's virtual memory size in bytes (/proc/self/statm, pages)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * resource.getpagesize()
