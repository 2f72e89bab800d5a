"""AWS requests per upload, counted by the emulator (local/request_log.py) on the local stack.

Each scenario is what a client does once, against the local stack as `make run` starts it (each
function in its own process with its role's credentials): the counts are of the requests made with
the functions' roles (the product's, billed to its account), per service and operation, from the
moment the scenario starts until the stack is idle again (the queue drained, the outcome's event
announced, every function quiet). The harness's own reads (waiting for the outcome) use a key of
their own and are not counted; the malware scanner's requests (GuardDuty's on AWS, billed per GB
scanned) are counted apart. Empty long polls of the event source are no request of an upload.

The counts do not depend on load or timing: every request is made because of the scenario, once.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench.figures import Figure, Target
from local.launch import Stack, start_stack, stop_stack

MiB = 1024 * 1024
PRODUCT = ("ApiFunction", "ProcessFunction", "PublishFunction")  # the functions an upload goes through
SCANNER = "guardduty"  # local/stack.py: the scanner's requests
OBSERVER = "bench-observer"  # the harness's reads while it waits: counted under this key, left out
# whose requests must have stopped before a count is read (the harness's stream and TTL pollers never stop)
WATCHED = (*PRODUCT, "ConsumerFunction", "RetentionFunction", SCANNER)
IMAGE_TARGET = 12  # issue #14: requests for one single-part image, one status read and the promotion included
# the deadline check of a scanned upload comes scanTimeoutSeconds after its notification: the
# scenario's profile waits the least a profile may (5 s), so the check is counted too
SCAN_TIMEOUT = 5
SCENARIOS = ("image", "file", "file-unscanned", "video", "download", "list")


def png(width: int = 64, height: int = 48) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(buf, "PNG")
    return buf.getvalue()


def mp4(size: int) -> bytes:
    """``size`` bytes that sniff as MP4 (an ftyp box first)."""
    head = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
    return head + b"\x00" * (size - len(head))


def profiles_json() -> str:
    """The built-in profiles, ``file`` with the shortest scan deadline, and ``file-unscanned``: the
    same profile without the scan (what the scan adds is the difference)."""
    from directupload.profiles import BUILTIN_PROFILES

    profiles = {name: p.model_dump(by_alias=True, exclude={"name"}) for name, p in BUILTIN_PROFILES.items()}
    profiles["file"]["scanTimeoutSeconds"] = SCAN_TIMEOUT
    profiles["file-unscanned"] = {**profiles["file"], "scan": "off"}
    return json.dumps(profiles, separators=(",", ":"))


@contextmanager
def counting_stack(timeout: float = 120) -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="bench-requests-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "AWS_"))}
        stack = start_stack(Path(tmp), "--parameter", f"ProfilesJson={profiles_json()}", env=env, timeout=timeout)
        try:
            yield stack
        finally:
            stop_stack(stack)


@dataclass
class Count:
    """The requests of one scenario: the product's (per function, service and operation) and the scanner's."""

    scenario: str
    profile: str | None
    product: Counter[str] = field(default_factory=Counter)  # "service:Operation" -> count
    by_function: dict[str, Counter[str]] = field(default_factory=dict)
    scanner: Counter[str] = field(default_factory=Counter)
    upload_id: str | None = None

    @property
    def total(self) -> int:
        return sum(self.product.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "profile": self.profile,
            "total": self.total,
            "product": dict(sorted(self.product.items())),
            "byFunction": {name: dict(sorted(c.items())) for name, c in sorted(self.by_function.items())},
            "scanner": dict(sorted(self.scanner.items())),
            "uploadId": self.upload_id,
        }


class Counting:
    """The stack's request counter, and the harness's quiet ways to wait."""

    def __init__(self, stack: Stack) -> None:
        import boto3

        self.stack = stack
        self.url = stack.info["emulatorUrl"] + "/_local/requests"
        session = boto3.session.Session(
            aws_access_key_id=OBSERVER, aws_secret_access_key="local", region_name=stack.info["region"]
        )
        endpoint = stack.info["emulatorUrl"]
        self.ddb = session.client("dynamodb", endpoint_url=endpoint)
        self.sqs = session.client("sqs", endpoint_url=endpoint)
        self.api = requests.Session()
        self.s3 = requests.Session()

    def reset(self) -> None:
        requests.delete(self.url, timeout=10).raise_for_status()

    def counts(self) -> list[dict[str, Any]]:
        reply = requests.get(self.url, timeout=10)
        reply.raise_for_status()
        return list(reply.json()["requests"])

    def record(self, upload_id: str) -> dict[str, Any]:
        reply = self.ddb.get_item(
            TableName=self.stack.info["uploadsTable"], Key={"pk": {"S": f"upload#{upload_id}"}}, ConsistentRead=True
        )
        return dict(reply.get("Item") or {})

    def announced(self, upload_id: str) -> bool:
        """Whether the upload's outcome event reached the bus (the event tap wrote it down)."""
        kinds = ("Upload Processed", "Upload Rejected")
        return any(
            e.get("detail", {}).get("uploadId") == upload_id and e.get("detail-type") in kinds
            for e in self.stack.events()
        )

    def queue_empty(self) -> bool:
        """No message anywhere (the ingest queue, the scanner's, the event tap's): nothing in flight."""
        for url in self.sqs.list_queues().get("QueueUrls", []):
            if url == self.stack.info["deadLetterQueueUrl"]:
                continue
            attributes = self.sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
            if any(int(value) for value in attributes.values()):
                return False
        return True

    def wait_final(self, upload_id: str, timeout: float = 60) -> dict[str, Any]:
        """The record once final with its event announced, then the stack idle."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            item = self.record(upload_id)
            if item.get("status", {}).get("S") in ("PROCESSED", "REJECTED") and self.announced(upload_id):
                self.wait_idle(deadline)
                return item
            time.sleep(0.05)
        raise RuntimeError(f"upload {upload_id} not final after {timeout}s: {self.record(upload_id)}")

    def wait_idle(self, deadline: float, settle: float = 1.0) -> None:
        """Until the ingest queue is empty and no function made a request for ``settle`` seconds."""
        last: list[dict[str, Any]] | None = None
        while time.monotonic() < deadline:
            now = [c for c in self.counts() if c["principal"] in WATCHED and c["operation"] != "ReceiveMessage (empty)"]
            if now == last and self.queue_empty():
                return
            last = now
            time.sleep(settle)
        raise RuntimeError("the stack did not go idle")

    def measure(self, scenario: str, profile: str | None, run: Callable[[], str | None]) -> Count:
        from local.request_log import EMPTY_RECEIVE

        self.wait_idle(time.monotonic() + 60)
        self.reset()
        upload_id = run()
        self.wait_idle(time.monotonic() + 60)
        count = Count(scenario, profile, upload_id=upload_id)
        for entry in self.counts():
            name = f"{entry['service']}:{entry['operation']}"
            if entry["operation"] == EMPTY_RECEIVE:
                continue
            if entry["principal"] in PRODUCT:
                count.product[name] += entry["count"]
                count.by_function.setdefault(entry["principal"], Counter())[name] += entry["count"]
            elif entry["principal"] == SCANNER:
                count.scanner[name] += entry["count"]
        return count

    # what a client does
    def issue(self, profile: str, filename: str, content_type: str, size: int) -> dict[str, Any]:
        body: dict[str, Any] = {"profile": profile, "filename": filename, "contentType": content_type, "size": size}
        reply = self.api.post(f"{self.stack.url}/uploads", json=body, timeout=30)
        if reply.status_code != 201:
            raise RuntimeError(f"POST /uploads answered {reply.status_code}: {reply.text[:300]}")
        issued: dict[str, Any] = reply.json()
        return issued

    def post(self, issued: dict[str, Any], data: bytes, filename: str) -> None:
        files = {"file": (filename, data, issued["fields"]["Content-Type"])}
        reply = self.s3.post(issued["url"], data=issued["fields"], files=files, timeout=60)
        if reply.status_code not in (200, 201, 204):
            raise RuntimeError(f"S3 answered {reply.status_code}: {reply.text[:300]}")

    def status(self, upload_id: str) -> dict[str, Any]:
        reply = self.api.get(f"{self.stack.url}/uploads/{upload_id}", timeout=30)
        reply.raise_for_status()
        answer: dict[str, Any] = reply.json()
        return answer

    def single_part(self, profile: str, filename: str, content_type: str, data: bytes) -> str:
        """Issue, POST, processed (promotion included), one status read."""
        issued = self.issue(profile, filename, content_type, len(data))
        self.post(issued, data, filename)
        self.wait_final(issued["uploadId"])
        if self.status(issued["uploadId"])["status"] != "PROCESSED":
            raise RuntimeError(f"{profile} upload {issued['uploadId']} was not processed")
        return str(issued["uploadId"])

    def multipart(self, data: bytes) -> str:
        """Issue, sign the parts in one call, PUT them, complete, processed, one status read."""
        issued = self.issue("video", "clip.mp4", "video/mp4", len(data))
        upload_id, plan = issued["uploadId"], issued["multipart"]
        numbers = list(range(1, plan["partCount"] + 1))
        reply = self.api.post(f"{self.stack.url}/uploads/{upload_id}/parts", json={"partNumbers": numbers}, timeout=30)
        reply.raise_for_status()
        parts = []
        for part in reply.json()["parts"]:
            n = part["partNumber"]
            chunk = data[(n - 1) * plan["partSize"] : n * plan["partSize"]]
            put = self.s3.put(part["url"], data=chunk, timeout=120)
            put.raise_for_status()
            parts.append({"partNumber": n, "etag": put.headers["ETag"]})
        reply = self.api.post(f"{self.stack.url}/uploads/{upload_id}/complete", json={"parts": parts}, timeout=60)
        if reply.status_code != 200:
            raise RuntimeError(f"complete answered {reply.status_code}: {reply.text[:300]}")
        self.wait_final(upload_id)
        if self.status(upload_id)["status"] != "PROCESSED":
            raise RuntimeError(f"video upload {upload_id} was not processed")
        return str(upload_id)

    def download(self, upload_id: str) -> str:
        reply = self.api.get(f"{self.stack.url}/uploads/{upload_id}/download", timeout=30)
        if reply.status_code != 200 or "url" not in reply.json():
            raise RuntimeError(f"download answered {reply.status_code}: {reply.text[:300]}")
        return upload_id

    def list_page(self) -> None:
        reply = self.api.get(f"{self.stack.url}/uploads", params={"limit": 20}, timeout=30)
        if reply.status_code != 200 or not reply.json().get("items"):
            raise RuntimeError(f"GET /uploads answered {reply.status_code}: {reply.text[:300]}")


def count_scenarios(stack: Stack, scenarios: tuple[str, ...] = SCENARIOS) -> dict[str, Count]:
    counting = Counting(stack)
    # warm every function (imports, clients, connections) and give the owner a first upload, so
    # the counts are of the steady state, not of a container's or an owner's first request
    counting.single_part("avatar", "warm.png", "image/png", png())
    counting.single_part("file-unscanned", "warm.txt", "text/plain", b"warm\n" * 200)
    out: dict[str, Count] = {}
    image_id: list[str] = []

    def image() -> str:
        image_id.append(counting.single_part("avatar", "avatar.png", "image/png", png()))
        return image_id[-1]

    def scanned_file() -> str:
        upload_id = counting.single_part("file", "notes.txt", "text/plain", b"a note\n" * 150)
        time.sleep(SCAN_TIMEOUT + 2)  # its deadline check comes back after the outcome: counted too
        return upload_id

    runs: dict[str, tuple[str | None, Callable[[], str | None]]] = {
        "image": ("avatar", image),
        "file": ("file", scanned_file),
        "file-unscanned": (
            "file-unscanned",
            lambda: counting.single_part("file-unscanned", "notes.txt", "text/plain", b"a note\n" * 150),
        ),
        "video": ("video", lambda: counting.multipart(mp4(2 * 16 * MiB + 1024))),
        "download": ("avatar", lambda: counting.download(image_id[-1] if image_id else image())),
        "list": (None, counting.list_page),
    }
    for name in scenarios:
        profile, run = runs[name]
        if name == "download" and not image_id:
            image()
        out[name] = counting.measure(name, profile, run)
    return out


DESCRIPTIONS = {
    "image": "single-part image (avatar PNG, no scan): issue, POST, processed (thumbnail, promotion), one status read",
    "file": f"single-part generic file (file, 1 KiB, malware scan required, deadline {SCAN_TIMEOUT} s): "
    "issue, POST, scanned, processed, one status read",
    "file-unscanned": "the same generic file without the scan (file profile, scan off)",
    "video": "multipart video, 3 parts (video, 32 MiB + 1 KiB): issue, one parts call, 3 part PUTs, complete, "
    "processed, one status read",
    "download": "GET /uploads/{id}/download of a processed image",
    "list": "GET /uploads?limit=20",
}


def figures_of(counts: dict[str, Count]) -> list[Figure]:
    figures = []
    for name, count in counts.items():
        target = Target("value", "<=", IMAGE_TARGET) if name == "image" else None
        notes = DESCRIPTIONS[name]
        if count.scanner:
            notes += f"; the scanner (GuardDuty on AWS) adds {sum(count.scanner.values())}"
        figures.append(
            Figure(
                f"AWS requests: {name}",
                "requests",
                [float(count.total)],
                [float(count.total)],
                target,
                notes=notes,
                baseline_name="(a count: no baseline)",
                details=count.as_json(),
            )
        )
    return figures


def measure_request_counts(
    *, scenarios: tuple[str, ...] = SCENARIOS, progress: Callable[[str], None] = lambda _: None
) -> tuple[list[Figure], dict[str, Any]]:
    with counting_stack() as stack:
        progress("request counts: stack up")
        counts = count_scenarios(stack, scenarios)
    for name, count in counts.items():
        progress(f"request counts: {name} {count.total} ({dict(count.product)})")
    return figures_of(counts), {name: count.as_json() for name, count in counts.items()}


COUNTS = Path(__file__).with_name("request_counts.json")


def load_counts(path: Path = COUNTS) -> dict[str, Any]:
    """The counts `make request-counts` wrote (bench/request_counts.json), per scenario."""
    data: dict[str, Any] = json.loads(path.read_text())
    return dict(data["scenarios"])


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.request_counts [--write]`: count every scenario on a fresh local stack,
    print the counts, and with --write keep them in bench/request_counts.json (what `make cost`
    and the docs' request table read). The counts do not depend on the machine's load."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.request_counts", description=main.__doc__)
    parser.add_argument("--write", action="store_true", help=f"write {COUNTS.name}")
    args = parser.parse_args(argv)
    _, evidence = measure_request_counts(progress=lambda m: print(m, file=sys.stderr, flush=True))
    kept = {name: {k: v for k, v in count.items() if k != "uploadId"} for name, count in evidence.items()}
    text = json.dumps({"scenarios": kept, "descriptions": DESCRIPTIONS}, indent=2, sort_keys=True) + "\n"
    if args.write:
        COUNTS.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
