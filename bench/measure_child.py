"""``python bench/measure_child.py RESULT COMMAND...``: run COMMAND, write its wall time, exit code
and peak resident size to RESULT (JSON).

Why a launcher: Linux carries a process's peak RSS (ru_maxrss) across fork and exec, so a
command spawned straight from the benchmark, a big process by then, would report the
benchmark's own peak. Spawned from this small, freshly exec'd launcher, it starts from the
launcher's few MiB, far below any real client's peak.
"""

import json
import os
import sys
import time

if __name__ == "__main__":
    result, command = sys.argv[1], sys.argv[2:]
    started = time.perf_counter()
    pid = os.posix_spawn(command[0], command, os.environ)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - started
    with open(result, "w") as f:
        json.dump(
            {"seconds": seconds, "exitCode": os.waitstatus_to_exitcode(status), "peakMiB": usage.ru_maxrss / 1024}, f
        )
