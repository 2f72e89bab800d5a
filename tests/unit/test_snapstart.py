"""What a container restored from a SnapStart snapshot re-makes (functions/directupload/snapstart.py)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from directupload import aws, snapstart


class RuntimeHooks:
    """The part of Lambda's ``snapshot_restore_py`` the functions use."""

    def __init__(self) -> None:
        self.after_restore: list[Callable[[], None]] = []

    def register_after_restore(self, hook: Callable[[], None], *args: Any, **kwargs: Any) -> None:
        self.after_restore.append(hook)

    def restore(self) -> None:
        for hook in self.after_restore:
            hook()


def test_two_copies_restored_from_one_snapshot_draw_different_random_numbers() -> None:
    # Given the random state a snapshot would hold, restored twice
    hooks = RuntimeHooks()
    assert snapstart.register(hooks)
    random.seed(20261201)
    snapshot = random.getstate()

    draws = []
    for _ in range(2):
        random.setstate(snapshot)
        hooks.restore()
        draws.append([random.random() for _ in range(4)])

    # Then each copy has its own sequence, not the snapshot's
    assert draws[0] != draws[1]
    random.setstate(snapshot)
    assert draws[0] != [random.random() for _ in range(4)]


def test_clients_built_before_the_snapshot_are_not_reused_after_restore(monkeypatch: Any) -> None:
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "a",
        "AWS_SECRET_ACCESS_KEY": "b",
    }.items():
        monkeypatch.setenv(name, value)
    aws.client.cache_clear()
    hooks = RuntimeHooks()
    snapstart.register(hooks)
    before = aws.client("s3")

    hooks.restore()

    assert aws.client("s3") is not before


def test_without_the_snapstart_runtime_nothing_is_registered() -> None:
    assert snapstart.register() is False  # snapshot_restore_py exists only in Lambda's runtime
