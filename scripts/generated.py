"""Files generated from their source and committed: write them, or check that they are current.

Each generator (docs_tables.py, client_statuses.py) has a ``render()`` returning every file it
makes and the text it should hold now; this module writes them or, with ``--check``, reports the
stale ones, and the tests call ``stale()``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
Render = Callable[[], dict[Path, str]]


def stale(render: Render) -> list[Path]:
    """The generated files whose committed copy differs from what ``render`` makes now."""
    return [path for path, text in render().items() if not path.exists() or path.read_text() != text]


def main(render: Render, argv: list[str] | None, *, description: str | None, target: str) -> int:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true", help="only report stale files (exit 1), write nothing")
    args = parser.parse_args(argv)
    if args.check:
        old = stale(render)
        for path in old:
            print(f"stale: {path.relative_to(ROOT)} (run make {target})", file=sys.stderr)
        return 1 if old else 0
    for path, text in render().items():
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    return 0
