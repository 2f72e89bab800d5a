"""Lambda entry points: thin, they parse, call directupload, and shape the reply.

On Lambda, importing this package pauses Python's cyclic garbage collector until the handler
module is set up (``ready()``, each entry module's last line). Importing a handler makes some
90,000 objects the collector tracks (boto3's, pydantic's, ours) that live as long as the
process, and the collector would walk them over and over while they are made (the stack's own
frameworks spend 50 to 60 ms of a cold start in it here, docs/performance.md). Reference
counting still frees what is dropped meanwhile. What cycles made while starting leave
unreachable (about 400 objects for either function, measured) is frozen with the rest and kept
for the process's life: a full pass to find it would cost a cold start some 27 ms. Outside
Lambda (tests, tools importing a module or two) nothing changes.
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
