"""The local stack's malware scanner: GuardDuty Malware Protection for S3's part, played by ClamAV.

The contract is GuardDuty's, so the very same processing code consumes it:
- every object created under ``incoming/`` is scanned, exactly the version S3 announced (GET
  If-Match its ETag; a version written since is another object with its own notification);
- the object is tagged ``GuardDutyMalwareScanStatus`` with the result;
- a "GuardDuty Malware Protection Object Scan Result" event goes to the default event bus,
  where the template's ScanResultRule delivers it to the ingest queue.

ClamAV runs as ``clamscan`` (Debian's ``clamav`` package, installed by ``make``) with the
signature databases in ``local/clamav/`` (a signature of the EICAR test file, so detection is
real and offline) and, when present, the system's (``/var/lib/clamav``, what ``freshclam``
downloads: this machine has no internet, so a real deployment's local scans need freshclam).
It fails closed as GuardDuty does: a file over the size limit is UNSUPPORTED (never "clean"), a
scan that errs is FAILED. While the file named by ``switch`` exists, the scanner is down: it
answers nothing, as a throttled or failing GuardDuty does, and processing rejects at the deadline.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from local import ROOT

SIGNATURES = ROOT / "local" / "clamav"
SYSTEM_SIGNATURES = Path("/var/lib/clamav")
SCAN_RESULT = "GuardDuty Malware Protection Object Scan Result"
TAG = "GuardDutyMalwareScanStatus"
# GuardDuty scans objects up to 100 GB; the local scanner keeps to what clamscan handles well
MAX_SCAN_BYTES = 2000 * 1024 * 1024


@dataclass(frozen=True)
class Verdict:
    status: str  # NO_THREATS_FOUND | THREATS_FOUND | UNSUPPORTED | ACCESS_DENIED | FAILED
    threats: tuple[str, ...] = ()


def databases() -> list[Path]:
    found = [SIGNATURES]
    if SYSTEM_SIGNATURES.is_dir() and any(SYSTEM_SIGNATURES.glob("*.c[lv]d")):
        found.append(SYSTEM_SIGNATURES)
    return found


def clamscan(path: Path, max_bytes: int = MAX_SCAN_BYTES) -> Verdict:
    """Scan one file with clamscan; fail closed on anything but a clean or a found result."""
    binary = shutil.which("clamscan")
    if binary is None:
        return Verdict("FAILED")
    if path.stat().st_size > max_bytes:
        return Verdict("UNSUPPORTED")
    limit = f"--max-filesize={max_bytes}"
    command = [
        binary,
        "--stdout",
        "--no-summary",
        "--alert-exceeds-max",  # over a limit: reported, never "OK"
        "--alert-encrypted=yes",  # a password-protected archive cannot be scanned: reported, never "OK"
        limit,
        f"--max-scansize={max_bytes}",
    ]
    for database in databases():
        command.append(f"--database={database}")
    try:
        done = subprocess.run([*command, str(path)], capture_output=True, text=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        return Verdict("FAILED")
    lines = [line for line in done.stdout.splitlines() if line.startswith(f"{path}: ")]
    results = [line[len(f"{path}: ") :] for line in lines]
    if done.returncode == 0 and results and all(r in ("OK", "Empty file") for r in results):
        return Verdict("NO_THREATS_FOUND")
    found = tuple(r.removesuffix(" FOUND") for r in results if r.endswith(" FOUND"))
    if done.returncode == 1 and found:
        unscannable = ("Heuristics.Limits.Exceeded", "Heuristics.Encrypted")
        if all(name.startswith(unscannable) for name in found):
            return Verdict("UNSUPPORTED")  # over a limit or encrypted: not scanned, so never clean
        return Verdict("THREATS_FOUND", tuple(n for n in found if not n.startswith(unscannable)))
    return Verdict("FAILED")


def scan_result_event(bucket: str, key: str, etag: str, verdict: Verdict, region: str) -> dict[str, Any]:
    """The PutEvents entry GuardDuty publishes for one scanned object (its documented shape)."""
    detail = {
        "schemaVersion": "1.0",
        "scanStatus": {"NO_THREATS_FOUND": "COMPLETED", "THREATS_FOUND": "COMPLETED", "FAILED": "FAILED"}.get(
            verdict.status, "SKIPPED"
        ),
        "resourceType": "S3_OBJECT",
        "s3ObjectDetails": {"bucketName": bucket, "objectKey": key, "eTag": etag, "s3Throttled": False},
        "scanResultDetails": {
            "scanResultStatus": verdict.status,
            "threats": [{"name": name} for name in verdict.threats] or None,
        },
    }
    return {
        "Source": "aws.guardduty",
        "DetailType": SCAN_RESULT,
        "Detail": json.dumps(detail),
        "Resources": [f"arn:aws:guardduty:{region}:123456789012:malware-protection-plan/local"],
        "Time": datetime.now(UTC),
    }


class Scanner(threading.Thread):
    """Drains the local queue of the bucket's ObjectCreated notifications under incoming/ and
    reports a verdict per object, as GuardDuty Malware Protection does."""

    def __init__(
        self,
        sqs: Any,
        s3: Any,
        events: Any,
        queue_url: str,
        region: str,
        switch: Path | None = None,
        duplicate_rate: float = 0.0,
        name: str = "scanner",
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.sqs, self.s3, self.events = sqs, s3, events
        self.queue_url = queue_url
        self.region = region
        self.switch = switch
        # EventBridge delivers at least once: with LOCAL_DUPLICATE_RATE, some verdicts go out twice
        self.duplicate_rate = duplicate_rate
        self._random = random.Random(f"{name}-20261201")
        self.stopping = threading.Event()
        self.scanned = 0

    def stop(self) -> None:
        self.stopping.set()

    @property
    def down(self) -> bool:
        return self.switch is not None and self.switch.exists()

    def run(self) -> None:
        while not self.stopping.is_set():
            if self.down:
                time.sleep(0.2)
                continue
            try:
                reply = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
                for message in reply.get("Messages", []):
                    if self.down:  # went down while waiting: the message comes back later
                        break
                    self.handle(json.loads(message["Body"]))
                    self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            except Exception as exc:  # noqa: BLE001 - the scanner outlives any one failure, as GuardDuty does
                if self.stopping.wait(0.5):
                    break  # the stack is shutting down (Ctrl-C stops the emulator beside it)
                print(f"[scanner] {type(exc).__name__}: {exc}", flush=True)

    def handle(self, notification: dict[str, Any]) -> None:
        for record in notification.get("Records", []):
            if not str(record.get("eventName", "")).startswith("ObjectCreated"):
                continue
            bucket = record["s3"]["bucket"]["name"]
            key = unquote_plus(record["s3"]["object"]["key"])
            etag = str(record["s3"]["object"].get("eTag", "")).strip('"')
            verdict = self.scan(bucket, key, etag)
            if verdict is None:
                continue  # that version is gone (processed and deleted, or written again)
            with contextlib.suppress(self.s3.exceptions.ClientError):
                self.s3.put_object_tagging(
                    Bucket=bucket, Key=key, Tagging={"TagSet": [{"Key": TAG, "Value": verdict.status}]}
                )
            entry = scan_result_event(bucket, key, etag, verdict, self.region)
            self.events.put_events(Entries=[entry])
            if self.duplicate_rate and self._random.random() < self.duplicate_rate:
                self.events.put_events(Entries=[entry])
            self.scanned += 1

    def scan(self, bucket: str, key: str, etag: str) -> Verdict | None:
        with tempfile.TemporaryDirectory(prefix="scan-") as folder:
            path = Path(folder) / uuid.uuid4().hex
            try:
                reply = self.s3.get_object(Bucket=bucket, Key=key, IfMatch=etag)
            except self.s3.exceptions.ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code in ("NoSuchKey", "404", "PreconditionFailed", "412"):
                    return None
                return Verdict("ACCESS_DENIED" if code in ("AccessDenied", "403") else "FAILED")
            body = reply["Body"]
            if int(reply.get("ContentLength") or 0) > MAX_SCAN_BYTES:
                body.close()
                return Verdict("UNSUPPORTED")  # not downloaded at all: over what the scanner takes
            with path.open("wb") as out:
                for chunk in iter(lambda: body.read(1024 * 1024), b""):
                    out.write(chunk)
            return clamscan(path)
