"""Lambda entry points: thin, they parse, call directupload, and shape the reply.

On Lambda, importing this package pauses Python's cyclic garbage collector until the handler
module is set up (``ready()``, each entry module's last line). A cold start allocates a few
hundred thousand objects (boto3's, pydantic's, ours) that live as long as the process, and the
collector would walk them over and over while they are made: about 60 ms of the API's cold
start (docs/performance.md). Nothing is lost by the pause: reference counting still frees what
is dropped, and what a cycle holds is collected once collection resumes. Outside Lambda (tests,
tools importing a module or two) nothing changes.
"""

import gc
import os

_paused = bool(os.environ.get("LAMBDA_TASK_ROOT")) and gc.isenabled()
if _paused:
    gc.disable()


def ready() -> None:
    """The function is set up: what exists now lives as long as the process, so the collector
    leaves it out of every later pass (``gc.freeze``) and collects what requests allocate."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
