"""Performance suite: `make bench` (or `python -m bench [--quick]`).

Every figure is a ratio against a baseline measured in the same run, interleaved with
it (baseline, subject, subject, baseline, ...), reported as the median of the repeats
with their min and max: the machine is shared, so absolute timings drift while the
ratios hold. See docs/performance.md for what each figure means.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"
for _path in (str(FUNCTIONS), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)
