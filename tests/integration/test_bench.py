"""The benchmarks measure the real thing: each subject is checked for what it must have done (an
upload record and a presigned POST, every byte read with the right SHA-256, a processed upload),
never for how fast it did it."""

from __future__ import annotations

import hashlib
import io
import json
import math
from typing import Any

import pytest

from bench.emulator import deploy
from local.harness import client
from tests.support.template import record_key

MiB = 1024 * 1024


def record(deployment: Any, upload_id: str) -> dict[str, Any]:
    reply = client("dynamodb", deployment.endpoint).get_item(
        TableName=deployment.table, Key=record_key(upload_id), ConsistentRead=True
    )
    return dict(reply.get("Item") or {})


def test_request_overhead_subject_issues_real_uploads_with_quota_bookkeeping(moto_server: str) -> None:
    from bench.api_overhead import measure_request_overhead

    deployment = deploy(moto_server)
    figures, subject = measure_request_overhead(deployment, repeats=1, pairs=4, variants=("on",))

    assert [f.name for f in figures][:2] == [
        "request overhead p50 (quotas on, the default)",
        "request overhead p99 (quotas on, the default)",
    ]
    assert all(len(f.subject) == len(f.baseline) == 1 and f.value > 0 and math.isfinite(f.ratio) for f in figures)
    last = subject.issued[-1]
    assert last.status == 201
    issued = last.payload
    assert issued["method"] == "POST" and issued["key"] == f"incoming/{issued['uploadId']}/notes.txt"
    assert {"policy", "x-amz-signature", "x-amz-credential", "key"} <= set(issued["fields"])
    item = record(deployment, issued["uploadId"])
    assert item["status"]["S"] == "PENDING" and item["owner"]["S"] == "anonymous"
    # the product's quota bookkeeping ran: the owner's bytes for today are counted somewhere
    ddb = client("dynamodb", deployment.endpoint)
    items = ddb.scan(TableName=deployment.table)["Items"]
    counted = [i for i in items if not i["pk"]["S"].startswith("upload#") and "bytes" in i]
    assert counted and sum(int(i["bytes"]["N"]) for i in counted) >= 4 * 1024


def test_request_overhead_variants_issue_real_uploads(moto_server: str) -> None:
    from bench.api_overhead import measure_request_overhead

    deployment = deploy(moto_server)
    figures, subject = measure_request_overhead(deployment, repeats=1, pairs=4, variants=("on", "off"))

    assert [f.name for f in figures] == [
        "request overhead p50 (quotas on, the default)",
        "request overhead p99 (quotas on, the default)",
        "request overhead p50, quotas off (attribution)",
    ]
    assert all(f.value > 0 for f in figures)
    assert record(deployment, subject.issued[-1].payload["uploadId"])["status"]["S"] == "PENDING"
    owner = client("dynamodb", deployment.endpoint).get_item(
        TableName=deployment.table, Key={"pk": {"S": "owner#anonymous"}}
    )["Item"]
    assert "open" in owner and int(owner["bytes"]["N"]) >= 1024  # the transaction counted on the owner's item
    assert all(record(deployment, i.payload["uploadId"])["status"]["S"] == "PENDING" for i in subject.issued)


def test_size_independence_issues_a_5_gib_multipart_plan_and_a_1_kib_post(moto_server: str) -> None:
    from bench.api_overhead import measure_size_independence

    deployment = deploy(moto_server)
    figures, subject = measure_size_independence(deployment, repeats=1, pairs=2)

    assert len(figures) == 1 and figures[0].passed is not None
    answers = [i.payload for i in subject.issued]
    plans = [a["multipart"] for a in answers if "multipart" in a]
    assert plans and plans[0] == {"partSize": 16 * MiB, "partCount": math.ceil(5 * 1024 * MiB / (16 * MiB))}
    assert any(a.get("method") == "POST" for a in answers)
    multipart = next(a for a in answers if "multipart" in a)
    made = record(deployment, multipart["uploadId"])
    assert made["multipart"] == {"BOOL": True} and made["part_count"] == {"N": "320"}
    assert "s3_upload_id" not in made  # S3's multipart upload waits for the first parts call


def test_cold_start_workers_serve_real_requests(moto_server: str) -> None:
    from bench.cold_start import measure_cold_start
    from directupload.store import UploadStore

    deployment = deploy(moto_server)
    figures, evidence = measure_cold_start(deployment, repeats=1)

    assert [len(f.subject) for f in figures] == [1, 1, 1, 1]
    # each target figure is followed by its floor: the same work in a minimal handler on the stack
    assert [f.target is not None for f in figures] == [True, False, True, False]
    assert record(deployment, evidence["api"]["lastUploadId"])["status"]["S"] == "PENDING"
    assert record(deployment, evidence["api"]["floorUploadId"])["status"]["S"] == "PENDING"
    store = UploadStore(deployment.table, client("dynamodb", deployment.endpoint))
    processed = [store.get(u) for u in evidence["processor"]["processedUploadIds"]]
    assert processed and all(r is not None and r.status.value == "PROCESSED" for r in processed)
    modules = [m["module"] for m in evidence["api"]["importtime"]["heaviest"]]
    assert modules[0] == "handlers.api"
    # the handlers pause the garbage collector while they start (handlers/__init__.py): fewer
    # passes than bare boto3 makes, though they import far more
    for figure in (figures[0], figures[2]):
        assert max(figure.details["subjectGcPasses"]) < min(figure.details["baselineGcPasses"])


def test_streaming_subject_reads_every_byte_and_its_sha256_matches() -> None:
    from bench.streaming import Generated, measure_streaming

    size = 6 * MiB + 123
    # two repeats: each processor run promotes its object out of incoming/, the next needs it back
    figures, evidence = measure_streaming(size=size, repeats=2)

    expected = hashlib.sha256(io.BufferedReader(Generated(size)).read()).hexdigest()
    assert evidence["big"]["sha256"] == expected

    def named(start: str) -> Any:
        [figure] = [f for f in figures if f.name.startswith(start)]
        return figure

    throughput = named("streaming: verify 6 MiB (SHA-256 + sniff)")
    # each run promoted its object: a copy made (started beside the read), then waited for
    assert len(throughput.details["copySeconds"]) == 2 and all(s > 0 for s in throughput.details["copySeconds"])
    assert all(s >= 0 for s in throughput.details["promoteSeconds"])
    for facts in throughput.details["records"]:
        assert facts == {"status": "PROCESSED", "sha256": expected, "size": size, "bytesRead": size}
    # the baseline that pays the emulator's copy too read the same object (the worker checks every byte)
    copied = named("streaming: verify 6 MiB, against the same GET and the same promotion copy")
    assert len(copied.baseline) == 2 and all(rate > 0 for rate in copied.baseline)
    # the same handler with the copy made after the hash verified and promoted the same bytes
    sequential = named("streaming: verify 6 MiB, promotion copy beside the hash against after it")
    assert all(s > 0 for s in sequential.details["copySeconds"])
    for facts in sequential.details["records"]:
        assert facts == {"status": "PROCESSED", "sha256": expected, "size": size, "bytesRead": size}
    assert all(growth >= 0 for growth in named("streaming: processor peak memory growth").subject)
    # the same bytes posted with their SHA-256 declared: S3 verified it, the processor read the head
    trusted = named("streaming: Lambda-seconds per GiB verified")
    assert evidence["verified"]["sha256"] == expected
    for facts in trusted.details["records"]:
        assert facts == {"status": "PROCESSED", "sha256": expected, "size": size, "bytesRead": 8192}
    assert trusted.details["bytesRead"] == {"process": [size, size], "trusted": [8192, 8192]}


class _Body:
    def __init__(self, chunks: list[bytes], fail_after: int | None = None) -> None:
        self.chunks = chunks
        self.fail_after = fail_after
        self.closed = False

    def iter_chunks(self, size: int) -> Any:
        for i, chunk in enumerate(self.chunks):
            if self.fail_after is not None and i == self.fail_after:
                raise ConnectionError("reset by peer")
            yield chunk

    def close(self) -> None:
        self.closed = True


class _S3:
    def __init__(self, body: _Body) -> None:
        self.body = body

    def get_object(self, **_: Any) -> dict[str, Any]:
        return {"Body": self.body}


def test_the_read_ahead_the_streaming_figure_measures_yields_every_chunk_in_order() -> None:
    """Storage.stream reads ahead in a thread (the streaming benchmark's subject): the same chunks
    in order, what reading raised raised to the reader, and no hung thread when the reader stops."""
    from directupload.storage import Storage

    chunks = [bytes([i]) * 1000 for i in range(50)]
    body = _Body(chunks)
    assert list(Storage("b", _S3(body)).stream("k")) == chunks
    assert body.closed

    failing = _Body(chunks, fail_after=7)
    got = []
    with pytest.raises(ConnectionError):
        for chunk in Storage("b", _S3(failing)).stream("k"):
            got.append(chunk)
    assert got == chunks[:7] and failing.closed

    early = _Body(chunks)
    stream = Storage("b", _S3(early)).stream("k")
    assert next(stream) == chunks[0]
    stream.close()  # type: ignore[attr-defined]  # a generator; the reader stops early: the pump must not hang
    assert early.closed


@pytest.mark.slow
def test_end_to_end_and_client_run_against_the_real_local_stack() -> None:
    from bench.client_upload import measure_client
    from bench.end_to_end import measure_end_to_end

    figures, evidence = measure_end_to_end(repeats=1, latency_count=2, seconds=1.5)
    assert len(evidence["uploadIds"]) == len(evidence["scannedUploadIds"]) == 2
    # uploads did complete end to end (each latency sample waited for PROCESSED), the headline's
    # without a scan, the informational ones scanned; how many of the throughput run's fit in its
    # short window depends on the machine's load, so only that it ran
    records = {r["uploadId"]: r for r in evidence["records"]}
    assert {(r["profile"], r["status"]) for r in evidence["records"]} == {
        ("file-unscanned", "PROCESSED"),
        ("file", "PROCESSED"),
    }
    assert all(records[i]["file_key"].startswith(f"files/{i}/") for i in records)  # promoted
    # the scanner (GuardDuty's stand-in) scanned the scanned profile's uploads and none of the others
    served = evidence["requestsServedPerUpload"]
    assert served["scanned"][0].get("guardduty", 0) > 0 and "guardduty" not in served["stack"][0]
    assert all(f.value > 0 for f in figures if "p50" in f.name or "p95" in f.name)
    # the by-hand baseline made the committed counts' requests, every one, for every cycle it ran
    by_hand = evidence["byHand"]
    assert by_hand["requestsPerUpload"] == sum(by_hand["mix"].values()) > 0
    assert by_hand["promoted"] == by_hand["cycles"] * by_hand["mix"]["s3:CopyObject"]
    assert all(
        run["bench-by-hand"] == by_hand["requestsPerUpload"] for run in evidence["requestsServedPerUpload"]["mix"]
    )
    # its DynamoDB and EventBridge requests were the product's own, replayed: the committed counts'
    # kinds, and the replayed writes took its last upload where the product's took theirs
    assert set(by_hand["replayed"]) == {name for name in by_hand["mix"] if name.startswith(("dynamodb:", "events:"))}
    assert by_hand["replayed"]["dynamodb:UpdateItem"] == by_hand["mix"]["dynamodb:UpdateItem"]
    assert by_hand["lastRecord"]["status"] == "PROCESSED"
    assert by_hand["lastRecord"]["pending_event"] == "Upload Processed"
    assert by_hand["lastRecord"]["owner"].startswith("bench-")
    # where the CPU went: the emulator worked in every run, the product's functions only in the product's
    product, mix = evidence["cpu"]["perRepeat"]["stack"][0], evidence["cpu"]["perRepeat"]["mix"][0]
    assert product["cpuSeconds"]["emulator (moto, one process)"] > 0 and product["cpuSeconds"]["ApiFunction"] > 0
    assert mix["cpuSeconds"].get("ApiFunction", 0) < product["cpuSeconds"]["ApiFunction"]
    assert sum(product["shares"].values()) == pytest.approx(1, abs=0.01)

    figures, evidence = measure_client(size=20 * MiB, repeats=1)
    (processed,) = evidence["records"]
    assert processed["status"] == "PROCESSED" and processed["size"] == 20 * MiB
    assert all(f.value > 0 for f in figures)
    # the checksums' own cost, each measured over the file (moto's builder at complete, the client's)
    costs = figures[0].details["checksumSeconds"]
    assert {side: sorted(c) for side, c in costs.items()} == {
        "emulatorComplete": ["CRC32", "SHA256"],
        "client": ["CRC32", "SHA256"],
    }
    assert all(seconds > 0 for c in costs.values() for seconds in c.values())
    json.dumps([f.as_json() for f in figures])


def _without_event_source(counts: dict[str, int]) -> dict[str, int]:
    """The counts less the event source's receives and deletes (one per batch: how the messages of
    an upload share batches depends on when they arrive, not on the product)."""
    return {k: v for k, v in counts.items() if k not in ("sqs:ReceiveMessage", "sqs:DeleteMessageBatch")}


@pytest.mark.slow
def test_request_counts_are_the_products_own_for_a_processed_image() -> None:
    """One avatar PNG through the local stack: each request the functions' roles made, exactly
    (they do not depend on load), for an upload that really was processed and can be downloaded."""
    from bench.request_counts import COUNTS, count_scenarios, counting_stack, load_counts

    with counting_stack() as stack:
        counts = count_scenarios(stack, ("image", "download", "list"))
        image = counts["image"]
        assert image.upload_id is not None
        item = client("dynamodb", stack.info["emulatorUrl"]).get_item(
            TableName=stack.info["uploadsTable"], Key=record_key(image.upload_id), ConsistentRead=True
        )["Item"]
    assert item["status"]["S"] == "PROCESSED" and "thumbnail" in item["variants"]["S"]
    assert item["file_key"]["S"].startswith(f"files/{image.upload_id}/")  # promoted

    assert image.by_function["ApiFunction"] == {
        "dynamodb:TransactWriteItems": 1,  # the quota's reservation and the record, together
        "s3:PostObject": 1,  # the client's POST, with the API's grant
        "dynamodb:GetItem": 1,  # the one status read
    }
    assert _without_event_source(image.by_function["ProcessFunction"]) == {
        "dynamodb:UpdateItem": 2,  # the claim, the outcome (which names its event and gives the claim up)
        "s3:GetObject": 1,  # the claimed version, If-Match
        "s3:PutObject": 1,  # the thumbnail
        "s3:CopyObject": 1,  # the promotion to files/
        "s3:DeleteObject": 1,  # the staging copy
    }
    assert image.by_function["PublishFunction"] == {"events:PutEvents": 1}  # Upload Processed, from the stream
    assert image.total <= 12
    batches = image.product["sqs:ReceiveMessage"]
    assert image.product["sqs:DeleteMessageBatch"] == batches == 1
    assert image.scanner == {}  # a profile without a scan is staged where the scanner does not look
    assert counts["download"].product == {"dynamodb:GetItem": 1}
    assert counts["list"].product == {"dynamodb:Query": 1}
    # the committed counts (make request-counts) are these
    committed = load_counts(COUNTS)["image"]
    assert _without_event_source(committed["product"]) == _without_event_source(dict(image.product))


def test_read_side_subjects_sign_a_working_download_and_list_the_owners_newest_page(moto_server: str) -> None:
    import requests

    from bench.read_side import CONTENT, SIZES, measure_read_side

    deployment = deploy(moto_server)
    figures, evidence = measure_read_side(deployment, repeats=1, pairs=2)

    assert [f.target is not None for f in figures] == [True, True, False, False]
    assert all(f.value > 0 and math.isfinite(f.ratio) for f in figures)
    assert requests.get(evidence["download"], timeout=10).content == CONTENT  # the presigned GET works
    page = evidence["lastPage"]  # the last owner's: the one with the most uploads
    assert len(page["items"]) == 20 and page["nextCursor"]
    created = [item["createdAt"] for item in page["items"]]
    assert created == sorted(created, reverse=True)  # newest first
    assert max(SIZES) == 1000
