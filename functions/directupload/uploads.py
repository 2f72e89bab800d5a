"""The upload use cases behind every route: issue, status, parts, complete, cancel.

Handlers (the JSON API and the Uppy-compatible routes) parse requests and call these;
this module knows nothing of HTTP beyond the domain errors it raises.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from directupload import keys, presign
from directupload.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    TooLarge,
    UnknownProfile,
    Unprocessable,
    UnsupportedType,
)
from directupload.models import (
    MAX_METADATA_BYTES,
    IssuedUpload,
    IssueUploadRequest,
    MultipartInfo,
    Status,
    UploadRecord,
    utcnow,
)
from directupload.observability import logger, metrics
from directupload.profiles import S3_MAX_PARTS, Profile
from directupload.storage import NoSuchUpload, Storage, StoredPart
from directupload.store import TransitionRefused, UploadStore

# Lifetime of a multipart upload: the bucket's lifecycle aborts incomplete ones after a day.
MULTIPART_LIFETIME = timedelta(days=1)
MAX_PARTS_PER_SIGN = 1000


class Quota(Protocol):
    def reserve(self, owner: str, size: int, now: datetime) -> None: ...
    def release(self, owner: str) -> None: ...


@dataclass(frozen=True)
class SignedPart:
    part_number: int
    url: str
    expires_at: datetime


class UploadService:
    def __init__(
        self,
        *,
        profiles: dict[str, Profile],
        store: UploadStore,
        storage: Storage,
        s3: Any,
        quota: Quota | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.profiles = profiles
        self.store = store
        self.storage = storage
        self.s3 = s3
        self.quota = quota
        self.clock = clock

    # issue
    def profile(self, name: str) -> Profile:
        profile = self.profiles.get(name)
        if profile is None:
            raise UnknownProfile(f"no profile named {name!r}", known=sorted(self.profiles))
        return profile

    def check(self, profile: Profile, content_type: str, size: int) -> None:
        if not profile.allows(content_type):
            raise UnsupportedType(
                f"profile {profile.name!r} does not accept {content_type!r}", allowed=list(profile.content_types)
            )
        if size > profile.max_size:
            raise TooLarge(
                f"{size} bytes is over the {profile.name!r} limit of {profile.max_size} bytes",
                max_size=profile.max_size,
            )
        if size < profile.min_size:
            raise Unprocessable(f"{size} bytes is under the {profile.name!r} minimum of {profile.min_size} bytes")

    def issue(self, owner: str, request: IssueUploadRequest) -> IssuedUpload:
        profile = self.profile(request.profile)
        content_type = request.content_type.lower()
        self.check(profile, content_type, request.size)
        metadata = dict(request.metadata or {})
        if sum(len(k) + len(v.encode()) for k, v in metadata.items()) > MAX_METADATA_BYTES:
            raise Unprocessable(f"metadata is over {MAX_METADATA_BYTES} bytes")
        if any(not value.isprintable() for value in metadata.values()):
            raise Unprocessable("metadata values must be printable text")

        now = self.clock()
        upload_id = keys.new_upload_id()
        key = keys.incoming_key(upload_id, request.filename)
        if self.quota is not None:
            self.quota.reserve(owner, request.size, now)

        issued: IssuedUpload
        record = UploadRecord(
            upload_id=upload_id,
            owner=owner,
            status=Status.PENDING,
            profile=profile.name,
            filename=keys.safe_filename(request.filename),
            key=key,
            content_type=content_type,
            size=request.size,
            checksum_sha256=request.checksum_sha256,
            metadata=metadata,
            created_at=now,
            updated_at=now,
            expires_at=now,
        )
        if profile.is_multipart(request.size):
            part_size = profile.part_size_for(request.size)
            part_count = math.ceil(request.size / part_size)
            s3_metadata = {"upload-id": upload_id, **metadata}
            record.s3_upload_id = self.storage.create_multipart(key, content_type, s3_metadata)
            record.part_size, record.part_count = part_size, part_count
            record.expires_at = now + MULTIPART_LIFETIME
            issued = IssuedUpload(
                upload_id=upload_id,
                key=key,
                expires_at=record.expires_at,
                multipart=MultipartInfo(part_size=part_size, part_count=part_count),
            )
        else:
            signed = presign.presign_post(
                self.s3,
                bucket=self.storage.bucket,
                key=key,
                content_type=content_type,
                size=request.size,
                upload_id=upload_id,
                metadata=metadata,
                expires_in=profile.url_ttl_seconds,
            )
            record.expires_at = now + timedelta(seconds=profile.url_ttl_seconds)
            issued = IssuedUpload(
                upload_id=upload_id,
                key=key,
                expires_at=record.expires_at,
                method="POST",
                url=signed.url,
                fields=signed.fields,
            )
        self.store.create(record)
        metrics.add_metric(name="UploadsIssued", unit="Count", value=1)
        logger.info(
            "upload issued",
            upload_id=upload_id,
            profile=profile.name,
            size=request.size,
            multipart=record.is_multipart,
        )
        return issued

    # read
    def get(self, owner: str, upload_id: str) -> UploadRecord:
        """The owner's upload; anyone else's, or none, is the same 404."""
        record = self.store.get(upload_id) if keys.is_upload_id(upload_id) else None
        if record is None or record.owner != owner:
            raise NotFound(f"no upload {upload_id!r}")
        return record

    # multipart
    def _open_multipart(self, owner: str, upload_id: str) -> UploadRecord:
        record = self.get(owner, upload_id)
        if not record.is_multipart:
            raise Conflict("this upload is a single POST, it has no parts")
        if record.status != Status.PENDING or self.clock() >= record.expires_at:
            raise Conflict(f"the upload is {record.view(self.clock()).status.value}, no longer open for parts")
        return record

    def sign_parts(self, owner: str, upload_id: str, part_numbers: Sequence[int]) -> list[SignedPart]:
        record = self._open_multipart(owner, upload_id)
        assert record.part_count is not None and record.s3_upload_id is not None
        if not part_numbers:
            raise InvalidRequest("partNumbers is empty")
        if len(part_numbers) > MAX_PARTS_PER_SIGN:
            raise InvalidRequest(f"at most {MAX_PARTS_PER_SIGN} parts per request")
        bad = [n for n in part_numbers if not 1 <= n <= record.part_count]
        if bad:
            raise InvalidRequest(f"part numbers out of range 1..{record.part_count}: {bad[:10]}")
        profile = self.profile(record.profile)
        expires_at = self.clock() + timedelta(seconds=profile.url_ttl_seconds)
        return [
            SignedPart(
                part_number=n,
                url=presign.presign_part(
                    self.s3,
                    bucket=self.storage.bucket,
                    key=record.key,
                    s3_upload_id=record.s3_upload_id,
                    part_number=n,
                    expires_in=profile.url_ttl_seconds,
                ),
                expires_at=expires_at,
            )
            for n in dict.fromkeys(part_numbers)
        ]

    def list_parts(self, owner: str, upload_id: str) -> tuple[UploadRecord, list[StoredPart]]:
        record = self._open_multipart(owner, upload_id)
        assert record.s3_upload_id is not None
        try:
            return record, self.storage.list_parts(record.key, record.s3_upload_id)
        except NoSuchUpload as exc:
            raise Conflict("S3 no longer has this multipart upload") from exc

    def complete(self, owner: str, upload_id: str, parts: Sequence[tuple[int, str]]) -> UploadRecord:
        record, stored = self.list_parts(owner, upload_id)
        assert record.s3_upload_id is not None and record.part_count is not None
        numbers = [n for n, _ in parts]
        if numbers != list(range(1, record.part_count + 1)):
            raise InvalidRequest(f"complete needs parts 1..{record.part_count}, each once, in order")
        have = {p.part_number: p for p in stored}
        missing = [n for n in numbers if n not in have]
        if missing:
            raise Conflict(f"S3 has not received parts {missing[:10]}")
        mismatched = [n for n, etag in parts if have[n].etag != etag.strip('"')]
        if mismatched:
            raise InvalidRequest(f"ETags do not match what S3 holds for parts {mismatched[:10]}")
        total = sum(have[n].size for n in numbers)
        if total != record.size:
            raise Unprocessable(f"the parts hold {total} bytes, the upload declared {record.size}")
        try:
            self.storage.complete_multipart(record.key, record.s3_upload_id, list(parts))
        except NoSuchUpload as exc:
            raise Conflict("S3 no longer has this multipart upload") from exc
        logger.info("multipart completed", upload_id=upload_id, parts=len(numbers), size=total)
        return record

    def cancel(self, owner: str, upload_id: str) -> UploadRecord:
        record = self.get(owner, upload_id)
        if record.status != Status.PENDING:
            raise Conflict(f"the upload is {record.status.value}; only a pending upload can be cancelled")
        if record.s3_upload_id is not None:
            self.storage.abort_multipart(record.key, record.s3_upload_id)
        try:
            record = self.store.transition(upload_id, Status.CANCELLED, [Status.PENDING], now=self.clock())
        except TransitionRefused as exc:
            raise Conflict("the upload changed state while being cancelled") from exc
        if self.quota is not None:
            self.quota.release(owner)
        logger.info("upload cancelled", upload_id=upload_id)
        return record

    @staticmethod
    def max_parts() -> int:
        return S3_MAX_PARTS
