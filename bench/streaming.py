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


class FormBody:
    """A multipart/form-data POST body, the file part produced as it is read (``len()`` gives
    requests the Content-Length S3 wants, so nothing is held in memory whole). Not an io class:
    requests would ask it for tell() and, failing, send it chunked without a length."""

    BOUNDARY = "directupload-bench-boundary"

    def __init__(self, fields: dict[str, str], source: io.RawIOBase, size: int) -> None:
        head = "".join(
            f'--{self.BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields.items()
        )
        head += f'--{self.BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        head += "Content-Type: application/octet-stream\r\n\r\n"
        self.parts: list[Any] = [io.BytesIO(head.encode()), source, io.BytesIO(f"\r\n--{self.BOUNDARY}--\r\n".encode())]
        self.length = len(head.encode()) + size + len(self.parts[2].getvalue())

    def __len__(self) -> int:
        return self.length

    def read(self, n: int = -1) -> bytes:
        n = self.length if n is None or n < 0 else n
        while self.parts:
            chunk = self.parts[0].read(n)
            if chunk:
                return bytes(chunk)
            self.parts.pop(0)
        return b""


def post_big_object_with_checksum(deployment: Deployment, size: int) -> dict[str, Any]:
    """Issue an upload of ``size`` bytes declaring their SHA-256, then send them with the presigned
    POST the API answered (the policy pins the checksum, so S3 verifies it and keeps it)."""

    from bench.api_overhead import ApiSubject, function_environment

    digest = hashlib.sha256()
    source = Generated(size)
    while chunk := source.read(8 * MiB):
        digest.update(chunk)
    sha256 = digest.hexdigest()
    body = {
        "profile": PROFILE,
        "filename": "verified.bin",
        "contentType": "application/octet-stream",
        "size": size,
        "checksumSha256": sha256,
    }
    with function_environment(deployment.env):
        subject = ApiSubject()
        try:
            subject(body)
        finally:
            subject.close()
    issued = subject.issued[-1].payload
    post_form(issued["url"], issued["fields"], size)
    upload_id, key = issued["uploadId"], issued["key"]
    item = client("dynamodb", deployment.endpoint).get_item(
        TableName=deployment.table, Key={"pk": {"S": f"upload#{upload_id}"}}, ConsistentRead=True
    )["Item"]
    grant = {"url": issued["url"], "fields": issued["fields"]}
    return {"uploadId": upload_id, "key": key, "sha256": sha256, "size": size, "item": item, "post": grant}


def post_form(url: str, fields: dict[str, str], size: int) -> None:
    """Send the generated bytes with a presigned POST (as often as the grant lives)."""
    import requests

    form = FormBody(fields, Generated(size), size)
    reply = requests.post(
        url, data=form, headers={"Content-Type": f"multipart/form-data; boundary={FormBody.BOUNDARY}"}, timeout=600
    )
    if reply.status_code != 204:
        raise RuntimeError(f"the POST answered {reply.status_code}: {reply.text[:300]}")


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


PRISTINE = "bench/pristine/"  # outside incoming/: no notification, nothing the processor reads


class StreamRuns:
    """Runs of the workers on the big objects. A processor run promotes its object out of
    incoming/ (copy to files/, then delete), so before every run the object is put back from a
    copy made once (untimed), and the promoted copy is removed after it."""

    def __init__(self, deployment: Deployment, big: dict[str, Any], workdir: Path) -> None:
        self.deployment = deployment
        self.big = big
        self.workdir = workdir
        self.sequence = 0
        self.ddb = client("dynamodb", deployment.endpoint)
        self.s3 = client("s3", deployment.endpoint)
        self.kept: set[str] = set()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "AWS_"))}
        self.env.update(deployment.env)
        self.env.update(lambda_env("ProcessFunction", 1024))

    def restage(self, big: dict[str, Any]) -> None:
        """The object under its incoming/ key again, as uploaded. One posted with a declared
        SHA-256 is posted again with its grant (S3 verifies and keeps the checksum; moto's copies
        drop its FULL_OBJECT type); the other is copied back from the copy made before its first run."""
        bucket, key, pristine = self.deployment.bucket, big["key"], PRISTINE + big["uploadId"]
        if "post" not in big and big["uploadId"] not in self.kept:
            self.s3.copy_object(Bucket=bucket, Key=pristine, CopySource={"Bucket": bucket, "Key": key})
            self.kept.add(big["uploadId"])
        promoted = self.s3.list_objects_v2(Bucket=bucket, Prefix=f"files/{big['uploadId']}/").get("Contents", [])
        for item in promoted:
            self.s3.delete_object(Bucket=bucket, Key=item["Key"])
        if self.s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1).get("KeyCount"):
            return
        if "post" in big:
            post_form(big["post"]["url"], big["post"]["fields"], big["size"])
        else:
            self.s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": pristine})

    def run(self, mode: str, big: dict[str, Any] | None = None) -> dict[str, Any]:
        big = big or self.big
        self.sequence += 1
        self.restage(big)
        if mode != "baseline":
            # the record as issued (PENDING), so every run processes the upload from the start
            self.ddb.put_item(TableName=self.deployment.table, Item=big["item"])
        job_path = self.workdir / f"job-{self.sequence}.json"
        result_path = self.workdir / f"result-{self.sequence}.json"
        job_path.write_text(json.dumps(sqs_job(self.deployment, big, self.sequence)))
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
            if result["outcome"] != {"bytes": big["size"]}:
                raise RuntimeError(f"the baseline read {result['outcome']}, not {big['size']} bytes")
        else:
            result["record"] = self.check_processed(result["outcome"], big)
            result["record"]["bytesRead"] = result["bytesRead"]
        return result

    def check_processed(self, reply: Any, big: dict[str, Any]) -> dict[str, Any]:
        """The run really verified the object: PROCESSED, with its size and the right SHA-256."""
        from directupload.store import UploadStore

        if reply != {"batchItemFailures": []}:
            raise RuntimeError(f"the processor answered {reply}")
        record = UploadStore(self.deployment.table, self.ddb).get(big["uploadId"])
        assert record is not None
        result = record.result or {}
        facts = {"status": record.status.value, "sha256": record.sha256, "size": result.get("size")}
        if facts != {"status": "PROCESSED", "sha256": big["sha256"], "size": big["size"]}:
            raise RuntimeError(
                f"the processor did not verify the object: {facts}, expected sha256 "
                f"{big['sha256']} and {big['size']} bytes"
            )
        return facts


def measure_streaming(
    *, size: int, repeats: int, progress: Callable[[str], None] = lambda _: None
) -> tuple[list[Figure], dict[str, Any]]:
    with EmulatorProcess() as emulator, tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        deployment = deploy(emulator.url, {"ProfilesJson": profiles_json(max(size, MiB))})
        progress(f"streaming: putting {size / MiB:.0f} MiB into the emulator (multipart, from a generator)")
        big = put_big_object(deployment, size)
        progress(f"streaming: posting {size / MiB:.0f} MiB with a declared SHA-256 (S3 verifies it)")
        verified = post_big_object_with_checksum(deployment, size)
        runs = StreamRuns(deployment, big, Path(tmp))
        modes = ["baseline", "process", "trusted"]
        results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
        for i in range(repeats):
            for mode in modes if i % 2 == 0 else list(reversed(modes)):
                if mode == "trusted":  # the processor on the object S3 verified
                    results[mode].append(runs.run("process", verified))
                else:
                    results[mode].append(runs.run(mode))
            progress(f"streaming: repeat {i + 1}/{repeats}")
    mib = size / MiB
    gib = size / 1024**3

    def lambda_seconds_per_gib(mode: str) -> list[float]:
        return [r["seconds"] / gib for r in results[mode]]

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
        Figure(
            "streaming: Lambda-seconds per GiB verified, S3-verified checksum trusted",
            "s/GiB",
            lambda_seconds_per_gib("trusted"),
            lambda_seconds_per_gib("process"),
            None,
            baseline_name="hashing every byte (no declared checksum)",
            notes="the handler's duration (what Lambda bills) per GiB: an upload whose declared SHA-256 S3 "
            "verified (FULL_OBJECT) is PROCESSED after reading its head only; bench/cost_model.py prices both",
            details={
                "bytes": size,
                "bytesRead": {m: [r["record"]["bytesRead"] for r in results[m]] for m in ("process", "trusted")},
                "records": [r["record"] for r in results["trusted"]],
            },
        ),
    ]
    evidence = {"big": {k: v for k, v in big.items() if k != "item"}}
    evidence["verified"] = {k: v for k, v in verified.items() if k not in ("item", "post")}
    return figures, evidence
