"""Streaming processing: the ProcessFunction handler verifying one big object (size, sniffed type,
SHA-256 in one streaming pass) against plainly streaming the same object from the same emulator
and dropping it. Both run in fresh processes (bench/stream_worker.py) so their memory can be
measured; the emulator runs in a process of its own."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import ROOT
from bench.emulator import Deployment, EmulatorProcess, client, deploy, lambda_env
from bench.figures import Figure, Target

WORKER = ROOT / "bench" / "stream_worker.py"
MiB = 1024 * 1024
PROFILE = "stream"
UPLOAD_PART = 64 * MiB


def profiles_json(max_size: int) -> str:
    """One profile for this benchmark (PROFILES_JSON replaces the built-in ones): any bytes up to
    ``max_size`` in one presigned POST, the verify step only."""
    return json.dumps(
        {
            PROFILE: {
                "contentTypes": ["application/octet-stream"],
                "maxSize": max_size,
                "urlTtlSeconds": 3600,
                "steps": ["verify"],
            }
        }
    )


class Generated(io.RawIOBase):
    """``size`` pseudo-random bytes (a seeded 1 MiB block, repeated), produced as they are read:
    the object goes up without ever being in memory whole. Its SHA-256 builds up as it is read
    (upload_fileobj reads a non-seekable stream in order)."""

    def __init__(self, size: int, seed: int = 20261122) -> None:
        self.left = size
        self.position = 0
        self.block = random.Random(seed).randbytes(MiB)
        if self.block.startswith((b"MZ", b"\x7fELF")):
            raise ValueError("pick another seed: the bytes look executable")
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = min(len(view), self.left)
        filled = 0
        while filled < n:
            offset = (self.position + filled) % MiB
            k = min(n - filled, MiB - offset)
            view[filled : filled + k] = self.block[offset : offset + k]
            filled += k
        self.digest.update(view[:n])
        self.position += n
        self.left -= n
        return n


def put_big_object(deployment: Deployment, size: int) -> dict[str, Any]:
    """Issue an upload of ``size`` bytes through the API handler, then put its bytes with a
    multipart upload_fileobj from a generator. Returns the upload's id, key, SHA-256 and record."""
    from boto3.s3.transfer import TransferConfig

    from bench.api_overhead import ApiSubject, function_environment

    body = {"profile": PROFILE, "filename": "big.bin", "contentType": "application/octet-stream", "size": size}
    with function_environment(deployment.env):
        subject = ApiSubject()
        try:
            subject(body)
        finally:
            subject.close()
    issued = subject.issued[-1].payload
    upload_id, key = issued["uploadId"], issued["key"]
    source = Generated(size)
    s3 = client("s3", deployment.endpoint)
    s3.upload_fileobj(
        io.BufferedReader(source, buffer_size=8 * MiB),
        deployment.bucket,
        key,
        ExtraArgs={"ContentType": "application/octet-stream", "Metadata": {"upload-id": upload_id}},
        Config=TransferConfig(multipart_threshold=UPLOAD_PART, multipart_chunksize=UPLOAD_PART, max_concurrency=4),
    )
    if source.left:
        raise RuntimeError(f"upload_fileobj stopped with {source.left} bytes unread")
    item = client("dynamodb", deployment.endpoint).get_item(
        TableName=deployment.table, Key={"pk": {"S": f"upload#{upload_id}"}}, ConsistentRead=True
    )["Item"]
    return {"uploadId": upload_id, "key": key, "sha256": source.digest.hexdigest(), "size": size, "item": item}


def sqs_job(deployment: Deployment, big: dict[str, Any], sequence: int) -> dict[str, Any]:
    from local.aws_events import s3_notification, sqs_batch

    # a new sequencer each run: a new object version to the idempotency layer
    notification = s3_notification(
        deployment.bucket,
        big["key"],
        big["size"],
        event_name="ObjectCreated:CompleteMultipartUpload",
        sequencer=f"{sequence:018X}",
    )
    return {
        "event": sqs_batch(notification, id_prefix=f"stream-{sequence}-"),
        "bucket": deployment.bucket,
        "key": big["key"],
    }


class StreamRuns:
    def __init__(self, deployment: Deployment, big: dict[str, Any], workdir: Path) -> None:
        self.deployment = deployment
        self.big = big
        self.workdir = workdir
        self.sequence = 0
        self.ddb = client("dynamodb", deployment.endpoint)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "AWS_"))}
        self.env.update(deployment.env)
        self.env.update(lambda_env("ProcessFunction", 1024))

    def run(self, mode: str) -> dict[str, Any]:
        self.sequence += 1
        if mode != "baseline":
            # the record as issued (PENDING), so every run processes the upload from the start
            self.ddb.put_item(TableName=self.deployment.table, Item=self.big["item"])
        job_path = self.workdir / f"job-{self.sequence}.json"
        result_path = self.workdir / f"result-{self.sequence}.json"
        job_path.write_text(json.dumps(sqs_job(self.deployment, self.big, self.sequence)))
        done = subprocess.run(
            [sys.executable, str(WORKER), mode, str(job_path), str(result_path)],
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0 or not result_path.exists():
            raise RuntimeError(f"stream worker {mode} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(result_path.read_text())
        result["growthMiB"] = result["peakRssMiB"] - result["rssBeforeMiB"]
        if mode == "baseline":
            if result["outcome"] != {"bytes": self.big["size"]}:
                raise RuntimeError(f"the baseline read {result['outcome']}, not {self.big['size']} bytes")
        else:
            result["record"] = self.check_processed(result["outcome"])
        return result

    def check_processed(self, reply: Any) -> dict[str, Any]:
        """The run really verified the object: PROCESSED, every byte read, the right SHA-256."""
        from directupload.store import UploadStore

        if reply != {"batchItemFailures": []}:
            raise RuntimeError(f"the processor answered {reply}")
        record = UploadStore(self.deployment.table, self.ddb).get(self.big["uploadId"])
        assert record is not None
        result = record.result or {}
        facts = {"status": record.status.value, "sha256": record.sha256, "size": result.get("size")}
        if facts != {"status": "PROCESSED", "sha256": self.big["sha256"], "size": self.big["size"]}:
            raise RuntimeError(
                f"the processor did not verify the object: {facts}, expected sha256 "
                f"{self.big['sha256']} and {self.big['size']} bytes"
            )
        return facts


def measure_streaming(
    *, size: int, repeats: int, progress: Callable[[str], None] = lambda _: None
) -> tuple[list[Figure], dict[str, Any]]:
    with EmulatorProcess() as emulator, tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        deployment = deploy(emulator.url, {"ProfilesJson": profiles_json(max(size, MiB))})
        progress(f"streaming: putting {size / MiB:.0f} MiB into the emulator (multipart, from a generator)")
        big = put_big_object(deployment, size)
        runs = StreamRuns(deployment, big, Path(tmp))
        modes = ["baseline", "process"]
        results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
        for i in range(repeats):
            for mode in modes if i % 2 == 0 else list(reversed(modes)):
                results[mode].append(runs.run(mode))
            progress(f"streaming: repeat {i + 1}/{repeats}")
    mib = size / MiB

    def rate(mode: str) -> list[float]:
        return [mib / r["seconds"] for r in results[mode]]

    label = f"{mib / 1024:.0f} GiB" if size >= 1024 * MiB else f"{mib:.0f} MiB"
    figures = [
        Figure(
            f"streaming: verify {label} (SHA-256 + sniff), throughput",
            "MiB/s",
            rate("process"),
            rate("baseline"),
            Target("ratio", ">=", 0.8),
            baseline_name="get_object streamed and dropped",
            notes="ProcessFunction handler, profile with the verify step only, reading ahead as "
            "Storage.stream does; warm clients",
            details={"bytes": size, "sha256": big["sha256"], "records": [r["record"] for r in results["process"]]},
        ),
        Figure(
            f"streaming: processor peak memory growth ({label})",
            "MiB",
            [r["growthMiB"] for r in results["process"]],
            [r["growthMiB"] for r in results["baseline"]],
            Target("value", "<=", 64),
            baseline_name="the baseline's own growth",
            notes="the processor process's peak resident size (VmHWM, reset just before the run) minus its "
            "resident size just before it",
        ),
    ]
    return figures, {"big": {k: v for k, v in big.items() if k != "item"}}
