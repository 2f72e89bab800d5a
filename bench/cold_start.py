"""Cold start: a fresh interpreter importing a handler and serving its first event, against a fresh
interpreter doing the same AWS work with boto3 alone (bench/cold_worker.py), interleaved. The
emulator runs in this process; each upload the processor's subject handles is issued and
uploaded here beforehand, through the API handler, as a client would."""

from __future__ import annotations

import contextlib
import json
import os
import re
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
        return ColdRun(result["seconds"], result["importSeconds"], result["outcome"]), done.stderr


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


def measure_cold_start(
    deployment: Deployment, *, repeats: int, progress: Callable[[str], None] = lambda _: None
) -> tuple[list[Figure], dict[str, Any]]:
    figures = []
    evidence: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        cold = Cold(deployment, Path(tmp))
        api_job = _api_job(deployment)
        # warm the OS caches and bytecode of both sides; not recorded
        cold.run("api-baseline", api_job)
        cold.run("api", api_job)
        base: list[ColdRun] = []
        subj: list[ColdRun] = []
        for i in range(repeats):
            order = ("api-baseline", "api") if i % 2 == 0 else ("api", "api-baseline")
            for mode in order:
                result, _ = cold.run(mode, api_job)
                if result.outcome["status"] != 201:
                    raise RuntimeError(f"{mode} answered {result.outcome}")
                (base if mode == "api-baseline" else subj).append(result)
            progress(f"cold start (API): repeat {i + 1}/{repeats}")
        _, importtime = cold.run("api", api_job, "-X", "importtime")
        evidence["api"] = {"lastUploadId": subj[-1].outcome["uploadId"], "importtime": import_report(importtime)}
        figures.append(
            Figure(
                "cold start: API import + first POST /uploads",
                "ms",
                [r.seconds * 1000 for r in subj],
                [r.seconds * 1000 for r in base],
                Target("ratio", "<=", 1.3),
                baseline_name="import boto3 + clients + presign + put_item",
                notes="fresh interpreter, Lambda's environment variables; the clock starts at the worker's first line",
                details={
                    "subjectImportMs": [round(r.import_seconds * 1000, 1) for r in subj],
                    "baselineImportMs": [round(r.import_seconds * 1000, 1) for r in base],
                    "importtime": evidence["api"]["importtime"],
                },
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

        baseline_job = processor_job()
        cold.run("processor-baseline", baseline_job)
        cold.run("processor", processor_job())
        base, subj = [], []
        processed: list[str] = []
        for i in range(repeats):
            order = ("processor-baseline", "processor") if i % 2 == 0 else ("processor", "processor-baseline")
            for mode in order:
                job = baseline_job if mode == "processor-baseline" else processor_job()
                result, _ = cold.run(mode, job)
                if mode == "processor":
                    if result.outcome != {"batchItemFailures": []}:
                        raise RuntimeError(f"processor answered {result.outcome}")
                    processed.append(job["uploadId"])
                    subj.append(result)
                else:
                    base.append(result)
            progress(f"cold start (processor): repeat {i + 1}/{repeats}")
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
                details={
                    "subjectImportMs": [round(r.import_seconds * 1000, 1) for r in subj],
                    "baselineImportMs": [round(r.import_seconds * 1000, 1) for r in base],
                    "importtime": evidence["processor"]["importtime"],
                },
            )
        )
    return figures, evidence
