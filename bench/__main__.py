"""`python -m bench [--quick] [--only SUITE,...] [--output FILE]`: run the performance suite,
print the table, write bench/results.json. See docs/performance.md."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import ROOT
from bench.figures import Figure, table

MiB = 1024 * 1024


@dataclass(frozen=True)
class Plan:
    """How much of everything: the full run (`make bench`, a few minutes) or --quick (a smoke run)."""

    request_repeats: int = 5
    request_pairs: int = 200
    size_repeats: int = 5
    size_pairs: int = 100
    cold_repeats: int = 7
    stream_bytes: int = 1024 * MiB
    stream_repeats: int = 3
    e2e_repeats: int = 4  # even: the rounds alternate their order (ABBA), so drift falls on both sides alike
    e2e_latency_uploads: int = 20
    e2e_seconds: float = 10
    client_bytes: int = 256 * MiB
    client_repeats: int = 6  # even, as above (ABC CBA)


QUICK = Plan(
    request_repeats=2,
    request_pairs=20,
    size_repeats=2,
    size_pairs=15,
    cold_repeats=2,
    stream_bytes=32 * MiB,
    stream_repeats=1,
    e2e_repeats=1,
    e2e_latency_uploads=8,
    e2e_seconds=3,
    client_bytes=32 * MiB,
    client_repeats=1,
)


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpuModel": model,
        "cores": os.cpu_count(),
        "memoryGiB": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "loadAverageAtStart": [round(x, 2) for x in os.getloadavg()],
        "commit": commit,
    }


def suites(plan: Plan) -> dict[str, Callable[[], tuple[list[Figure], Any]]]:
    def request() -> tuple[list[Figure], Any]:
        from bench.api_overhead import measure_request_overhead
        from bench.emulator import deploy
        from local.harness import InProcessEmulator

        with InProcessEmulator() as emulator:
            figures, subject = measure_request_overhead(
                deploy(emulator.url), repeats=plan.request_repeats, pairs=plan.request_pairs, progress=say
            )
        return figures, {"lastIssued": subject.issued[-1].payload.get("uploadId")}

    def size() -> tuple[list[Figure], Any]:
        from bench.api_overhead import measure_size_independence
        from bench.emulator import deploy
        from local.harness import InProcessEmulator

        with InProcessEmulator() as emulator:
            figures, _ = measure_size_independence(
                deploy(emulator.url), repeats=plan.size_repeats, pairs=plan.size_pairs, progress=say
            )
        return figures, None

    def read() -> tuple[list[Figure], Any]:
        from bench.emulator import deploy
        from bench.read_side import measure_read_side
        from local.harness import InProcessEmulator

        with InProcessEmulator() as emulator:
            return measure_read_side(
                deploy(emulator.url), repeats=plan.request_repeats, pairs=plan.request_pairs // 2, progress=say
            )

    def cold() -> tuple[list[Figure], Any]:
        from bench.cold_start import measure_cold_start
        from bench.emulator import deploy
        from local.harness import InProcessEmulator

        with InProcessEmulator() as emulator:
            return measure_cold_start(deploy(emulator.url), repeats=plan.cold_repeats, progress=say)

    def streaming() -> tuple[list[Figure], Any]:
        from bench.streaming import measure_streaming

        return measure_streaming(size=plan.stream_bytes, repeats=plan.stream_repeats, progress=say)

    def e2e() -> tuple[list[Figure], Any]:
        from bench.end_to_end import measure_end_to_end

        return measure_end_to_end(
            repeats=plan.e2e_repeats, latency_count=plan.e2e_latency_uploads, seconds=plan.e2e_seconds, progress=say
        )

    def requests() -> tuple[list[Figure], Any]:
        from bench.request_counts import measure_request_counts

        return measure_request_counts(progress=say)

    def client() -> tuple[list[Figure], Any]:
        from bench.client_upload import measure_client

        return measure_client(size=plan.client_bytes, repeats=plan.client_repeats, progress=say)

    return {
        "requests": requests,
        "request": request,
        "size": size,
        "read": read,
        "cold": cold,
        "streaming": streaming,
        "e2e": e2e,
        "client": client,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run: fewer repeats, smaller objects")
    parser.add_argument("--only", help="comma-separated suites: requests,request,size,read,cold,streaming,e2e,client")
    parser.add_argument("--output", type=Path, help="default bench/results.json (--quick: bench/results-quick.json)")
    args = parser.parse_args(argv)
    if args.output is None:  # a quick run never replaces the full run's results
        args.output = ROOT / "bench" / ("results-quick.json" if args.quick else "results.json")

    plan = QUICK if args.quick else Plan()
    available = suites(plan)
    chosen = args.only.split(",") if args.only else list(available)
    unknown = [name for name in chosen if name not in available]
    if unknown:
        parser.error(f"unknown suites {unknown}; known: {', '.join(available)}")

    info = machine()
    say(
        f"{info['cpuModel']}, {info['cores']} cores, Python {info['python']}, load {info['loadAverageAtStart']}"
        f"{' (quick)' if args.quick else ''}"
    )
    started = time.perf_counter()
    figures: list[Figure] = []
    evidence: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name in chosen:
        say(f"suite {name}")
        t0 = time.perf_counter()
        try:
            got, extra = available[name]()
        except Exception as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"
            say(f"suite {name} failed: {errors[name]}")
            traceback.print_exc()
            continue
        figures.extend(got)
        if extra:
            evidence[name] = extra
        say(f"suite {name} done in {time.perf_counter() - t0:.0f} s")
    info["loadAverageAtEnd"] = [round(x, 2) for x in os.getloadavg()]
    info["durationSeconds"] = round(time.perf_counter() - started, 1)

    results = {
        "machine": info,
        "quick": args.quick,
        "plan": plan.__dict__,
        "figures": [f.as_json() for f in figures],
        "errors": errors,
        "evidence": evidence,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")

    print(
        f"\ndirectupload benchmarks, {info['date']}, {info['cpuModel']} ({info['cores']} cores), "
        f"Python {info['python']}{', quick run' if args.quick else ''}; {info['durationSeconds']:.0f} s\n"
    )
    print(table(figures))
    for name, error in errors.items():
        print(f"\nsuite {name} did not run to the end: {error}")
    failed = [f.name for f in figures if f.passed is False]
    print(
        f"\n{len(figures) - len(failed)} of {len(figures)} figures pass or are informational; "
        f"results in {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
