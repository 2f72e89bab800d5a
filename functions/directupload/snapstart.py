"""Lambda SnapStart (template parameter ``SnapStart=enabled``): what a restored copy re-makes.

With SnapStart, Lambda runs a function's initialisation once per published version, snapshots
the memory, and starts every new container from that snapshot. Whatever init left in memory is
then shared by all of them, so nothing unique may be made there:

- ``random``'s state (the processor's retry jitter) would repeat in every copy: reseeded after
  restore. Upload ids (``secrets``) and ``uuid.uuid4`` read the OS's randomness on every call,
  which the restored VM has afresh.
- boto3 clients, their pooled connections and resolved credentials: none is built during init
  (``wiring`` builds them on the first request), and after restore any that were are forgotten,
  so no copy reuses a connection or credentials from before the snapshot.
- settings are plain values read from the environment, the same for every copy: kept.

The hook is registered with ``snapshot_restore_py``, which Lambda's Python runtime provides; it
is absent elsewhere (locally, in tests), and then nothing is registered.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from directupload import aws


def after_restore() -> None:
    random.seed()  # from os.urandom: a new sequence in each restored copy
    from directupload import wiring

    wiring.forget_clients()
    aws.client.cache_clear()


def register(hooks: Any = None) -> bool:
    """Run ``after_restore`` after each restore from a snapshot; False where there is no SnapStart
    runtime. ``hooks`` is the runtime module (``snapshot_restore_py``), found when not given."""
    if hooks is None:
        try:
            import snapshot_restore_py as hooks  # type: ignore[no-redef]
        except ImportError:
            return False
    register_after_restore: Callable[[Callable[[], None]], Any] = hooks.register_after_restore
    register_after_restore(after_restore)
    return True
