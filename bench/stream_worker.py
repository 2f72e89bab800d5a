"""One streaming measurement in a fresh process: ``python bench/stream_worker.py MODE JOB RESULT``.

  process   the ProcessFunction handler on one SQS batch naming the big object
            (warm: the processor and its clients built before the clock starts)
  process-sequential  the same, with the promotion's copy made after the hash instead of beside
            it (as before the overlap): what overlapping buys, measured in the same runs
  baseline  get_object on the same object, read in 1 MiB chunks and dropped
  baseline-copy  the same, then the same CopyObject the processor's promotion makes (conditioned on
            the ETag, metadata replaced, S3 asked for the copy's SHA-256: the emulator's own cost of
            the copy, which the processor pays too), the copy deleted after the clock

Writes ``{"seconds", "rssBeforeMiB", "peakRssMiB", "outcome", "bytesRead"}`` to RESULT (bytesRead:
of object bodies, as the processor's Storage adapter counted them), and for ``process``
``promoteSeconds``: the part of ``seconds`` spent promoting the verified object once it was hashed
(waiting for the CopyObject started beside the read, or making it), and ``copySeconds``: how long
the CopyObject itself took, overlapped or not. Peak memory is the
kernel's high-water mark of this process's resident size (VmHWM), reset just before the clock
starts (``/proc/self/clear_refs``); the growth that counts is that peak minus the resident size
at the start (imports and clients already in). Not ``ru_maxrss``: Linux carries it across
fork and exec, so a child of a big parent starts with the parent's peak.
"""

import json
import sys
import time


def _status(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise LookupError(field)


def rss_mib() -> float:
    return _status("VmRSS")


def peak_mib() -> float:
    return _status("VmHWM")


def reset_peak() -> float:
    """Restart the high-water mark from the current resident size; that size, in MiB."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return rss_mib()


class Context:
    function_name = "ProcessFunction"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ProcessFunction"
    aws_request_id = "00000000-0000-4000-8000-000000000001"
    function_version = "$LATEST"
    log_group_name = "/aws/lambda/ProcessFunction"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000  # a fresh invocation of the template's 15-minute ProcessFunction


BYTES_READ = {"bytesRead": 0}
PROMOTING = {"promoteSeconds": 0.0, "copySeconds": 0.0}


def timed_promotion() -> None:
    """Attribution only: count the time the processor spends promoting the verified object after
    hashing it (``Promotion.finish``: waiting for the copy started beside the read, or making it)
    and the CopyObject's own time (whose SHA-256 S3 computes): the emulator's copy, not the read
    and hash."""
    from typing import Any

    from directupload.storage import Promotion, Storage

    finish, copy_once = Promotion.finish, Storage._copy_once

    def finishing(self: Promotion, **kwargs: Any) -> None:
        started = time.perf_counter()
        try:
            finish(self, **kwargs)
        finally:
            PROMOTING["promoteSeconds"] += time.perf_counter() - started

    def copying(self: Storage, *args: Any) -> str:
        started = time.perf_counter()
        try:
            return copy_once(self, *args)
        finally:
            PROMOTING["copySeconds"] += time.perf_counter() - started

    Promotion.finish = finishing  # type: ignore[method-assign]
    Storage._copy_once = copying  # type: ignore[method-assign,assignment]


def sequential_promotion() -> None:
    """For ``process-sequential``: verify is never handed the promotion, so ``finish`` makes the
    copy after the hash (the code path of profiles with steps)."""
    from typing import Any

    from directupload.processing import pipeline

    verify = pipeline.verify.verify

    def without_promotion(*args: Any, promotion: Any = None, **kwargs: Any) -> Any:
        return verify(*args, **kwargs)

    pipeline.verify.verify = without_promotion


def process(job: dict, sequential: bool = False) -> tuple[float, float, object]:
    from directupload import aws, wiring
    from handlers import processor

    timed_promotion()
    if sequential:
        sequential_promotion()
    wiring.processor()  # the processor and its clients, as a warm container has them
    aws.client("s3").head_bucket(Bucket=job["bucket"])  # the connection pool, as a warm container has
    before = reset_peak()
    started = time.perf_counter()
    reply = processor.lambda_handler(job["event"], Context())
    seconds = time.perf_counter() - started
    BYTES_READ["bytesRead"] = wiring.storage().bytes_read  # of object bodies, as the Storage adapter counts
    return seconds, before, reply


def baseline(job: dict, copy: bool = False) -> tuple[float, float, object]:
    import boto3

    s3 = boto3.session.Session().client("s3")
    s3.head_bucket(Bucket=job["bucket"])
    before = reset_peak()
    started = time.perf_counter()
    reply = s3.get_object(Bucket=job["bucket"], Key=job["key"])
    size = 0
    for chunk in reply["Body"].iter_chunks(1024 * 1024):
        size += len(chunk)
    if copy:  # the promotion's CopyObject, as Storage.promote makes it
        s3.copy_object(
            Bucket=job["bucket"],
            Key=job["key"] + ".copy",
            CopySource={"Bucket": job["bucket"], "Key": job["key"]},
            CopySourceIfMatch=reply["ETag"],
            MetadataDirective="REPLACE",
            ContentType="application/octet-stream",
            Metadata={"upload-id": "baseline"},
            ChecksumAlgorithm="SHA256",
        )
    seconds = time.perf_counter() - started
    if copy:
        s3.delete_object(Bucket=job["bucket"], Key=job["key"] + ".copy")
    return seconds, before, {"bytes": size}


if __name__ == "__main__":
    mode, job_path, result_path = sys.argv[1:4]
    with open(job_path) as f:
        job = json.load(f)
    if mode not in ("process", "process-sequential", "baseline", "baseline-copy"):
        sys.exit(f"unknown mode {mode!r}: process, process-sequential, baseline or baseline-copy")
    if mode.startswith("process"):
        seconds, before, outcome = process(job, sequential=mode == "process-sequential")
    else:
        seconds, before, outcome = baseline(job, copy=mode == "baseline-copy")
    with open(result_path, "w") as f:
        json.dump(
            {
                "seconds": seconds,
                "rssBeforeMiB": before,
                "peakRssMiB": peak_mib(),
                "rssAfterMiB": rss_mib(),
                "outcome": outcome,
                **BYTES_READ,
                **(PROMOTING if mode.startswith("process") else {}),
            },
            f,
        )
