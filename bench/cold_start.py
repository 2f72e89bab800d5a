"""Cold start: a fresh interpreter importing a handler and serving its first event, against a fresh
interpreter doing the same AWS work with boto3 alone (bench/cold_worker.py), interleaved. The
emulator runs in this process; each upload the processor's subject handles is issued and
uploaded here beforehand, through the API handler, as a client would."""

from __future__ import annotations

import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import ROOT
from bench.api_overhead import ApiSubject, function_environment
from bench.emulator import lambda_env
from bench.figures import Figure, Target
from local.harness import Deployment

WORKER = ROOT / "bench" / "cold_worker.py"
SMALL_OBJECT = b"directupload cold start\n" * 40  # ~1 KiB of text


@dataclass
class ColdRun:
    seconds: float
    import_seconds: float
    cpu_seconds: float  # the worker's own CPU (user + system): the emulator's is not in it
    gc_seconds: float  # in the cyclic garbage collector
    gc_passes: int
    outcome: Any


class Cold:
    def __init__(self, deployment: Deployment, workdir: Path) -> None:
        self.deployment = deployment
        self.workdir = workdir
        self.runs = 0

    def env(self, function: str, memory: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "AWS_"))}
        env.update(self.deployment.env)
        env.update(lambda_env(function, memory))
        env["PYTHONDONTWRITEBYTECODE"] = "0"
        return env

    def run(self, mode: str, job: dict[str, Any], *flags: str) -> tuple[ColdRun, str]:
        self.runs += 1
        job_path = self.workdir / f"job-{self.runs}.json"
        result_path = self.workdir / f"result-{self.runs}.json"
        job_path.write_text(json.dumps(job))
        function, memory = ("ProcessFunction", 1024) if mode.startswith("processor") else ("ApiFunction", 512)
        done = subprocess.run(
            [sys.executable, *flags, str(WORKER), mode, str(job_path), str(result_path)],
            cwd=self.workdir,
            env=self.env(function, memory),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0 or not result_path.exists():
            raise RuntimeError(f"cold worker {mode} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        result = json.loads(result_path.read_text())
        run = ColdRun(
            result["seconds"],
            result["importSeconds"],
            result["cpuSeconds"],
            result["gcSeconds"],
            result["gcPasses"],
            result["outcome"],
        )
        return run, done.stderr


def _api_job(deployment: Deployment) -> dict[str, Any]:
    from bench.api_overhead import SMALL, api_event

    return {"event": api_event(SMALL), "bucket": deployment.bucket, "table": deployment.table}


def upload_small_object(subject: Any) -> tuple[str, str]:
    """Issue an upload through the API handler (``bench.api_overhead.ApiSubject``, in this
    process) and POST its bytes to the emulator, as a browser would. Returns (upload id, key)."""
    import requests

    subject({"profile": "file", "filename": "cold.txt", "contentType": "text/plain", "size": len(SMALL_OBJECT)})
    issued = subject.issued[-1].payload
    reply = requests.post(
        issued["url"], data=issued["fields"], files={"file": ("cold.txt", SMALL_OBJECT, "text/plain")}, timeout=30
    )
    reply.raise_for_status()
    return issued["uploadId"], issued["key"]


def _processor_job(deployment: Deployment, key: str, sequence: int) -> dict[str, Any]:
    from tests.support.aws_events import s3_notification, sqs_batch

    notification = s3_notification(deployment.bucket, key, len(SMALL_OBJECT), sequencer=f"{sequence:018X}")
    return {
        "event": sqs_batch(notification, id_prefix=f"cold-{sequence}-"),
        "bucket": deployment.bucket,
        "table": deployment.table,
        "key": key,
        "bus": deployment.resources.event_bus,
    }


_IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)$")


def import_report(stderr: str, top: int = 12) -> dict[str, Any]:
    """From ``-X importtime`` output: the heaviest imports (cumulative, as imported from the top)
    and the self time summed per distribution."""
    entries = []
    for line in stderr.splitlines():
        match = _IMPORT_LINE.match(line)
        if match:
            self_us, cumulative_us, indent, name = match.groups()
            entries.append((name, len(indent) // 2, int(self_us), int(cumulative_us)))
    per_package: dict[str, int] = {}
    for name, _, self_us, _ in entries:
        package = name.split(".")[0]
        per_package[package] = per_package.get(package, 0) + self_us
    total = sum(per_package.values())
    heaviest = sorted((e for e in entries if e[1] <= 3), key=lambda e: -e[3])[:top]
    return {
        "totalMs": round(total / 1000, 1),
        "heaviest": [
            {"module": name, "depth": depth, "cumulativeMs": round(cum / 1000, 1), "selfMs": round(self_us / 1000, 1)}
            for name, depth, self_us, cum in heaviest
        ],
        "perPackageSelfMs": {
            k: round(v / 1000, 1) for k, v in sorted(per_package.items(), key=lambda kv: -kv[1])[:top]
        },
    }


def _collector(side: str, runs: list[ColdRun]) -> dict[str, Any]:
    """The time a side's runs spent in Python's cyclic garbage collector, and its passes."""
    return {
        f"{side}GcMs": [round(r.gc_seconds * 1000, 1) for r in runs],
        f"{side}GcPasses": [r.gc_passes for r in runs],
    }


def _details(subj: list[ColdRun], base: list[ColdRun], importtime: dict[str, Any]) -> dict[str, Any]:
    """Beside the wall-clock figure: the import part of each run, and each worker's own CPU time,
    which a loaded machine disturbs less than the clock (it leaves out time spent waiting for a
    core and the emulator's work, which both sides share)."""
    subject_cpu = [r.cpu_seconds * 1000 for r in subj]
    baseline_cpu = [r.cpu_seconds * 1000 for r in base]
    return {
        "subjectImportMs": [round(r.import_seconds * 1000, 1) for r in subj],
        "baselineImportMs": [round(r.import_seconds * 1000, 1) for r in base],
        "subjectCpuMs": [round(ms, 1) for ms in subject_cpu],
        "baselineCpuMs": [round(ms, 1) for ms in baseline_cpu],
        "cpuRatio": round(statistics.median(subject_cpu) / statistics.median(baseline_cpu), 3),
        **_collector("subject", subj),
        **_collector("baseline", base),
        "importtime": importtime,
    }


def _rounds(
    cold: Cold,
    modes: tuple[str, str, str],
    job: Callable[[str], dict[str, Any]],
    check: Callable[[str, dict[str, Any], ColdRun], None],
    repeats: int,
    progress: Callable[[int], None],
) -> dict[str, list[ColdRun]]:
    """``repeats`` rounds of the three modes (baseline, stack, subject), the order rotated each
    round so no mode always runs first or last; one unrecorded run of each first warms the OS
    caches and bytecode."""
    for mode in modes:
        cold.run(mode, job(mode))
    runs: dict[str, list[ColdRun]] = {mode: [] for mode in modes}
    for i in range(repeats):
        for mode in modes[i % 3 :] + modes[: i % 3]:
            given = job(mode)
            result, _ = cold.run(mode, given)
            check(mode, given, result)
            runs[mode].append(result)
        progress(i + 1)
    return runs


def _floor(name: str, runs: dict[str, list[ColdRun]], modes: tuple[str, str, str], baseline_name: str) -> Figure:
    """Informational: the minimal handler on the product's stack against bare boto3, and in its
    details the subject against that floor (what our own code adds)."""
    base, stack, subj = (runs[m] for m in modes)
    over = [s.seconds / f.seconds for s, f in zip(subj, stack, strict=True)]
    return Figure(
        name,
        "ms",
        [r.seconds * 1000 for r in stack],
        [r.seconds * 1000 for r in base],
        None,
        baseline_name=baseline_name,
        notes="the frameworks' own cost, measured in the same rounds as the figure above",
        details={
            "subjectOverFloor": round(statistics.median(over), 3),
            "subjectOverFloorSamples": [round(x, 3) for x in over],
            "floorCpuMs": [round(r.cpu_seconds * 1000, 1) for r in stack],
            **_collector("floor", stack),
        },
    )


def measure_cold_start(
    deployment: Deployment, *, repeats: int, progress: Callable[[str], None] = lambda _: None
) -> tuple[list[Figure], dict[str, Any]]:
    figures = []
    evidence: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        cold = Cold(deployment, Path(tmp))
        api_job = _api_job(deployment)
        api_modes = ("api-baseline", "api-stack", "api")

        def issued(mode: str, _: dict[str, Any], result: ColdRun) -> None:
            if result.outcome["status"] != 201:
                raise RuntimeError(f"{mode} answered {result.outcome}")

        runs = _rounds(
            cold,
            api_modes,
            lambda _: api_job,
            issued,
            repeats,
            lambda i: progress(f"cold start (API): repeat {i}/{repeats}"),
        )
        base, subj = runs["api-baseline"], runs["api"]
        _, importtime = cold.run("api", api_job, "-X", "importtime")
        evidence["api"] = {
            "lastUploadId": subj[-1].outcome["uploadId"],
            "floorUploadId": runs["api-stack"][-1].outcome["uploadId"],
            "importtime": import_report(importtime),
        }
        figures.append(
            Figure(
                "cold start: API import + first POST /uploads",
                "ms",
                [r.seconds * 1000 for r in subj],
                [r.seconds * 1000 for r in base],
                Target("ratio", "<=", 1.3),
                baseline_name="import boto3 + clients + presign + put_item",
                notes="fresh interpreter, Lambda's environment variables; the clock starts at the worker's first line",
                details=_details(subj, base, evidence["api"]["importtime"]),
            )
        )
        figures.append(
            _floor(
                "cold start floor: the API baseline's work on powertools' resolver + pydantic",
                runs,
                api_modes,
                "import boto3 + clients + presign + put_item",
            )
        )

        sequence = 0
        stack = contextlib.ExitStack()
        stack.enter_context(function_environment(deployment.env))
        issuer = ApiSubject()
        issuer.tidy.KEEP = 10**9  # the processor needs the records
        stack.callback(issuer.close)

        def processor_job() -> dict[str, Any]:
            nonlocal sequence
            sequence += 1
            upload_id, key = upload_small_object(issuer)
            job = _processor_job(deployment, key, sequence)
            job["uploadId"] = upload_id
            return job

        baseline_job = processor_job()  # the baselines read the same object each time
        processed: list[str] = []
        processor_modes = ("processor-baseline", "processor-stack", "processor")

        def job_for(mode: str) -> dict[str, Any]:
            return processor_job() if mode == "processor" else baseline_job

        def handled(mode: str, job: dict[str, Any], result: ColdRun) -> None:
            if mode == "processor-baseline":
                return
            if result.outcome != {"batchItemFailures": []}:
                raise RuntimeError(f"{mode} answered {result.outcome}")
            if mode == "processor":
                processed.append(job["uploadId"])

        runs = _rounds(
            cold,
            processor_modes,
            job_for,
            handled,
            repeats,
            lambda i: progress(f"cold start (processor): repeat {i}/{repeats}"),
        )
        base, subj = runs["processor-baseline"], runs["processor"]
        _, importtime = cold.run("processor", processor_job(), "-X", "importtime")
        stack.close()
        evidence["processor"] = {"processedUploadIds": processed, "importtime": import_report(importtime)}
        figures.append(
            Figure(
                "cold start: processor import + first SQS batch",
                "ms",
                [r.seconds * 1000 for r in subj],
                [r.seconds * 1000 for r in base],
                Target("ratio", "<=", 1.3),
                baseline_name="import boto3 + clients + get_object + put_item + put_events",
                notes="one S3 notification for a 1 KiB text object, profile file (verify only)",
                details=_details(subj, base, evidence["processor"]["importtime"]),
            )
        )
        figures.append(
            _floor(
                "cold start floor: the processor baseline's work in powertools' BatchProcessor + pydantic",
                runs,
                processor_modes,
                "import boto3 + clients + get_object + put_item + put_events",
            )
        )
    return figures, evidence
