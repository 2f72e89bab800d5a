"""ProcessFunction: S3 ObjectCreated notifications (S3 -> SQS from the stack's own bucket, S3 ->
EventBridge -> SQS from existing buckets), delivered in SQS batches.

A record that raises is reported in ``batchItemFailures`` and SQS delivers it again after
a backoff this handler sets on the message (the IngestQueue's own visibility timeout is
6 x the 15-minute function timeout); on its last delivery (``MAX_RECEIVE_COUNT``, the
queue's maxReceiveCount) the upload is recorded FAILED and the message is made visible at
once, so SQS moves it to the dead-letter queue now rather than 90 minutes later. A file
that can never be accepted is not an error here: the pipeline records it REJECTED at once.
"""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes import S3EventBridgeNotificationEvent
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from directupload import aws, keys, snapstart, wiring
from directupload.config import get_settings
from directupload.observability import logger, metrics, tracer
from directupload.processing.pipeline import AwaitingScanError, ClaimHeldError, ObjectRef, ScanVerdict, still_holding
from directupload.queues import back_off
from directupload.store import holder
from handlers import ready

get_settings()  # validate the configuration at cold start
snapstart.register()  # with SnapStart on, what a restored copy must re-make

# A batch whose every record failed is still a partial response (all of them listed), not
# a function error: SQS retries it the same way, and the Errors alarm (a CodeDeploy rollback
# trigger in prod) stays for crashes and timeouts.
batch = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

# Retry n comes BACKOFF_BASE * 2**(n-1) seconds (+-20 %) after attempt n failed: with the
# default 5 receives the last attempt is about 5 minutes after the first, long enough for
# throttling or a brief outage to pass. A record whose upload another delivery holds (a twin, another
# version) waits 20, 80, 320, then 900 s: soon after a short attempt, and still before its last
# receive when the holder ran as long as a claim lives (CLAIM_LIFETIME, 20 minutes), or died.
BACKOFF_BASE = 20
# Time a record needs beyond its decoding budget (reads, copies, writes): after the first record
# of a batch, a record is not started with less left than both, so the function never times out
# mid-record (that would fail the whole batch); it goes back to the queue for another invocation.
# The first record always runs: a function configured with less time still makes progress.
RECORD_TIME_MARGIN_SECONDS = 60
_started = {"records": 0}  # records this invocation began (one invocation at a time per container)


class OutOfTimeError(RuntimeError):
    """Too little of the invocation is left to start this record: it is retried at once."""


SCAN_RESULT = "GuardDuty Malware Protection Object Scan Result"
OBJECT_CREATED = "Object Created"  # S3's EventBridge event for every way an object is written


class MalformedMessage(ValueError):
    """A message that names no object the way S3, EventBridge, GuardDuty or this stack write one.
    A retry reads it no better: it goes to the dead-letter queue at once (record_handler)."""


def _text(value: Any) -> str | None:
    """A string field as S3 writes it, or None for anything else (absent, another type, empty)."""
    return value if isinstance(value, str) and value else None


def _size(value: Any) -> int | None:
    """A byte count, or None for anything that is not a whole number of bytes."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _fields(value: Any) -> dict[str, Any]:
    """A nested object of a message, or an empty one for anything else."""
    return value if isinstance(value, dict) else {}


def _named(bucket: Any, key: Any, what: str) -> tuple[str, str]:
    if _text(bucket) is None or _text(key) is None:
        raise MalformedMessage(f"{what} without a bucket name and an object key")
    try:
        (bucket + key).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no S3 name is one
        raise MalformedMessage(f"{what} whose bucket or key is not UTF-8") from None
    return str(bucket), str(key)


def object_refs(body: str) -> list[ObjectRef]:
    """The objects an SQS message body speaks of: an object created in a bucket (S3's notification
    to the queue, or S3's EventBridge event), or the malware scanner's verdict on one staging
    version (GuardDuty's scan result, as EventBridge delivers it), or a scan deadline check.
    An object of a bucket this stack does not serve, or outside staging, is dropped: counted,
    logged, never processed and never retried (the message is done). A body that is none of these
    (not a JSON object, an object without its bucket or key) raises MalformedMessage; a field of
    the wrong type that processing can do without (size, ETag, sequencer, version) counts as absent."""
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):  # (nested deeper than the parser goes)
        raise MalformedMessage("the body is not JSON") from None
    if not isinstance(message, dict):
        raise MalformedMessage("the body is not a JSON object")
    if message.get("Event") == "s3:TestEvent":
        return []
    if message.get("detail-type") == SCAN_RESULT and message.get("source") == "aws.guardduty":
        refs = scan_verdict_refs(_fields(message.get("detail")), _text(message.get("id")))
    elif message.get("type") == SCAN_DEADLINE:
        bucket, key = _named(message.get("bucket"), message.get("key"), "a scan deadline check")
        etag = _text(message.get("etag"))
        if etag is None:
            raise MalformedMessage("a scan deadline check without the ETag of its version")
        check = _text(message.get("check"))  # this check's id: one delivery of its own
        refs = [ObjectRef(bucket=bucket, key=key, etag=etag, sequencer=check, deadline_check=True)]
    else:
        refs = created_object_refs(message)
    return [ref for ref in refs if _served(ref)]


def created_object_refs(message: dict[str, Any]) -> list[ObjectRef]:
    """ObjectCreated, in either shape S3 delivers it: an event notification (``Records[]``, S3 ->
    SQS; keys URL-encoded, ``+`` for a space) or an EventBridge event (``source: aws.s3``,
    ``detail-type: Object Created``; keys as they are)."""
    if message.get("source") == "aws.s3" and isinstance(message.get("detail"), dict):
        event = S3EventBridgeNotificationEvent(message)
        if event.detail_type != OBJECT_CREATED:
            return []
        obj = _fields(event.detail.get("object"))
        bucket, key = _named(_fields(event.detail.get("bucket")).get("name"), obj.get("key"), "an Object Created event")
        return [
            ObjectRef(
                bucket=bucket,
                key=key,  # not URL-encoded (powertools' .key would decode a '+' into a space)
                size=_size(obj.get("size")),
                etag=_text(obj.get("etag") or obj.get("eTag")),
                sequencer=_text(obj.get("sequencer")),
                version_id=_text(obj.get("version-id")),
            )
        ]
    records = message.get("Records")
    if not isinstance(records, list):
        raise MalformedMessage("neither an S3 notification nor an event this stack handles")
    refs = []
    for record in records:
        record = _fields(record)
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = _fields(record.get("s3"))
        obj = _fields(s3.get("object"))
        bucket, key = _named(_fields(s3.get("bucket")).get("name"), obj.get("key"), "an S3 notification")
        refs.append(
            ObjectRef(
                bucket=bucket,
                key=keys.key_from_event(key),
                size=_size(obj.get("size")),
                etag=_text(obj.get("eTag")),
                sequencer=_text(obj.get("sequencer")),
                version_id=_text(obj.get("versionId")),
            )
        )
    return refs


def _served(ref: ObjectRef) -> bool:
    """Whether the object is one this stack processes: in a configured bucket, under staging."""
    if ref.bucket in get_settings().buckets and ref.key.startswith(keys.INCOMING):
        return True
    reason = "unknown-bucket" if ref.bucket not in get_settings().buckets else "outside-staging"
    logger.warning("notification dropped", bucket=ref.bucket, key=ref.key[:200], reason=reason)
    metrics.add_metric(name="NotificationsDropped", unit="Count", value=1)
    return False


SCAN_DEADLINE = "directupload:scan-deadline"
# SQS delays a message by at most 15 minutes; a profile's scanTimeoutSeconds is at most that
MAX_DELAY_SECONDS = 900


def schedule_scan_deadline(ref: ObjectRef, seconds: int) -> None:
    """Send the check that ``ref``'s version got its verdict in time, due in ``seconds``."""
    body = {"type": SCAN_DEADLINE, "bucket": ref.bucket, "key": ref.key, "etag": ref.etag, "check": uuid.uuid4().hex}
    aws.client("sqs").send_message(
        QueueUrl=get_settings().ingest_queue_url,
        MessageBody=json.dumps(body),
        DelaySeconds=max(0, min(MAX_DELAY_SECONDS, seconds)),
    )


def scan_verdict_refs(detail: dict[str, Any], event_id: str | None = None) -> list[ObjectRef]:
    obj = _fields(detail.get("s3ObjectDetails"))
    result = _fields(detail.get("scanResultDetails"))
    etag = (_text(obj.get("eTag")) or "").strip('"')
    if not etag or not _text(obj.get("bucketName")) or not _text(obj.get("objectKey")):
        # a verdict that names no exact version can vouch for no bytes
        logger.warning("scan verdict without bucket, key or ETag ignored")
        metrics.add_metric(name="StaleScanVerdicts", unit="Count", value=1)
        return []
    found = result.get("threats")
    named = [_fields(t) for t in found] if isinstance(found, list) else []
    threats = tuple(_text(t.get("name")) or "" for t in named if t)
    # a status this stack does not know (or none) is no clean verdict: the scan gate fails it
    status = _text(result.get("scanResultStatus")) or "FAILED"
    return [
        ObjectRef(
            bucket=str(obj["bucketName"]),
            key=str(obj["objectKey"]),
            etag=etag,
            version_id=_text(obj.get("versionId")),
            verdict=ScanVerdict(status=status, threats=threats, event_id=event_id),
        )
    ]


@tracer.capture_method
def record_handler(record: SQSRecord, lambda_context: LambdaContext | None = None) -> None:
    receive_count = int(record.attributes.approximate_receive_count or 1)
    settings = get_settings()
    last_attempt = receive_count >= settings.max_receive_count
    needed_ms = (settings.step_time_limit_seconds + RECORD_TIME_MARGIN_SECONDS) * 1000
    started, _started["records"] = _started["records"], _started["records"] + 1
    late = lambda_context is not None and lambda_context.get_remaining_time_in_millis() < needed_ms
    if started and late and not last_attempt:
        back_off(record, 0)
        raise OutOfTimeError("too little time left in this invocation; the record goes back to the queue")
    try:
        refs = object_refs(record.body)
    except MalformedMessage as malformed:
        # nothing to retry: SQS moves it to the dead-letter queue now (its alarm tells an operator)
        logger.error("malformed message sent to the dead-letter queue", reason=str(malformed), size=len(record.body))
        metrics.add_metric(name="MessagesMalformed", unit="Count", value=1)
        back_off(record, 0)
        raise
    for ref in refs:
        # the upload id follows the upload through both functions' logs
        logger.set_correlation_id(keys.upload_id_from_key(ref.key))
        with logger.append_context_keys(key=ref.key, receive_count=receive_count):
            try:
                outcome = wiring.processor().process(ref, by=holder(record.message_id, receive_count))
            except AwaitingScanError as waiting:
                # not a failure: the verdict comes as a message of its own; the deadline check
                # comes back on its own too, so this message is done once that check is scheduled
                if waiting.check_in is not None:
                    try:
                        schedule_scan_deadline(ref, waiting.check_in)
                    except (ClientError, BotoCoreError):
                        # the retry finds the upload waiting and schedules the check again
                        back_off(record, round(BACKOFF_BASE * random.uniform(0.8, 1.2)))
                        raise
                logger.info("awaiting the malware scan's verdict", check_in=waiting.check_in)
                continue
            except ClaimHeldError as held:
                if last_attempt and held.redundant and ref.verdict is None and not ref.deadline_check:
                    # a twin of S3's notification (another message), out of receives while a
                    # delivery of this very version holds it: that delivery's message settles it
                    logger.info("twin notification left to the delivery holding its version")
                    metrics.add_metric(name="DuplicateNotifications", unit="Count", value=1)
                    continue
                if held.copy and last_attempt:
                    # this very receive, handed out twice: the delivery holding the claim decides
                    # (it records FAILED, or sends the message on, if it fails); this copy must not
                    raise
                _failed(record, ref, held, receive_count, last_attempt)
                raise
            except Exception as exc:
                _failed(record, ref, exc, receive_count, last_attempt)
                raise
            logger.info("notification handled", outcome=outcome)


def _failed(record: SQSRecord, ref: ObjectRef, exc: Exception, receive_count: int, last_attempt: bool) -> None:
    """An attempt at ``ref`` failed: FAILED recorded on the message's last receive (it goes on to
    the dead-letter queue), else the wait before it comes back."""
    reason = f"{type(exc).__name__}: {exc}"
    metrics.add_metric(name="ProcessingAttemptsFailed", unit="Count", value=1)
    if last_attempt:
        wiring.processor().fail(ref, reason, by=holder(record.message_id, receive_count), holding=still_holding(exc))
        retry_in = 0  # straight on to the dead-letter queue
    elif isinstance(exc, ClaimHeldError) and exc.retry_in is not None:
        # growing waits, never past the holder's claim's lapse, within SQS's limits
        growing = BACKOFF_BASE * 4 ** (receive_count - 1)
        retry_in = min(MAX_DELAY_SECONDS, growing, max(BACKOFF_BASE, exc.retry_in)) + random.randint(0, 5)
    else:
        retry_in = round(BACKOFF_BASE * 2 ** (receive_count - 1) * random.uniform(0.8, 1.2))
        logger.warning("processing attempt failed; will retry", error=reason[:300], retry_in=retry_in)
    back_off(record, retry_in)


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    _started["records"] = 0
    return process_partial_response(event=event, record_handler=record_handler, processor=batch, context=context)


ready()  # set up: the garbage collector resumes (handlers/__init__.py)
