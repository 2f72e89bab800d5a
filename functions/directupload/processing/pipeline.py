"""From an S3 ObjectCreated notification to a recorded outcome and one event.

    PENDING --first delivery--> UPLOADED --steps ok, promoted--> PROCESSED (event: Upload Processed)
                                UPLOADED --profile scan required--> SCANNING --clean verdict--> (verified as above)
                                         SCANNING --threat, failed scan, no verdict in time--> REJECTED
                                         --Rejected----------> REJECTED  (event: Upload Rejected)
                                         --error-------------> retried; on the last attempt
    UPLOADED/PENDING --retries ran out--> FAILED                          (event: Upload Failed)
    FAILED --a later delivery (redrive)--> PROCESSED | REJECTED           (their event)

PROCESSED and REJECTED are final, and each upload reaches one of them at most once: every
status change is a conditional write naming the states it may leave. A notification for a
final upload is a duplicate or late bytes (a presigned POST re-sent): the staging object is
removed and nothing else changes. FAILED is not final: the upload waits for its message to be
redriven. It is entered once, so ``Upload Failed`` is sent at most once per upload. Each of
these writes names the event it owes; the table's stream carries it to the PublishFunction
(handlers/publisher.py), which sends it: this function never calls EventBridge.

This module decides (the claim, the scan gate, verification and the steps); outcomes.py
records what it decided (the outcome's write, and the staging object's removal after it).

The trust boundary. ``incoming/`` is staging: a grant can write it again until it expires. An
attempt claims one staging version (its ETag) on the record, reads exactly that version
(GET If-Match), and on acceptance promotes exactly that version (CopyObject with
CopySourceIfMatch) to ``files/``, which no client is ever signed for and the bucket policy lets
only this function write. The PROCESSED write requires the same claim. So a version written
during an attempt makes that attempt stand down (its own notification follows), two versions
never promote over each other, and what the record, the event and a download name is byte
for byte what was verified.

The scan gate (profile ``scan: required``). The malware scanner (GuardDuty Malware Protection on
AWS, ClamAV on the local stack) scans each staging version on its own and reports a verdict
naming that version's ETag; the verdict comes through the same queue as a message of its own.
A notification of such an upload only moves it to SCANNING and comes back at the profile's
``scanTimeoutSeconds``: if no verdict decided by then, the upload is REJECTED (``scan-timeout``).
A clean verdict runs the attempt above for exactly the version it names (GET If-Match that ETag),
so the bytes verified and promoted are the bytes scanned; a threat is REJECTED (``malware``, the
threat names in the error) and quarantined, as is a scan that failed or could not be made. A
verdict for a final upload changes nothing. Nothing is ever PROCESSED, and so downloadable,
without a clean verdict for its bytes: the gate fails closed.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from directupload import keys
from directupload.errors import Rejected
from directupload.models import TERMINAL, Status, UploadRecord, Variant, utcnow
from directupload.observability import logger, metrics
from directupload.processing import verify
from directupload.processing.budget import Budget, run_within
from directupload.processing.outcomes import (
    CLAIM_LIFETIME,
    TRANSIENT,
    ClaimHeldError,
    Outcome,
    Outcomes,
    PendingSlots,
    delivery,
    held_for_us,
    left_holding,
    still_holding,
)
from directupload.processing.steps import VERIFY, Step, StepResult, VerifiedObject, registry, run_step
from directupload.profiles import Profile
from directupload.storage import Storage, VersionChanged
from directupload.store import ClaimRefused, TransitionRefused, UploadStore, earlier_receive

UNREAD: Any = object()  # process(): the record is not read yet
__all__ = ["CLAIM_LIFETIME", "ClaimHeldError", "ObjectRef", "Processor", "still_holding"]


def _held(record: UploadRecord, now: datetime, attempt: str) -> bool:
    """Whether another delivery than ``attempt`` (an earlier receive of its message is not) holds
    a live claim of ``record``."""
    live = record.claim_until is not None and record.claim_until >= now
    return record.claim_by is not None and live and not earlier_receive(record.claim_by, attempt)


class AwaitingScanError(RuntimeError):
    """The upload waits for the scanner's verdict (not a failure: nothing went wrong). With
    ``check_in`` set, the caller schedules a deadline check of this version in that many seconds."""

    def __init__(self, check_in: int | None, *, parked: bool = False) -> None:
        super().__init__("awaiting the malware scan's verdict")
        self.check_in = check_in
        self.parked = parked  # the write that made it wait left the claim to the version already


# GuardDuty Malware Protection's scanResultStatus values (the local scanner reports the same)
CLEAN = "NO_THREATS_FOUND"
THREATS = "THREATS_FOUND"
SCAN_TAG = "GuardDutyMalwareScanStatus"  # the scanner tags each object it scanned with its result
_SCAN_REJECTIONS = {
    "UNSUPPORTED": (
        "scan-unsupported",
        "the malware scanner could not scan this file (too large, encrypted or nested)",
    ),
    "ACCESS_DENIED": ("scan-failed", "the malware scanner could not read this file"),
    "FAILED": ("scan-failed", "the malware scan failed"),
}


@dataclass(frozen=True)
class ScanVerdict:
    """What the malware scanner found in one staging version (the ObjectRef's ETag)."""

    status: str  # NO_THREATS_FOUND | THREATS_FOUND | UNSUPPORTED | ACCESS_DENIED | FAILED
    threats: tuple[str, ...] = ()
    # the scan result event's id: each scan of an object is a verdict of its own, even of bytes
    # sent again with the same ETag (an unversioned bucket names no version)
    event_id: str | None = None


@dataclass(frozen=True)
class ObjectRef:
    """One S3 notification's object: what identifies this version of it."""

    bucket: str
    key: str
    size: int | None = None
    etag: str | None = None
    sequencer: str | None = None
    version_id: str | None = None
    verdict: ScanVerdict | None = None  # set: the scanner's verdict on this version, not S3's notification
    deadline_check: bool = False  # True: the check that this version's verdict came in time


class Processor:
    """Decides what a notification does to its upload (claim, scan gate, verification, steps);
    ``outcomes`` records the result."""

    def __init__(
        self,
        *,
        profiles: dict[str, Profile],
        store: UploadStore,
        storage: Storage,
        rejected_objects: str = "quarantine",
        clock: Callable[[], datetime] = utcnow,
        steps: dict[str, Step] | None = None,
        quota: PendingSlots | None = None,
        sleep: Callable[[float], None] = time.sleep,
        budget: Budget | None = None,
    ) -> None:
        self.profiles = profiles
        self.store = store
        self.storage = storage
        self.clock = clock
        self._steps = steps
        self.budget = budget
        self.outcomes = Outcomes(
            store=store,
            storage=storage,
            rejected_objects=rejected_objects,
            quota=quota,
            clock=clock,
            sleep=sleep,
        )

    @property
    def quota(self) -> PendingSlots | None:
        """The owner quota an outcome settles to the real size (``outcomes.quota``)."""
        return self.outcomes.quota

    @property
    def steps(self) -> dict[str, Step]:
        if self._steps is None:
            self._steps = registry()
        return self._steps

    def in_bucket(self, name: str) -> Processor:
        """This processor on the bucket ``name``, one of the configured set (UnknownBucket if not)."""
        other = copy.copy(self)
        other.storage = self.storage.in_bucket(name)
        other.outcomes = self.outcomes.on(other.storage)
        return other

    # entry points
    def process(self, ref: ObjectRef, record: UploadRecord | None = UNREAD, *, by: str | None = None) -> str:
        """Handle one delivery of a message: S3's notification of an object, the scanner's verdict on
        a version, or a scan deadline check (``record``: the upload's record as just read, when the
        caller read it). Raises on a transient failure (the message is retried), ClaimHeldError
        while another attempt holds the upload (a twin delivery, or another version being
        verified). A verdict or deadline check that decides nothing costs one read and no write.

        ``by`` names the delivery: one receive of one SQS message (store.holder). A later receive
        of the same message takes up the claim an earlier one left (it failed, or died), where a
        twin of the notification (another message, or a copy of this one beside it) waits for
        it. Without one, the attempt is its own."""
        if ref.bucket != self.storage.bucket:
            return self.in_bucket(ref.bucket).process(ref, record, by=by)
        upload_id = keys.upload_id_from_key(ref.key)
        if upload_id is None:
            logger.warning("object outside the incoming/{id}/ scheme ignored", key=ref.key)
            return Outcome.IGNORED
        logger.append_keys(upload_id=upload_id)
        attempt = by or uuid.uuid4().hex  # what holds the claim
        if record is UNREAD and ref.etag and ref.verdict is None and not ref.deadline_check:
            # S3's notification of a pending upload, by far the most common delivery: claimed in
            # one write; any other record comes back with the refusal and is decided below
            started, now = time.perf_counter(), self.clock()
            try:
                claimed = self.store.claim_arrival(
                    upload_id, ref.key, ref.etag, by=attempt, now=now, until=now + CLAIM_LIFETIME
                )
            except ClaimRefused as refused:
                record = refused.record
                if record is not None:
                    self._waits_unclaimed(record, ref, ref.etag, now)
                if record is not None and record.status not in TERMINAL and _held(record, now, attempt):
                    # a twin of this notification (S3 delivers at least once), or another version
                    raise ClaimHeldError(
                        "another attempt holds this upload",
                        record.claim_until,
                        now,
                        redundant=held_for_us(record, ref.etag, attempt),
                        copy=record.claim_by == attempt,
                    ) from None
            else:
                return self._attempt(claimed, ref, ref.etag, started, attempt)
        elif record is UNREAD:
            record = self.store.get(upload_id)
        if ref.verdict is not None or ref.deadline_check:
            stale = self._stale_verdict(record, ref, attempt)
            if stale is not None:
                return stale
        if record is None or record.key != ref.key or self.storage.in_bucket(record.bucket) is not self.storage:
            return self.outcomes.orphan(ref)  # (an object under another bucket's upload id is no upload of it)
        if record.status in TERMINAL:
            return self.outcomes.already_final(record, ref, attempt)

        started = time.perf_counter()
        etag = ref.etag or self._current_etag(ref.key)
        now = self.clock()
        self._waits_unclaimed(record, ref, etag, now)
        try:
            claimed = self.store.claim(
                record,
                etag,
                by=attempt,
                now=now,
                until=now + CLAIM_LIFETIME,
                superseding=self._parked_on_gone_bytes(record, etag, now),
            )
        except TransitionRefused:
            fresh = self.store.get(upload_id)
            if fresh is not None and fresh.status == record.status:
                raise ClaimHeldError(
                    "another attempt holds this upload",
                    fresh.claim_until,
                    now,
                    redundant=held_for_us(fresh, etag, attempt),
                    copy=fresh.claim_by == attempt,
                ) from None
            return self.process(ref, fresh, by=attempt)  # another delivery moved it on a moment ago: look again
        return self._attempt(claimed, ref, etag, started, attempt)

    def _parked_on_gone_bytes(self, record: UploadRecord, etag: str, now: datetime) -> str | None:
        """The version ``record``'s scan wait is parked on, when no attempt holds it and the staging
        object is version ``etag`` now (one HEAD, only then): the presigned POST was sent again
        while the first bytes waited for their scan, and a scanner that finds them gone gives no
        verdict on them, so the wait would hold the newer bytes out until it lapsed."""
        parked = (
            record.status == Status.SCANNING
            and record.claim_by is None
            and record.claim_etag not in (None, etag)
            and record.claim_until is not None
            and record.claim_until >= now
        )
        if not parked:
            return None
        head = self.storage.head(record.key)
        if head is None or head.etag != etag:
            return None  # (this delivery is of bytes gone too, or the head was replaced again)
        logger.info("a newer version takes over the scan wait of bytes no longer there")
        return record.claim_etag

    def _attempt(self, record: UploadRecord, ref: ObjectRef, etag: str, started: float, attempt: str) -> str:
        """Verify, gate, run the steps and record the outcome of the staging version ``etag``,
        which ``attempt`` holds the claim of."""
        # UPLOADED (an earlier attempt failed) or FAILED (redriven): run again; FAILED stays
        # FAILED until an outcome replaces it, so a parallel last attempt cannot fail it twice
        profile = self.profiles.get(record.profile)
        written: list[str] = []  # derived objects this attempt stored: they go unless it is accepted
        try:
            if profile is None:
                raise Rejected("unknown-profile", f"profile {record.profile!r} is no longer configured")
            if profile.scan == "required":
                self._scan_gate(record, profile, ref, etag, attempt)
            result, variants = self._run(record, profile, ref, etag, written)
        except AwaitingScanError as waiting:
            if not waiting.parked:  # the claim stays with this version, for its verdict's delivery
                with contextlib.suppress(*TRANSIENT):  # (if not: it lapses)
                    self.store.park(record.upload_id, attempt)
            raise
        except VersionChanged:
            self._discard(written)
            return self._superseded(record, etag, attempt)
        except Rejected as rejection:
            self._discard(written)
            try:
                return self.outcomes.reject(record, ref, rejection, etag, attempt, time.perf_counter() - started)
            except VersionChanged:  # the bytes it rejected were written over before it recorded that
                return self._superseded(record, etag, attempt)
        except Exception as exc:
            # a failed attempt holds no claim (another version need not wait for its retry) and
            # leaves no derived objects behind (a record that never becomes PROCESSED names none)
            self._discard(written)
            try:
                self.store.release(record.upload_id, etag, attempt)
            except TRANSIENT:
                left_holding(exc)  # the message's next receive takes it up (its last gives it up)
            raise
        retain_until = self.clock() + timedelta(days=profile.retain_days) if profile.retain_days else None
        return self.outcomes.accept(
            record, ref, result, variants, etag, attempt, retain_until, time.perf_counter() - started
        )

    def fail(self, ref: ObjectRef, reason: str, *, by: str | None = None, holding: bool = False) -> bool:
        """The retries for ``ref`` ran out (its message, ``by``, moves to the dead-letter queue):
        record FAILED with the reason and send ``Upload Failed``. Never raises for a transient
        error: the message parks in the dead-letter queue either way. True when the upload became FAILED."""
        return self.outcomes.fail(ref, reason, by=by, holding=holding)

    # the scan gate
    def _waits_unclaimed(self, record: UploadRecord, ref: ObjectRef, etag: str, now: datetime) -> None:
        """A delivery that only waits, handled without a claim (so without a write that could be
        left behind for the verdict to wait on): AwaitingScanError for S3's notification of a
        version already waiting for its verdict (delivered again: the deadline check is sent
        again, in case the first delivery could not send it) or of a FAILED upload (it waits for
        its redrive: its verdict, in the dead-letter queue or on its way, decides; a late copy of
        the notification must not restart a wait it would lose), and for a deadline check that
        came before the deadline (it comes back then)."""
        if ref.verdict is not None or record.key != ref.key:
            return
        if self.storage.in_bucket(record.bucket) is not self.storage:
            return  # an object under another bucket's upload id: an orphan, process decides
        profile = self.profiles.get(record.profile)
        if profile is None or profile.scan != "required":
            return
        deadline = record.scan_deadline
        waiting = record.status == Status.SCANNING and record.scan_etag == etag and deadline is not None
        if ref.deadline_check and not (waiting and deadline is not None and now < deadline):
            return  # due: the scan gate decides it
        if record.status == Status.FAILED:
            raise AwaitingScanError(None)
        if waiting and deadline is not None:
            raise AwaitingScanError(max(1, int((deadline - now).total_seconds()) + 1))

    def _stale_verdict(self, record: UploadRecord | None, ref: ObjectRef, attempt: str) -> str | None:
        """A verdict (or deadline check) that decides nothing: for no upload, one that needs no scan,
        a version no longer waiting, or a final one (unless it is the delivery that reached the
        outcome, delivered again before the staging object was removed: then it removes it)."""
        profile = self.profiles.get(record.profile) if record is not None and record.key == ref.key else None
        if record is None or profile is None or profile.scan != "required":
            logger.info("scan verdict for an upload that needs none: ignored")
        elif record.status in TERMINAL:
            if record.outcome_of == delivery(ref, ref.etag or ""):
                return self.outcomes.already_final(record, ref, attempt)
            infected = record.status == Status.PROCESSED and ref.verdict is not None and ref.verdict.status == THREATS
            if infected and str(record.outcome_of or "").endswith(f"/{ref.etag}"):
                # bytes with the ETag of the processed ones were found infected (an MD5 collision
                # re-sent in a scan's window): for an operator; the verified copy stays as it is
                logger.error("a threat was found in bytes with the ETag of a processed upload")
                metrics.add_metric(name="ThreatsAfterProcessing", unit="Count", value=1)
            logger.info("scan verdict for a final upload: nothing changes", status=record.status.value)
        elif ref.verdict is None and (record.status != Status.SCANNING or record.scan_etag != ref.etag):
            logger.info("scan deadline of a version no longer waiting: nothing to do")
        else:
            return None
        metrics.add_metric(name="StaleScanVerdicts", unit="Count", value=1)
        return Outcome.STALE_VERDICT

    def _scan_gate(self, record: UploadRecord, profile: Profile, ref: ObjectRef, etag: str, attempt: str) -> None:
        """Pass only with a clean verdict on version ``etag``: else wait for one (AwaitingScanError),
        or reject (a threat, a scan that failed, no verdict by the deadline)."""
        verdict = ref.verdict
        now = self.clock()
        # the deadline on the record is this version's (scan_etag), not one a replaced version set
        waiting = record.status == Status.SCANNING and record.scan_etag == etag and record.scan_deadline is not None
        if verdict is None and ref.deadline_check:  # the deadline check
            deadline = record.scan_deadline
            if not waiting or deadline is None:
                raise AwaitingScanError(None)  # decided meanwhile, or another version waits
            # (one that came early was sent back unclaimed: _waits_unclaimed)
            tagged = self.storage.tag(record.key, SCAN_TAG)
            if tagged is None:
                metrics.add_metric(name="ScanTimeouts", unit="Count", value=1)
                raise Rejected("scan-timeout", "the malware scan gave no verdict in time; the file was not served")
            # the scanner did answer (it tags what it scanned, and only it may tag staging) but its
            # verdict event is late or lost: the tag decides, so no upload waits on it forever. The
            # tag is the current bytes' (a new write carries no tags); promotion checks that the
            # copied bytes carry the clean tag, as for a verdict event
            logger.warning("scan verdict event missing at the deadline: the scanner's tag decides", tag=tagged[:40])
            metrics.add_metric(name="ScanVerdictsFromTags", unit="Count", value=1)
            verdict = ScanVerdict(status=tagged)
        if verdict is None:  # S3's notification: wait for the verdict (one of a version that
            # waits already, or of a FAILED upload, never claimed it: _waits_unclaimed)
            deadline = now + timedelta(seconds=profile.scan_timeout_seconds)
            self.store.transition(
                record.upload_id,
                Status.SCANNING,
                now=now,
                claimed_by=etag,
                held_by=attempt,
                remove=["claim_by"],  # parked: the delivery of this version's verdict claims it next
                scan_deadline=deadline,
                scan_etag=etag,
                claim_until=deadline + CLAIM_LIFETIME,  # the claim outlives the wait
            )
            logger.info("awaiting the malware scan", deadline=deadline.isoformat())
            raise AwaitingScanError(profile.scan_timeout_seconds + 1, parked=True)
        if record.status == Status.SCANNING and record.scan_deadline is not None:
            waited = now - (record.scan_deadline - timedelta(seconds=profile.scan_timeout_seconds))
            metrics.add_metric(
                name="ScanLatency", unit="Milliseconds", value=max(0, round(waited.total_seconds() * 1000))
            )
        if verdict.status == CLEAN:
            return
        if verdict.status == THREATS:
            names = tuple(name[:200] for name in verdict.threats[:20]) or ("unnamed threat",)
            metrics.add_metric(name="ScanThreats", unit="Count", value=1)
            raise Rejected("malware", f"the malware scanner found {', '.join(names)}"[:500], threats=names)
        metrics.add_metric(name="ScanFailures", unit="Count", value=1)
        code, message = _SCAN_REJECTIONS.get(verdict.status, ("scan-failed", "the malware scan gave no usable verdict"))
        raise Rejected(code, message)

    # steps
    def _run(
        self, record: UploadRecord, profile: Profile, ref: ObjectRef, etag: str, written: list[str]
    ) -> tuple[dict[str, Any], dict[str, Variant]]:
        """Verify staging version ``etag`` (the pre-step), run the profile's steps, store what they
        derive and promote the verified bytes. Returns the result fields and the variants."""
        wanted = [self.steps[name] for name in profile.steps if name != VERIFY]
        promotion = self.storage.promotion(
            record.key, keys.file_key(record.key), etag=etag, metadata={"upload-id": record.upload_id}
        )
        # With no step to run (none may reject the bytes later, none forks a decoder beside the
        # copy's thread), verify starts the copy once the head passes; on any error it is waited
        # for and removed. Otherwise the copy is made by finish, after the steps.
        with promotion:
            obj = verify.verify(
                record,
                ref.bucket,
                self.storage,
                etag=etag,
                keep_body=any(step.needs_body for step in wanted),
                allow_active=profile.allow_active_content,
                promotion=None if wanted else promotion,
            )
            try:
                result: dict[str, Any] = dict(verify.run(obj).fields)
                variants: dict[str, Variant] = {}
                for step in wanted:
                    with logger.append_context_keys(step=step.name):
                        if self.budget is not None and step.needs_body:
                            outcome = run_within(step, obj, self.budget)  # a decoder: bounded in a child
                        else:
                            outcome = run_step(step, obj)
                        variants.update(self._store_derived(obj, outcome, written))
                        result.update(outcome.fields)
            finally:
                if obj.body is not None:
                    obj.body.close()
            promotion.finish(sha256=obj.sha256, size=obj.size, content_type=obj.sniffed_type or record.content_type)
        if profile.scan == "required" and obj.size <= self.storage.single_copy_limit:
            self._scanned_copy(keys.file_key(record.key))
        return result, variants

    def _scanned_copy(self, file_key: str) -> None:
        """The copy carries the scanner's tag of the bytes it copied (CopyObject copies an object and
        its tags as one): without the clean tag, these bytes were written after the scan that vouched
        for their ETag (an MD5 collision re-sent in the scan's window), so they are not promoted."""
        if self.storage.tag(file_key, SCAN_TAG) != CLEAN:
            self.storage.delete(file_key)
            metrics.add_metric(name="UnscannedCopies", unit="Count", value=1)
            raise VersionChanged(f"{file_key}: the copied bytes carry no clean scan of their own")

    def _store_derived(self, obj: VerifiedObject, outcome: StepResult, written: list[str]) -> dict[str, Variant]:
        stored = {}
        for derived in outcome.derived:
            # same key on every attempt: a retry overwrites, never piles up
            key = obj.derived_key(derived.name)
            written.append(key)
            self.storage.put(key, derived.data, derived.content_type)
            stored[derived.variant] = Variant(
                key=key,
                content_type=derived.content_type,
                size=len(derived.data),
                sha256=hashlib.sha256(derived.data).hexdigest(),
            )
        return stored

    def _discard(self, written: list[str]) -> None:
        if not written:
            return
        try:
            self.storage.delete_all(written)
        except TRANSIENT:
            logger.warning("derived objects of a failed attempt left behind; deletion removes them")

    def _current_etag(self, key: str) -> str:
        """The staging object's ETag, for a notification that carries none (S3's always do)."""
        head = self.storage.head(key)
        if head is None:
            raise verify.ObjectMissingError(f"object {key} is not in the bucket (yet)")
        return head.etag

    def _superseded(self, record: UploadRecord, etag: str, attempt: str) -> str:
        """The staging object was written again during this attempt: that version's own
        notification decides. Nothing of this one was promoted."""
        try:
            self.store.release(record.upload_id, etag, attempt)
        except TRANSIENT as exc:
            left_holding(exc)  # the message's next receive takes the claim up (its last gives it up)
            raise
        logger.warning("staging object replaced while being verified; its newer version decides")
        metrics.add_metric(name="SupersededVersions", unit="Count", value=1)
        return Outcome.SUPERSEDED
