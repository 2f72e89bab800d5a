"""Client throughput: the CLI (the client-demo/cli package, from source) uploading a file multipart
through the local stack, against boto3's upload_file (TransferManager) sending the same file to
the same emulator with the same part size and concurrency. All are fresh processes, timed from
spawn to exit, their peak memory read from the kernel (wait4's ru_maxrss, per child).

Two baselines, run interleaved with the CLI: upload_file as it comes (each part with a CRC32,
computed as it streams), and upload_file with SHA-256 part checksums, the work the CLI's parts
carry (it hashes each part before the part is signed, so S3 refuses other bytes). The second
says how much of a gap to the first is that checksum rather than the CLI."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bench import ROOT
from bench.end_to_end import Stack, local_stack
from bench.figures import Figure, Target
from local.harness import CREDENTIALS, REGION

CLI_SRC = ROOT / "client-demo" / "cli" / "src"
CLI = [sys.executable, "-m", "directupload_cli"]
UPLOADER = ROOT / "bench" / "upload_worker.py"
LAUNCHER = ROOT / "bench" / "measure_child.py"
MiB = 1024 * 1024
PART_SIZE = 16 * MiB  # the video profile's part size
CONCURRENCY = 4  # the CLI's default
# The baselines: upload_file as it comes, and with the CLI's part checksum (ChecksumAlgorithm)
BASELINES = {"boto3": None, "boto3-sha256": "SHA256"}
# An MP4 header, so the video profile's sniffer accepts the file and processing ends PROCESSED.
MP4_HEAD = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"


@dataclass
class ChildRun:
    seconds: float
    peak_mib: float
    returncode: int
    stderr: str


def timed_child(command: list[str], env: dict[str, str], cwd: Path) -> ChildRun:
    """Run a child to its end through bench/measure_child.py: wall seconds from spawn to exit and
    the child's own peak RSS."""
    with tempfile.TemporaryDirectory(prefix="bench-child-") as tmp:
        result = Path(tmp) / "result.json"
        done = subprocess.run(
            [sys.executable, str(LAUNCHER), str(result), *command],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
            timeout=600,
        )
        if not result.exists():
            raise RuntimeError(f"the launcher failed ({done.returncode}):\n{done.stderr[-2000:]}")
        measured = json.loads(result.read_text())
    return ChildRun(measured["seconds"], measured["peakMiB"], measured["exitCode"], done.stderr)


def make_file(path: Path, size: int) -> None:
    block = random.Random(7).randbytes(MiB)
    with path.open("wb") as f:
        f.write(MP4_HEAD)
        left = size - len(MP4_HEAD)
        while left > 0:
            f.write(block[: min(MiB, left)])
            left -= MiB


def wait_final(stack: Stack, upload_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record: dict[str, Any] = requests.get(f"{stack.url}/uploads/{upload_id}", timeout=30).json()
        if record.get("status") in ("PROCESSED", "REJECTED", "FAILED"):
            return record
        time.sleep(0.2)
    raise RuntimeError(f"upload {upload_id} not final after {timeout}s")


def latest_upload_id(stack: Stack, seen: set[str]) -> str:
    """The upload the CLI just made: the one new upload id under incoming/ (staged) or files/
    (verified and promoted) in the bucket."""
    from local.harness import client

    s3 = client("s3", stack.info["emulatorUrl"])
    keys = [
        o["Key"]
        for prefix in ("incoming/", "files/")
        for o in s3.list_objects_v2(Bucket=stack.info["bucket"], Prefix=prefix).get("Contents", [])
    ]
    new = {k.split("/")[-2] for k in keys} - seen
    if len(new) != 1:
        raise RuntimeError(f"expected one new upload in the bucket, found {sorted(new)}")
    (upload_id,) = new
    seen.add(upload_id)
    return upload_id


def checksum_costs(path: Path, repeats: int = 3) -> dict[str, Any]:
    """What each part checksum costs on this machine for the whole file, in seconds (median of
    ``repeats``). The emulator's: moto's own ``MultipartChecksumBuilder``, which for a COMPOSITE
    checksum (SHA-256 or CRC32 parts) hashes every part inside CompleteMultipartUpload, while the
    client waits (S3 checks each part as it arrives instead). The client's: hashlib's SHA-256 (the
    CLI's) and botocore's CRC32 (upload_file's default), over the same bytes."""
    import hashlib
    import statistics

    from botocore.httpchecksum import Crc32Checksum
    from moto.s3.models import MultipartChecksumBuilder

    data = path.read_bytes()
    parts = [data[i : i + PART_SIZE] for i in range(0, len(data), PART_SIZE)]

    def emulator(algorithm: str) -> None:
        builder = MultipartChecksumBuilder(algorithm, "COMPOSITE")
        for part in parts:
            builder.addPart(part)
        builder.build()

    def client_crc32() -> None:
        checksum = Crc32Checksum()
        for part in parts:
            checksum.update(part)
        checksum.digest()

    work: dict[str, dict[str, Callable[[], object]]] = {
        "emulatorComplete": {"SHA256": lambda: emulator("SHA256"), "CRC32": lambda: emulator("CRC32")},
        "client": {"SHA256": lambda: [hashlib.sha256(p).digest() for p in parts], "CRC32": client_crc32},
    }
    costs: dict[str, Any] = {}
    for side, algorithms in work.items():
        costs[side] = {}
        for algorithm, run in algorithms.items():
            samples = []
            for _ in range(repeats):
                start = time.perf_counter()
                run()
                samples.append(time.perf_counter() - start)
            costs[side][algorithm] = round(statistics.median(samples), 4)
    return costs


def measure_client(
    *, size: int, repeats: int, progress: Callable[[str], None] = lambda _: None
) -> tuple[list[Figure], dict[str, Any]]:
    if not (CLI_SRC / "directupload_cli").is_dir():
        raise FileNotFoundError(f"{CLI_SRC / 'directupload_cli'} is not there (yet)")
    with local_stack() as stack, tempfile.TemporaryDirectory(prefix="bench-client-") as tmp:
        work = Path(tmp)
        path = work / "film.mp4"
        make_file(path, size)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DIRECTUPLOAD_"))}
        env.update(
            {**CREDENTIALS, "AWS_DEFAULT_REGION": REGION, "PYTHONPATH": os.pathsep.join([str(CLI_SRC), str(ROOT)])}
        )
        cli = [
            *CLI,
            "upload",
            str(path),
            "--profile",
            "video",
            "--concurrency",
            str(CONCURRENCY),
            "--no-wait",
            "--quiet",
            "--api",
            stack.url,
            "--state-dir",
            str(work / "cli-state"),
        ]
        seen: set[str] = set()
        records: list[dict[str, Any]] = []
        runs: dict[str, list[ChildRun]] = {"cli": [], **{name: [] for name in BASELINES}}
        order = ["boto3", "cli", "boto3-sha256"]
        for i in range(repeats + 1):  # the first round warms caches and is not kept
            for which in order if i % 2 == 0 else order[::-1]:  # ABC CBA: drift falls on all alike
                if which == "cli":
                    run = timed_child(cli, env, work)
                    if run.returncode not in (0, 1):  # 1: uploaded, still processing (--no-wait)
                        raise RuntimeError(f"the CLI exited {run.returncode}:\n{run.stderr[-2000:]}")
                    # untimed: let processing finish, so it does not load the next run
                    record = wait_final(stack, latest_upload_id(stack, seen))
                    if i:
                        records.append({k: record.get(k) for k in ("uploadId", "status", "size", "sha256")})
                else:
                    checksum = BASELINES[which]
                    run = timed_child(
                        [
                            sys.executable,
                            str(UPLOADER),
                            stack.info["emulatorUrl"],
                            stack.info["bucket"],
                            f"bench/{which}-{i}.mp4",
                            str(path),
                            str(PART_SIZE),
                            str(CONCURRENCY),
                            *([checksum] if checksum else []),
                        ],
                        env,
                        work,
                    )
                    if run.returncode != 0:
                        raise RuntimeError(f"upload_file ({which}) failed:\n{run.stderr[-2000:]}")
                if i:
                    runs[which].append(run)
            if i:
                progress(f"client: repeat {i}/{repeats} (CLI {size / MiB / runs['cli'][-1].seconds:.0f} MiB/s)")
        checksums = checksum_costs(path)
    mib = size / MiB
    boto3_peaks = sorted(r.peak_mib for r in runs["boto3"])
    limit = boto3_peaks[len(boto3_peaks) // 2] + 16  # boto3's own median peak in this run, + 16 MiB
    figures = [
        Figure(
            f"client: CLI multipart upload of {mib:.0f} MiB, throughput",
            "MiB/s",
            [mib / r.seconds for r in runs["cli"]],
            [mib / r.seconds for r in runs["boto3"]],
            Target("ratio", ">=", 1.0),
            baseline_name="boto3 upload_file, same parts and concurrency",
            notes=f"{CONCURRENCY} parts of {PART_SIZE // MiB} MiB in flight; whole process, spawn to exit; "
            "the CLI also issues and completes through the local stack's API",
            details={"records": records, "checksumSeconds": checksums},
        ),
        Figure(
            f"client: CLI multipart upload of {mib:.0f} MiB, throughput against SHA-256 part checksums",
            "MiB/s",
            [mib / r.seconds for r in runs["cli"]],
            [mib / r.seconds for r in runs["boto3-sha256"]],
            Target("ratio", ">=", 1.0),
            baseline_name="boto3 upload_file, same parts and concurrency, ChecksumAlgorithm=SHA256",
            notes="the same CLI runs as above, against upload_file paying the CLI's part checksum "
            "(SHA-256 per part, where botocore's default is a CRC32): the gap that is the checksum's, not the CLI's",
        ),
        Figure(
            "client: CLI peak memory",
            "MiB",
            [r.peak_mib for r in runs["cli"]],
            [r.peak_mib for r in runs["boto3"]],
            Target("value", "<=", limit),
            baseline_name="boto3 upload_file's peak",
            notes=f"limit: boto3's median peak in this run + 16 MiB = {limit:.0f} MiB (whole process, ru_maxrss)",
        ),
    ]
    return figures, {"records": records}
