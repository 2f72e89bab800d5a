"""The malware scan gate: nothing is PROCESSED, and so downloadable, without a clean verdict of the
scanner on exactly its bytes. The verdicts are real ClamAV scans (local/scanner.py, with the
project's EICAR signature) in GuardDuty's event shape, handled by the real ProcessFunction."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.conftest import Api, delivered_events, fail_calls, post_to_s3
from tests.support.processing import current_etag, deliver_verdict, handle, process, scan_verdict
from tests.support.template import max_receive_count, record_key

# GuardDuty's documented example of a scan result event (monitor-with-eventbridge-s3-malware-protection)
GUARDDUTY_EVENT = {
    "version": "0",
    "id": "a1bd61a9-8f5b-bd90-d03f-d02c44de7978",
    "detail-type": "GuardDuty Malware Protection Object Scan Result",
    "source": "aws.guardduty",
    "account": "123456789012",
    "time": "2024-10-29T20:40:58Z",
    "region": "ca-central-1",
    "resources": ["arn:aws:guardduty:ca-central-1:123456789012:malware-protection-plan/24c96cfb217c338fc3df"],
    "detail": {
        "schemaVersion": "1.0",
        "scanStatus": "COMPLETED",
        "resourceType": "S3_OBJECT",
        "s3ObjectDetails": {
            "bucketName": "bucketName",
            "objectKey": "incoming/0123456789abcdef0123456789abcdef/a.txt",
            "eTag": "6ee985bd6f65dc90bb7896a94fe9adb0",
            "versionId": "NpeIP.i5R7OBO0bChPbGTmSsym5UohWS",
            "s3Throttled": False,
        },
        "scanResultDetails": {"scanResultStatus": "THREATS_FOUND", "threats": [{"name": "foobar"}]},
    },
}
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def issue(api: Api, data: bytes, filename: str = "notes.txt", content_type: str = "text/plain") -> dict[str, Any]:
    status, issued, _ = api.call(
        "POST", "/uploads", {"profile": "file", "filename": filename, "contentType": content_type, "size": len(data)}
    )
    assert status == 201, issued
    return issued


def send(api: Api, data: bytes, filename: str = "notes.txt") -> dict[str, Any]:
    issued = issue(api, data, filename)
    assert post_to_s3(issued, data, filename).status_code == 204
    return issued


def scanning(aws: Any, api: Api, data: bytes) -> tuple[dict[str, Any], str]:
    """An upload sent and its S3 notification handled: it waits for its malware scan. The upload
    and the version (ETag) the scanner is to scan."""
    issued = send(api, data)
    etag = current_etag(aws, issued["key"])
    assert etag is not None
    process(aws, issued["key"], len(data), scan=False)
    return issued, etag


def deadline_passed(aws: Any, upload_id: str) -> None:
    """Play the clock forward: the upload's scan deadline is in the past."""
    aws.dynamodb.update_item(
        TableName=aws.env["UPLOADS_TABLE"],
        Key=record_key(upload_id),
        UpdateExpression="SET scan_deadline = :past",
        ExpressionAttributeValues={":past": {"S": "2020-01-01T00:00:00+00:00"}},
    )


def status_of(api: Api, upload_id: str) -> dict[str, Any]:
    return api.call("GET", f"/uploads/{upload_id}")[1]


def test_a_clean_file_waits_for_its_verdict_unreadable_then_is_processed(aws: Any, api: Api) -> None:
    data = b"quarterly numbers, nothing else\n"
    issued = send(api, data)
    etag = current_etag(aws, issued["key"])
    assert etag is not None

    # S3's notification alone: the upload waits, and nothing of it can be read
    process(aws, issued["key"], len(data), scan=False)
    assert status_of(api, issued["uploadId"])["status"] == "SCANNING"
    assert api.call("GET", f"/uploads/{issued['uploadId']}/download")[0] == 409
    assert delivered_events(aws) == []
    # its deadline check is scheduled on the queue, delayed until the profile's scan timeout
    attributes = aws.sqs.get_queue_attributes(
        QueueUrl=aws.resources.ingest_queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    assert int(attributes["ApproximateNumberOfMessagesDelayed"]) >= 1

    # the scanner's clean verdict on exactly that version: verified, promoted, announced once
    deliver_verdict(aws, issued["key"], etag)
    record = status_of(api, issued["uploadId"])
    assert record["status"] == "PROCESSED", record
    status, download, _ = api.call("GET", f"/uploads/{issued['uploadId']}/download")
    assert status == 200
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Processed"]

    # the same verdict again (EventBridge delivers at least once), and S3's notification again,
    # change nothing
    deliver_verdict(aws, issued["key"], etag, status="NO_THREATS_FOUND")
    process(aws, issued["key"], len(data), etag=etag, scan=False)
    assert status_of(api, issued["uploadId"])["status"] == "PROCESSED"
    assert delivered_events(aws) == []
    assert download["sha256"] == record["sha256"]


def test_the_eicar_test_file_is_rejected_as_malware_and_quarantined(aws: Any, api: Api) -> None:
    issued = send(api, EICAR, "eicar.txt")

    process(aws, issued["key"], len(EICAR))  # the notification, then ClamAV's real verdict

    record = status_of(api, issued["uploadId"])
    assert record["status"] == "REJECTED"
    assert record["error"]["code"] == "malware"
    assert record["error"]["threats"] == ["Test.EICAR.Body.UNOFFICIAL"]
    quarantined = f"quarantine/{issued['uploadId']}/{issued['key'].rsplit('/', 1)[1]}"
    assert aws.s3.get_object(Bucket=aws.bucket, Key=quarantined)["Body"].read() == EICAR
    assert aws.s3.list_objects_v2(Bucket=aws.bucket, Prefix=issued["key"])["KeyCount"] == 0
    assert api.call("GET", f"/uploads/{issued['uploadId']}/download")[0] == 409
    [event] = delivered_events(aws)
    assert event["detail-type"] == "Upload Rejected"
    assert event["detail"]["error"] == {
        "code": "malware",
        "message": "the malware scanner found Test.EICAR.Body.UNOFFICIAL",
        "threats": ["Test.EICAR.Body.UNOFFICIAL"],
    }


def test_a_verdict_that_arrives_before_the_notification_decides_and_the_notification_changes_nothing(
    aws: Any, api: Api
) -> None:
    data = b"arrived in the other order\n"
    issued = send(api, data)
    etag = current_etag(aws, issued["key"])
    assert etag is not None

    deliver_verdict(aws, issued["key"], etag)
    assert status_of(api, issued["uploadId"])["status"] == "PROCESSED"
    process(aws, issued["key"], len(data), etag=etag, scan=False)

    assert status_of(api, issued["uploadId"])["status"] == "PROCESSED"
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Processed"]


def test_a_clean_verdict_on_an_older_version_never_vouches_for_newer_bytes(aws: Any, api: Api) -> None:
    clean = b"the bytes that were scanned\n"
    issued = send(api, clean)
    first = current_etag(aws, issued["key"])
    process(aws, issued["key"], len(clean), scan=False)
    # the presigned POST sent again with other bytes of the same size before the verdict came
    other = b"THE BYTES THAT WERE SWAPPED\n"
    assert post_to_s3(issued, other).status_code == 204
    second = current_etag(aws, issued["key"])
    assert first and second and first != second

    deliver_verdict(aws, issued["key"], first, status="NO_THREATS_FOUND")
    assert status_of(api, issued["uploadId"])["status"] != "PROCESSED"  # not for these bytes

    process(aws, issued["key"], len(other), etag=second, sequencer="0000000000000002")  # + ClamAV's verdict
    record = status_of(api, issued["uploadId"])
    assert record["status"] == "PROCESSED"
    assert aws.s3.get_object(Bucket=aws.bucket, Key=record["key"])["Body"].read() == other
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Processed"]


@pytest.mark.parametrize(
    ("verdict", "code"),
    [("UNSUPPORTED", "scan-unsupported"), ("FAILED", "scan-failed"), ("ACCESS_DENIED", "scan-failed")],
)
def test_a_scan_that_could_not_be_made_rejects_the_file_never_serves_it(
    aws: Any, api: Api, verdict: str, code: str
) -> None:
    data = b"too big, encrypted or unreadable for the scanner\n"
    issued, etag = scanning(aws, api, data)

    deliver_verdict(aws, issued["key"], etag, status=verdict)

    record = status_of(api, issued["uploadId"])
    assert (record["status"], record["error"]["code"]) == ("REJECTED", code)
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Rejected"]


def test_no_verdict_by_the_deadline_rejects_and_the_next_upload_goes_through(aws: Any, api: Api) -> None:
    quiet = b"the scanner never answered for this one\n"
    silent = send(api, quiet)
    process(aws, silent["key"], len(quiet), scan=False)
    # the deadline check the processor scheduled (delayed on the queue), delivered once the
    # deadline passed: the clock is played forward on the record
    check = {"type": "directupload:scan-deadline", "bucket": aws.bucket, "key": silent["key"]}
    check["etag"] = current_etag(aws, silent["key"])
    deadline_passed(aws, silent["uploadId"])
    handle(check)

    record = status_of(api, silent["uploadId"])
    assert (record["status"], record["error"]["code"]) == ("REJECTED", "scan-timeout")
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Rejected"]

    # the scanner back: the next upload goes through
    data = b"scanned as soon as it came\n"
    issued = send(api, data)
    process(aws, issued["key"], len(data))
    assert status_of(api, issued["uploadId"])["status"] == "PROCESSED"


def test_a_verdict_for_an_upload_that_needs_no_scan_is_ignored(aws: Any, api: Api) -> None:
    from tests.integration.conftest import png

    data = png()
    _, issued, _ = api.call(
        "POST", "/uploads", {"profile": "avatar", "filename": "me.png", "contentType": "image/png", "size": len(data)}
    )
    assert post_to_s3(issued, data, "me.png").status_code == 204
    etag = current_etag(aws, issued["key"])
    assert etag is not None

    deliver_verdict(aws, issued["key"], etag, status="THREATS_FOUND", threats=("Not.Real",))
    assert status_of(api, issued["uploadId"])["status"] == "PENDING"  # the verdict decided nothing
    process(aws, issued["key"], len(data))
    assert status_of(api, issued["uploadId"])["status"] == "PROCESSED"


def test_the_processor_reads_guardduty_s_scan_result_as_a_verdict_on_one_exact_version(aws: Any) -> None:
    from handlers.processor import object_refs

    # (the documented sample, about a bucket of this stack: a verdict on any other bucket is dropped)
    event = json.loads(
        json.dumps(GUARDDUTY_EVENT).replace('"bucketName": "bucketName"', f'"bucketName": "{aws.bucket}"')
    )
    [ref] = object_refs(json.dumps(event))
    assert object_refs(json.dumps(GUARDDUTY_EVENT)) == []
    assert (ref.bucket, ref.key, ref.etag) == (
        aws.bucket,
        "incoming/0123456789abcdef0123456789abcdef/a.txt",
        "6ee985bd6f65dc90bb7896a94fe9adb0",
    )
    assert ref.verdict is not None and ref.verdict.status == "THREATS_FOUND" and ref.verdict.threats == ("foobar",)

    unnamed = json.loads(json.dumps(event))
    del unnamed["detail"]["s3ObjectDetails"]["eTag"]
    assert object_refs(json.dumps(unnamed)) == []  # a verdict on no exact version vouches for nothing


def test_bytes_sharing_the_scanned_bytes_md5_are_not_promoted_on_their_verdict(aws: Any, api: Api) -> None:
    from tests.conftest import ROOT

    first = (ROOT / "tests" / "corpus" / "md5-collision-a.bin").read_bytes()
    second = (ROOT / "tests" / "corpus" / "md5-collision-b.bin").read_bytes()
    issued = issue(api, first, "data.bin", "application/octet-stream")
    assert post_to_s3(issued, first, "data.bin").status_code == 204
    etag = current_etag(aws, issued["key"])
    process(aws, issued["key"], len(first), scan=False)
    # the scanner scans and tags the first bytes clean; before its verdict is handled, the POST is
    # sent again with other bytes of the same MD5, so the same ETag (a chosen-prefix collision)
    aws.s3.put_object_tagging(
        Bucket=aws.bucket,
        Key=issued["key"],
        Tagging={"TagSet": [{"Key": "GuardDutyMalwareScanStatus", "Value": "NO_THREATS_FOUND"}]},
    )
    assert post_to_s3(issued, second, "data.bin").status_code == 204
    assert current_etag(aws, issued["key"]) == etag

    assert etag is not None
    deliver_verdict(aws, issued["key"], etag, status="NO_THREATS_FOUND", tag=False)  # the first bytes' verdict

    assert status_of(api, issued["uploadId"])["status"] != "PROCESSED"
    assert aws.s3.list_objects_v2(Bucket=aws.bucket, Prefix="files/")["KeyCount"] == 0
    # the second bytes' own scan decides
    process(aws, issued["key"], len(second), etag=etag, sequencer="0000000000000002")
    record = status_of(api, issued["uploadId"])
    assert record["status"] == "PROCESSED"
    assert aws.s3.get_object(Bucket=aws.bucket, Key=record["key"])["Body"].read() == second


def delayed_checks(aws: Any) -> int:
    attributes = aws.sqs.get_queue_attributes(
        QueueUrl=aws.resources.ingest_queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessagesDelayed"])


def test_a_newer_version_that_takes_over_a_waiting_upload_gets_a_deadline_of_its_own(aws: Any, api: Api) -> None:
    from directupload import wiring

    older = b"the first bytes sent\n"
    issued = send(api, older)
    first = current_etag(aws, issued["key"])
    process(aws, issued["key"], len(older), scan=False)
    checks = delayed_checks(aws)
    newer = b"THE OTHER BYTES SENT\n"
    assert post_to_s3(issued, newer).status_code == 204
    second = current_etag(aws, issued["key"])
    assert first and second
    deliver_verdict(aws, issued["key"], first, status="NO_THREATS_FOUND")  # stands down: not these bytes

    process(aws, issued["key"], len(newer), etag=second, sequencer="0000000000000002", scan=False)

    record = wiring.store().get(issued["uploadId"])
    assert record is not None and record.status.value == "SCANNING" and record.scan_etag == second
    assert delayed_checks(aws) == checks + 1, "the newer version's deadline check was scheduled"


@pytest.mark.parametrize("first", ["notification", "verdict"])
def test_bytes_sent_again_while_the_first_wait_for_a_verdict_that_never_comes_are_scanned_and_processed(
    aws: Any, api: Api, first: str
) -> None:
    # Given the first bytes waiting for their scan, replaced at once by other bytes of the same size
    # (the presigned POST sent again): a scanner that finds the first bytes gone sends no verdict
    older = b"the first bytes sent\n"
    issued = send(api, older)
    process(aws, issued["key"], len(older), scan=False)
    newer = b"THE OTHER BYTES SENT\n"
    assert post_to_s3(issued, newer).status_code == 204
    second = current_etag(aws, issued["key"])
    assert second is not None

    # When the newer bytes' notification and their clean verdict come, in either order
    deliveries = [
        lambda: process(aws, issued["key"], len(newer), etag=second, sequencer="0000000000000002", scan=False),
        lambda: deliver_verdict(aws, issued["key"], second, status="NO_THREATS_FOUND"),
    ]
    for deliver in deliveries if first == "notification" else deliveries[::-1]:
        assert deliver() == {"batchItemFailures": []}  # neither waits on the first bytes' wait

    # Then the upload is PROCESSED with the newer bytes, and announced once
    record = status_of(api, issued["uploadId"])
    assert record["status"] == "PROCESSED"
    assert aws.s3.get_object(Bucket=aws.bucket, Key=record["key"])["Body"].read() == newer
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Processed"]


def test_a_deadline_check_that_could_not_be_sent_is_sent_by_the_retry(aws: Any, api: Api) -> None:
    data = b"a check that did not go out at first\n"
    issued = send(api, data)
    left = fail_calls("sqs", "SendMessage", 1)

    first = process(aws, issued["key"], len(data), scan=False)
    assert left == [0] and first["batchItemFailures"], "the notification is retried"
    assert delayed_checks(aws) == 0

    process(aws, issued["key"], len(data), receive_count=2, scan=False)
    assert delayed_checks(aws) == 1
    assert status_of(api, issued["uploadId"])["status"] == "SCANNING"


def record_of(aws: Any, upload_id: str) -> dict[str, Any]:
    return dict(aws.dynamodb.get_item(TableName=aws.resources.uploads_table, Key=record_key(upload_id))["Item"])


def a_release(params: dict[str, Any]) -> bool:
    return str(params.get("UpdateExpression")).startswith("REMOVE")


def handled_without_a_write(aws: Any, upload_id: str, deliver: Callable[[], dict[str, Any]]) -> None:
    """``deliver`` is handled (done with) and writes nothing: a claim it took could not stay
    behind (its release would be throttled, as it may be on AWS)."""
    before = record_of(aws, upload_id)
    fail_calls("dynamodb", "UpdateItem", 1, when=a_release)
    assert deliver() == {"batchItemFailures": []}
    assert record_of(aws, upload_id) == before, "nothing written, no claim taken"


def the_verdict_decides(aws: Any, api: Api, issued: dict[str, Any], etag: str) -> None:
    """The verdict's delivery, never held up by a claim left behind, processes the clean file."""
    assert deliver_verdict(aws, issued["key"], etag) == {"batchItemFailures": []}
    assert status_of(api, issued["uploadId"])["status"] == "PROCESSED"


def test_a_notification_delivered_again_while_its_version_waits_takes_no_claim_the_verdict_could_wait_on(
    aws: Any, api: Api
) -> None:
    data = b"notified twice\n"
    issued, etag = scanning(aws, api, data)
    checks = delayed_checks(aws)
    # S3 delivers the notification again (another message) while the version waits for its verdict
    handled_without_a_write(
        aws, issued["uploadId"], lambda: process(aws, issued["key"], len(data), etag=etag, id_prefix="twin", scan=False)
    )
    assert delayed_checks(aws) == checks + 1, "its deadline check is sent again"
    the_verdict_decides(aws, api, issued, etag)


def test_a_deadline_check_that_comes_early_takes_no_claim_and_comes_back_at_the_deadline(aws: Any, api: Api) -> None:
    data = b"checked too soon\n"
    issued, etag = scanning(aws, api, data)
    checks = delayed_checks(aws)
    check = {"type": "directupload:scan-deadline", "bucket": aws.bucket, "key": issued["key"], "etag": etag}
    handled_without_a_write(aws, issued["uploadId"], lambda: handle(check, id_prefix="early"))
    assert delayed_checks(aws) == checks + 1, "it comes back at the deadline"
    the_verdict_decides(aws, api, issued, etag)


def test_a_late_notification_of_a_failed_upload_writes_nothing_and_its_redriven_verdict_decides(
    aws: Any, api: Api
) -> None:
    data = b"failed, then redriven\n"
    issued, etag = scanning(aws, api, data)
    failing = fail_calls("s3", "GetObject", 100)
    assert deliver_verdict(aws, issued["key"], etag, receive_count=max_receive_count())["batchItemFailures"]
    assert status_of(api, issued["uploadId"])["status"] == "FAILED"
    failing[0] = 0

    handled_without_a_write(
        aws, issued["uploadId"], lambda: process(aws, issued["key"], len(data), etag=etag, id_prefix="late", scan=False)
    )
    assert status_of(api, issued["uploadId"])["status"] == "FAILED"
    the_verdict_decides(aws, api, issued, etag)  # the redriven verdict


def test_a_deadline_that_passes_while_a_clean_verdict_is_retried_decides_from_the_scanner_s_tag(
    aws: Any, api: Api
) -> None:
    data = b"scanned in time, processed late\n"
    issued, etag = scanning(aws, api, data)
    verdict = scan_verdict(aws, issued["key"], etag)  # the scanner answered (and tagged the object)
    fail_calls("s3", "CopyObject", 1)  # ... but handling its verdict fails once (a throttled copy)
    assert handle(verdict)["batchItemFailures"]

    # the deadline passes with the verdict still being retried (or lost): the tag decides, the
    # clock does not reject a file the scanner found clean, and nothing waits forever
    deadline_passed(aws, issued["uploadId"])
    check = {"type": "directupload:scan-deadline", "bucket": aws.bucket, "key": issued["key"], "etag": etag}
    assert not handle(check)["batchItemFailures"]
    record = status_of(api, issued["uploadId"])
    assert record["status"] == "PROCESSED"
    assert aws.s3.get_object(Bucket=aws.bucket, Key=record["key"])["Body"].read() == data

    handle(verdict, receive_count=2)
    assert status_of(api, issued["uploadId"])["status"] == "PROCESSED"
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Processed"]


def test_a_deadline_whose_verdict_event_was_lost_rejects_on_a_threat_tag(aws: Any, api: Api) -> None:
    data = b"its verdict event never came\n"
    issued, etag = scanning(aws, api, data)
    aws.s3.put_object_tagging(  # the scanner tagged what it found; its event was lost
        Bucket=aws.bucket,
        Key=issued["key"],
        Tagging={"TagSet": [{"Key": "GuardDutyMalwareScanStatus", "Value": "THREATS_FOUND"}]},
    )
    deadline_passed(aws, issued["uploadId"])
    check = {"type": "directupload:scan-deadline", "bucket": aws.bucket, "key": issued["key"], "etag": etag}
    assert not handle(check)["batchItemFailures"]
    record = status_of(api, issued["uploadId"])
    assert (record["status"], record["error"]["code"]) == ("REJECTED", "malware")
    assert aws.s3.list_objects_v2(Bucket=aws.bucket, Prefix="files/")["KeyCount"] == 0
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Rejected"]


def test_a_twin_of_the_verdict_changes_nothing_and_the_verdict_s_retry_finishes(aws: Any, api: Api) -> None:
    data = b"announced exactly once\n"
    issued, etag = scanning(aws, api, data)
    verdict = scan_verdict(aws, issued["key"], etag)
    twin = {**verdict, "id": "another-delivery-of-the-same-scan"}  # the scanner's result sent twice
    fail_calls("s3", "DeleteObject", 3)  # PROCESSED is written; the staging copy's removal fails every try
    assert handle(verdict)["batchItemFailures"]
    assert status_of(api, issued["uploadId"])["status"] == "PROCESSED"
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Processed"]

    assert handle(twin) == {"batchItemFailures": []}
    assert current_etag(aws, issued["key"]) == etag, "only the delivery that reached the outcome removes it"
    assert handle(verdict, receive_count=2) == {"batchItemFailures": []}
    assert current_etag(aws, issued["key"]) is None
    assert delivered_events(aws) == []


def test_the_verdict_that_reached_an_outcome_delivered_again_after_its_deletion_changes_nothing(
    aws: Any, api: Api
) -> None:
    from handlers import processor
    from local.lambda_runtime import LocalContext
    from tests.events import sqs_batch

    # Given an upload PROCESSED by its clean verdict, then deleted
    data = b"processed, then deleted\n"
    issued = send(api, data)
    etag = current_etag(aws, issued["key"])
    assert etag is not None
    process(aws, issued["key"], len(data), scan=False)
    verdict = scan_verdict(aws, issued["key"], etag)
    assert not processor.lambda_handler(sqs_batch(verdict), LocalContext("ProcessFunction", timeout_seconds=900))[
        "batchItemFailures"
    ]
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Processed"]
    api.call("DELETE", f"/uploads/{issued['uploadId']}")
    assert status_of(api, issued["uploadId"])["status"] == "DELETED"

    # When that verdict is delivered again
    reply = processor.lambda_handler(
        sqs_batch(verdict, receive_count=2), LocalContext("ProcessFunction", timeout_seconds=900)
    )

    # Then it is done with at once: no outcome event again, the deletion's once
    assert reply["batchItemFailures"] == []
    assert [e["detail-type"] for e in delivered_events(aws)] == ["Upload Deleted"]
    assert status_of(api, issued["uploadId"])["status"] == "DELETED"
