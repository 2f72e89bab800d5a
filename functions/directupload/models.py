"""Data shapes: the upload record (what we store) and the API's wire models (camelCase)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from directupload import keys

if TYPE_CHECKING:
    from pydantic import GetJsonSchemaHandler
    from pydantic.json_schema import JsonSchemaValue
    from pydantic_core import CoreSchema

# An upload that started just before its URL lapsed may still finish; only then is it abandoned.
EXPIRY_GRACE = timedelta(minutes=10)
MAX_METADATA_ENTRIES = 10
MAX_METADATA_VALUE = 256
# S3 limits user metadata to 2 KB in all; we stay well under it.
MAX_METADATA_BYTES = 1024


class Status(StrEnum):
    PENDING = "PENDING"
    UPLOADED = "UPLOADED"
    SCANNING = "SCANNING"  # verified bytes wait for the malware scanner's verdict (profile ``scan``)
    PROCESSED = "PROCESSED"
    REJECTED = "REJECTED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"
    DELETING = "DELETING"  # the owner deleted it: objects are being removed
    DELETED = "DELETED"  # a short-lived tombstone: objects gone, the record follows

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        """The enum, and which of its values are final for clients (``x-final``): the OpenAPI
        document is where the CLI and the JS client take the list from (scripts/client_statuses.py)."""
        schema = handler(core_schema)
        schema["x-final"] = [status.value for status in cls if status in FINAL_FOR_CLIENTS]
        return schema


# The state machine, in one table: for each status, the statuses a conditional write may move a
# record from (store.transition reads it; every change names the states it may leave, so a late or
# repeated notification never moves a record backwards). docs/generated/states.md is drawn from it.
TRANSITIONS: Mapping[Status, frozenset[Status]] = MappingProxyType(
    {
        Status.UPLOADED: frozenset({Status.PENDING}),  # store.claim, in the claim's own write
        Status.SCANNING: frozenset({Status.UPLOADED, Status.SCANNING}),  # SCANNING: a newer version waits now
        Status.PROCESSED: frozenset({Status.UPLOADED, Status.SCANNING, Status.FAILED}),  # FAILED: redriven
        Status.REJECTED: frozenset({Status.UPLOADED, Status.SCANNING, Status.FAILED}),
        Status.FAILED: frozenset({Status.PENDING, Status.UPLOADED, Status.SCANNING}),
        Status.CANCELLED: frozenset({Status.PENDING}),
        # EXPIRED is never stored (see SHOWN_AS); listed so a record read as EXPIRED may be deleted
        Status.DELETING: frozenset(
            {Status.PROCESSED, Status.REJECTED, Status.FAILED, Status.CANCELLED, Status.EXPIRED}
        ),
        Status.DELETED: frozenset({Status.DELETING}),
    }
)
# Why a record moves to each status: the labels of the generated diagram.
REASONS: Mapping[Status, str] = MappingProxyType(
    {
        Status.UPLOADED: "the object arrives (first delivery claims it)",
        Status.SCANNING: "the profile requires a malware scan",
        Status.PROCESSED: "steps pass, promoted to files/",
        Status.REJECTED: "file unacceptable, threat, or no verdict in time",
        Status.FAILED: "retries run out (message in the DLQ)",
        Status.CANCELLED: "DELETE while pending",
        Status.DELETING: "DELETE by the owner",
        Status.DELETED: "objects gone (tombstone, 1 day)",
    }
)
# Statuses no write stores: a read shows a PENDING record as EXPIRED once nothing arrived before
# its URL lapsed (+ EXPIRY_GRACE). The record itself expires (TTL) later.
SHOWN_AS: Mapping[Status, Status] = MappingProxyType({Status.EXPIRED: Status.PENDING})
# Where a client following an upload stops: nothing moves it on by itself. FAILED is final for
# clients although an operator's redrive may still take it to PROCESSED or REJECTED; DELETING is
# not (its objects are being removed). The API publishes this list (OpenAPI ``x-final``).
FINAL_FOR_CLIENTS = frozenset(
    {Status.PROCESSED, Status.REJECTED, Status.FAILED, Status.EXPIRED, Status.CANCELLED, Status.DELETED}
)
# Processing is over for good: a notification for one of these is a duplicate or late bytes
# (every status processing cannot move on from: not PENDING, UPLOADED, SCANNING or FAILED).
TERMINAL = frozenset(Status) - TRANSITIONS[Status.UPLOADED] - TRANSITIONS[Status.PROCESSED]
# What DELETE /uploads/{id} removes for good (a PENDING upload is cancelled instead, an
# UPLOADED one is being processed). FAILED waits for a redrive, but its owner may give up on it.
DELETABLE = TRANSITIONS[Status.DELETING] | {Status.DELETING}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Wire(BaseModel):
    """camelCase on the wire, snake_case in Python."""

    # defer_build: a model builds its validator when first used, not at import (cold start)
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", defer_build=True)

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ProblemLocation(Wire):
    location: str  # where in the request: body.size, query.limit, path.upload_id...
    message: str


class Problem(Wire):
    """RFC 9457 problem details, the body of every error, with the extension members some carry."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    known: list[str] | None = Field(default=None, description="unknown-profile: the profiles there are")
    allowed: list[str] | None = Field(default=None, description="unsupported-type: what the profile accepts")
    max_size: int | None = Field(default=None, description="too-large: the most this upload may hold, in bytes")
    variants: list[str] | None = Field(default=None, description="not-found of a variant: the upload's variants")
    errors: list[ProblemLocation] | None = Field(default=None, description="validation-error: each field refused")


class MultipartInfo(Wire):
    part_size: int
    part_count: int
    # "SHA256": the upload was opened for part checksums (``partChecksums``): every part URL must
    # be asked for with the part's SHA-256, which S3 then checks the part's bytes against
    checksum_algorithm: Literal["SHA256"] | None = None


class UploadError(Wire):
    code: str
    message: str
    threats: list[str] | None = None  # code "malware": what the scanner found


class Variant(Wire):
    """A derived file of a processed upload (``?variant=`` on the download route)."""

    key: str
    content_type: str
    size: int
    sha256: str | None = None


class Download(Wire):
    """A short-lived presigned GET of the verified object or one of its variants."""

    url: str
    expires_at: datetime
    variant: str | None = None
    content_type: str
    disposition: Literal["inline", "attachment"]
    filename: str  # what the browser saves it as (Content-Disposition)
    size: int
    sha256: str | None = None


MetadataKey = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")]
MetadataValue = Annotated[str, StringConstraints(max_length=MAX_METADATA_VALUE)]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
# A SHA-256 as S3 takes it in x-amz-checksum-sha256: canonical base64 of 32 bytes (44 characters,
# the last before "=" carrying 2 bits of padding, so only these 16 letters are possible there)
Sha256Base64 = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$")]


class IssueUploadRequest(Wire):
    model_config = ConfigDict(strict=True)  # "100" is not a size

    profile: Annotated[str, Field(min_length=1, max_length=32)]
    filename: Annotated[str, Field(min_length=1, max_length=255)]
    content_type: Annotated[str, Field(min_length=3, max_length=127, pattern=r"^[\w.+-]+/[\w.+-]+$")]
    # Positive and below S3's 5 TiB object limit; the profile narrows it further.
    size: Annotated[int, Field(gt=0, le=5 * 1024**4)]
    checksum_sha256: Sha256Hex | None = None
    metadata: Annotated[dict[MetadataKey, MetadataValue], Field(max_length=MAX_METADATA_ENTRIES)] | None = None
    # Multipart only: the client will give each part's SHA-256 when it asks for the part's URL, so
    # S3 refuses a part whose bytes differ. S3 then needs a checksum with every part.
    part_checksums: bool | None = None


class IssuedUpload(Wire):
    upload_id: str
    key: str
    expires_at: datetime
    method: Literal["POST"] | None = None
    url: str | None = None
    fields: dict[str, str] | None = None
    multipart: MultipartInfo | None = None


class UploadView(Wire):
    """What GET /uploads/{id} answers."""

    upload_id: str
    status: Status
    profile: str
    filename: str
    key: str
    content_type: str
    size: int
    sha256: str | None = None
    metadata: dict[str, str] | None = None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    multipart: MultipartInfo | None = None
    result: dict[str, Any] | None = None
    error: UploadError | None = None
    variants: list[str] | None = None
    retain_until: datetime | None = None
    deleted_at: datetime | None = None
    issued_by: str | None = None  # the trusted backend's IAM role that issued it for its owner


class ProfileView(Wire):
    """What GET /profiles tells a client about one profile, for checks before any request."""

    name: str
    content_types: list[str]
    min_size: int
    max_size: int
    multipart_threshold: int | None = None  # uploads of at least this many bytes go multipart
    part_size: int | None = None
    url_ttl_seconds: int
    part_url_ttl_seconds: int | None = None  # multipart part URLs; absent: url_ttl_seconds
    download_ttl_seconds: int
    retain_days: int | None = None
    allow_active_content: bool
    steps: list[str]
    scan: Literal["required", "off"] = "required"  # malware scan before PROCESSED


class ProfileList(Wire):
    profiles: list[ProfileView]


class UploadPage(Wire):
    """What GET /uploads answers: the caller's uploads, newest first."""

    items: list[UploadView]
    next_cursor: str | None = None


class UploadRecord(BaseModel):
    """The stored record of one upload (DynamoDB item ``pk = upload#{id}``)."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    upload_id: str
    owner: str
    # a trusted backend's IAM role ARN when it issued the upload for ``owner`` (/backend/uploads)
    issued_by: str | None = None
    status: Status
    profile: str
    filename: str
    key: str
    content_type: str
    size: int
    checksum_sha256: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    # the bucket that holds the upload's objects; None (records written before there were several
    # buckets): the default bucket
    bucket: str | None = None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    # A multipart upload: S3's own multipart upload is created by the first parts call
    # (``s3_upload_id`` set then, once), so issuing costs the same whatever the size.
    multipart: bool = False
    s3_upload_id: str | None = None
    # False: ``size`` is a ceiling (a client that could not say the size); the object may hold
    # ``min_size`` to ``size`` bytes, and its real size replaces the ceiling once PROCESSED
    size_exact: bool = True
    min_size: int = 1
    part_size: int | None = None
    part_count: int | None = None
    checksum_algorithm: Literal["SHA256"] | None = None  # the multipart upload's, at S3: parts carry one
    sha256: str | None = None
    result: dict[str, Any] | None = None
    error: UploadError | None = None
    # the staging version (ETag) one processor attempt verifies and may promote, until when, and
    # which attempt (``claim_by``, one per delivery's run) holds it: one attempt at a time. Parked
    # (no ``claim_by``) while the version waits for its malware scan; on a final record whose
    # event is owed, the attempt that settles it (store.py)
    claim_etag: str | None = None
    claim_until: datetime | None = None
    claim_by: str | None = None
    # set once PROCESSED: the promoted, verified object and the derived files
    file_key: str | None = None
    variants: dict[str, Variant] = Field(default_factory=dict)
    retain_until: datetime | None = None
    deleted_at: datetime | None = None
    delete_reason: str | None = None
    # the event the record's last change of status owes (an outcome, FAILED, DELETED): the table's
    # stream carries the change to the PublishFunction, which sends it when this field changed
    # (handlers/publisher.py); and which delivery (sequencer/ETag of the notification) reached
    # the outcome: a redelivery of it removes the staging object an attempt may have left
    pending_event: str | None = None
    outcome_of: str | None = None
    # SCANNING: the staging version waiting for a verdict, and when the wait ends (scan-timeout)
    scan_deadline: datetime | None = None
    scan_etag: str | None = None  # the staging version the deadline is for

    @property
    def is_multipart(self) -> bool:
        return self.multipart or self.s3_upload_id is not None  # records from before lazy creation

    def view(self, now: datetime | None = None) -> UploadView:
        status = self.status
        if status == Status.PENDING and (now or utcnow()) >= self.expires_at + EXPIRY_GRACE:
            status = Status.EXPIRED  # abandoned: nothing arrived while the upload was open
        multipart = None
        if self.part_size is not None and self.part_count is not None:
            multipart = MultipartInfo(
                part_size=self.part_size, part_count=self.part_count, checksum_algorithm=self.checksum_algorithm
            )
        return UploadView(
            upload_id=self.upload_id,
            status=status,
            profile=self.profile,
            filename=self.filename,
            key=self.file_key or self.key,
            content_type=self.content_type,
            size=self.size,
            sha256=self.sha256,
            metadata=self.metadata or None,
            created_at=self.created_at,
            updated_at=self.updated_at,
            expires_at=self.expires_at,
            multipart=multipart,
            result=None if status == Status.DELETED else self.result,  # it named objects now gone
            error=self.error,
            variants=sorted(self.variants) if status == Status.PROCESSED else None,
            retain_until=self.retain_until,
            deleted_at=self.deleted_at,
            issued_by=self.issued_by,
        )

    def object_keys(self, derived_names: Iterable[str] = ()) -> list[str]:
        """Every key this upload may have bytes under: staging, promoted, quarantined, its
        variants, and ``derived_names`` under ``derived/`` (what an attempt may have left)."""
        found = [self.key, keys.file_key(self.key), keys.quarantine_key(self.key)]
        found += [variant.key for variant in self.variants.values()]
        found += [keys.derived_key(self.upload_id, name) for name in sorted(derived_names)]
        return list(dict.fromkeys(found))
