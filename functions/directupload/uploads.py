"""The upload use cases behind every route: issue, status, parts, complete, cancel.

Handlers (the JSON API and the Uppy-compatible routes) parse requests and call these;
this module knows nothing of HTTP beyond the domain errors it raises.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from directupload import downloads, keys, listing, presign
from directupload.errors import (
    Conflict,
    NotFound,
    TooLarge,
    UnknownProfile,
    Unprocessable,
    UnsupportedType,
)
from directupload.models import (
    DELETABLE,
    EXPIRY_GRACE,
    MAX_METADATA_BYTES,
    Download,
    IssuedUpload,
    IssueUploadRequest,
    MultipartInfo,
    Status,
    UploadPage,
    UploadRecord,
    utcnow,
)
from directupload.observability import logger, metrics
from directupload.profiles import S3_MAX_PARTS, S3_MAX_SINGLE_POST, S3_MIN_PART, Profile
from directupload.storage import NoSuchUpload, PartsRefused, Storage, StoredPart
from directupload.store import TransitionRefused, UploadStore

# Lifetime of a multipart upload: the bucket's lifecycle aborts incomplete ones after a day.
MULTIPART_LIFETIME = timedelta(days=1)
MAX_PARTS_PER_SIGN = 1000
# Listing: a page holds at most this many uploads, and reads at most this many index pages
# to fill itself when a filter skips most records (then it ends early, with a cursor).
MAX_PAGE = 100
MAX_INDEX_READS = 5
# A download of a profile no longer configured
DEFAULT_DOWNLOAD_TTL = 300


# A multipart upload in these states was completed (processing has seen its object).
_COMPLETED = frozenset({Status.UPLOADED, Status.SCANNING, Status.PROCESSED, Status.REJECTED, Status.FAILED})


class Deletion(Protocol):
    def delete(self, record: UploadRecord, reason: str = "owner") -> UploadRecord: ...


class Quota(Protocol):
    def reserve(
        self,
        owner: str,
        upload_id: str,
        size: int,
        now: datetime,
        open_until: datetime,
        *,
        with_put: dict[str, Any] | None = None,
    ) -> None: ...
    def release(self, owner: str, upload_id: str) -> None: ...
    def settle(self, owner: str, issued_at: datetime, refund: int) -> None: ...


class DownloadSigner(Protocol):
    """Signs download URLs somewhere other than S3 (a CDN), with the same pinned headers."""

    def sign(self, key: str, *, expires_at: datetime, content_type: str, disposition: str) -> str: ...


class Transfer(StrEnum):
    """How the bytes travel. Our own clients let the profile decide; Uppy decides for itself."""

    PROFILE = "profile"  # by the profile's threshold: one POST, or multipart in parts we size
    POST = "post"  # one presigned POST whatever the threshold (Uppy's /s3/params with a size)
    # One presigned POST of any size the profile allows up to the declared ceiling (Uppy's
    # /s3/params: Uppy sends no size). The real size becomes the size when processing records it.
    POST_UP_TO = "post-up-to"
    # Multipart whatever the size, in parts the client sizes (Uppy's /s3/multipart). The
    # declared size is then a ceiling; the parts' real total becomes the size at completion.
    CLIENT_PARTS = "client-parts"

    def is_multipart(self, profile: Profile, size: int) -> bool:
        if self is Transfer.PROFILE:
            return profile.is_multipart(size)
        return self is Transfer.CLIENT_PARTS


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
        deleter: Deletion | None = None,
        download_signer: DownloadSigner | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.profiles = profiles
        self.store = store
        self.storage = storage
        self.s3 = s3
        self.quota = quota
        self.deleter = deleter
        self.download_signer = download_signer  # None: presigned GETs straight from the bucket
        self.clock = clock

    def storage_of(self, record: UploadRecord) -> Storage:
        """The bucket that holds this upload (records without one: the default bucket)."""
        return self.storage.in_bucket(record.bucket)

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
                maxSize=profile.max_size,
            )
        if size < profile.min_size:
            raise Unprocessable(f"{size} bytes is under the {profile.name!r} minimum of {profile.min_size} bytes")

    def issue(
        self,
        owner: str,
        request: IssueUploadRequest,
        transfer: Transfer = Transfer.PROFILE,
        *,
        issued_by: str | None = None,
    ) -> IssuedUpload:
        """Issue an upload for ``owner``; ``issued_by``: the trusted backend that asks for them."""
        profile = self.profile(request.profile)
        content_type = request.content_type.lower()
        self.check(profile, content_type, request.size)
        if transfer in (Transfer.POST, Transfer.POST_UP_TO) and request.size > S3_MAX_SINGLE_POST:
            raise TooLarge(f"S3 takes at most {S3_MAX_SINGLE_POST} bytes in one POST: upload it multipart")
        metadata = dict(request.metadata or {})
        if sum(len(k) + len(v.encode()) for k, v in metadata.items()) > MAX_METADATA_BYTES:
            raise Unprocessable(f"metadata is over {MAX_METADATA_BYTES} bytes")
        if "upload-id" in metadata:
            raise Unprocessable("metadata key 'upload-id' is the server's own (it names the upload)")
        # S3 stores user metadata as US-ASCII (botocore refuses anything else on multipart uploads)
        if any(not value.isascii() for value in metadata.values()):
            raise Unprocessable("metadata values must be ASCII text (S3 stores user metadata as US-ASCII)")
        if any(not value.isprintable() for value in metadata.values()):
            raise Unprocessable("metadata values must be printable text")

        now = self.clock()
        upload_id = keys.new_upload_id()
        key = keys.incoming_key(upload_id, request.filename, scanned=profile.scan == "required")
        multipart = transfer.is_multipart(profile, request.size)

        issued: IssuedUpload
        record = UploadRecord(
            upload_id=upload_id,
            owner=owner,
            issued_by=issued_by,
            status=Status.PENDING,
            profile=profile.name,
            filename=keys.safe_filename(request.filename),
            key=key,
            content_type=content_type,
            size=request.size,
            checksum_sha256=request.checksum_sha256,
            metadata=metadata,
            bucket=self.storage.in_bucket(profile.bucket).bucket,
            created_at=now,
            updated_at=now,
            expires_at=now,
        )
        if transfer is Transfer.POST_UP_TO:
            record.size_exact, record.min_size = False, profile.min_size
        if multipart:
            # S3's multipart upload is created by the first parts call (_multipart_of), not here:
            # issuing costs the same for 5 GiB as for 1 KiB, and an upload never started costs none.
            record.multipart = True
            # Only for a client that said it sends part checksums: S3 then wants one with every part.
            # SHA256 in a multipart upload is COMPOSITE (a checksum of the parts' checksums), so S3
            # checks each part; the whole file's SHA-256 is still verified at processing.
            if request.part_checksums and transfer is Transfer.PROFILE:
                record.checksum_algorithm = "SHA256"
            record.expires_at = now + MULTIPART_LIFETIME
            plan = None  # parts the client sizes: no plan, up to S3's 10,000
            if transfer is Transfer.PROFILE:
                part_size = profile.part_size_for(request.size)
                plan = MultipartInfo(
                    part_size=part_size,
                    part_count=math.ceil(request.size / part_size),
                    checksum_algorithm=record.checksum_algorithm,
                )
                record.part_size, record.part_count = plan.part_size, plan.part_count
            issued = IssuedUpload(upload_id=upload_id, key=key, expires_at=record.expires_at, multipart=plan)
        else:
            signed = presign.presign_post(
                self.s3,
                bucket=self.storage_of(record).bucket,
                key=key,
                content_type=content_type,
                size=request.size,
                upload_id=upload_id,
                metadata=metadata,
                expires_in=profile.url_ttl_seconds,
                min_size=None if record.size_exact else record.min_size,
                checksum_sha256=request.checksum_sha256,
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
        if self.quota is not None:  # the owner's quota counted and the record written in one transaction
            lifetime = MULTIPART_LIFETIME if multipart else timedelta(seconds=profile.url_ttl_seconds) + EXPIRY_GRACE
            self.quota.reserve(
                owner, upload_id, request.size, now, now + lifetime, with_put=self.store.create_request(record)
            )
        else:
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

    def download(self, owner: str, upload_id: str, variant: str | None = None) -> Download:
        """A presigned GET of the verified object, or of one of its variants (409 unless PROCESSED)."""
        record = self.get(owner, upload_id)
        now = self.clock()
        if record.status != Status.PROCESSED or record.file_key is None:
            status = record.view(now).status.value
            raise Conflict(f"the upload is {status}; only a processed upload can be downloaded")
        if record.retain_until is not None and now >= record.retain_until:
            raise Conflict("the upload's retention has lapsed; it is being removed")
        profile = self.profiles.get(record.profile)
        ttl = profile.download_ttl_seconds if profile is not None else DEFAULT_DOWNLOAD_TTL
        result = record.result or {}
        if variant is None:
            key, size, sha256 = record.file_key, record.size, record.sha256
            content_type = downloads.served_type(result.get("contentType"), record.content_type)
            # the image step decoded every frame of it: a raster image, safe to show
            inline = downloads.is_inline(content_type, decoded_as_image="width" in result)
            filename = downloads.served_name(record.filename, content_type)
        else:
            found = record.variants.get(variant)
            if found is None:
                raise NotFound(f"the upload has no variant {variant!r}", variants=sorted(record.variants))
            key, size, sha256, content_type = found.key, found.size, found.sha256, found.content_type
            inline = downloads.is_inline(content_type, decoded_as_image=True)  # our own re-encoding
            filename = downloads.variant_filename(record.filename, variant, found.key)
        disposition = downloads.disposition(filename, content_type, inline=inline)
        expires_at = now + timedelta(seconds=ttl)
        if self.download_signer is not None:
            url = self.download_signer.sign(
                key, expires_at=expires_at, content_type=content_type, disposition=disposition
            )
        else:
            url = self.storage_of(record).presign_get(
                key, expires_in=ttl, content_type=content_type, disposition=disposition
            )
        logger.info("download signed", upload_id=upload_id, variant=variant, ttl=ttl)
        return Download(
            url=url,
            expires_at=expires_at,
            variant=variant,
            content_type=content_type,
            disposition="inline" if inline else "attachment",
            filename=filename,
            size=size,
            sha256=sha256,
        )

    def list_uploads(
        self,
        owner: str,
        *,
        status: Status | None = None,
        profile: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> UploadPage:
        """The owner's uploads, newest first, ``limit`` at a time; ``nextCursor`` continues."""
        if status == Status.DELETED:
            raise Unprocessable("deleted uploads are not listed (GET /uploads/{uploadId} answers for a day)")
        after = listing.decode(cursor) if cursor else None
        limit = max(1, min(limit, MAX_PAGE))
        now = self.clock()
        items = []
        position: tuple[str, str] | None = None
        for _ in range(MAX_INDEX_READS):
            records, more = self.store.by_owner(owner, limit=limit, after=after)
            for index, record in enumerate(records):
                position = (record.upload_id, record.created_at.isoformat())
                view = record.view(now)
                if view.status == Status.DELETED or (status and view.status != status):
                    continue
                if profile and record.profile != profile:
                    continue
                items.append(view)
                if len(items) == limit:
                    last_of_all = more is None and index == len(records) - 1
                    return UploadPage(items=items, next_cursor=None if last_of_all else listing.encode(position))
            if more is None:
                return UploadPage(items=items)
            after = more
        # the filter skipped most of what was read: hand back what was found, and where to go on
        return UploadPage(items=items, next_cursor=listing.encode(position) if position else None)

    def remove(self, owner: str, upload_id: str) -> UploadRecord:
        """DELETE /uploads/{id}: cancel a pending upload (aborting its multipart upload), or
        delete a final one with its objects."""
        record = self.get(owner, upload_id)
        if record.status == Status.PENDING:
            return self.cancel(owner, upload_id)
        if record.status not in DELETABLE and record.status != Status.DELETED:
            raise Conflict(f"the upload is {record.status.value}; delete it once processing is over")
        if self.deleter is None:
            raise Conflict("deleting uploads is not configured")
        return self.deleter.delete(record)

    # multipart
    def _open_multipart(self, owner: str, upload_id: str, record: UploadRecord | None = None) -> UploadRecord:
        """The owner's multipart upload while it is open for parts (``record``: as just read)."""
        record = record or self.get(owner, upload_id)
        if not record.is_multipart:
            raise Conflict("this upload is a single POST, it has no parts")
        if record.status != Status.PENDING or self.clock() >= record.expires_at:
            raise Conflict(f"the upload is {record.view(self.clock()).status.value}, no longer open for parts")
        return record

    def sign_parts(
        self, owner: str, upload_id: str, part_numbers: Sequence[int], checksums: Mapping[int, str] | None = None
    ) -> list[SignedPart]:
        """Presigned PUT URLs for the parts; any part, any number of times, while the upload is open.

        ``checksums`` (part number -> base64 SHA-256 of the part) are signed into the URLs, so S3
        refuses a part whose bytes differ. An upload opened with ``partChecksums`` needs one for
        every part (S3 refuses a part without); any other upload takes none (S3 refuses them)."""
        record = self._open_multipart(owner, upload_id)
        if not part_numbers:
            raise Unprocessable("partNumbers is empty")
        if len(part_numbers) > MAX_PARTS_PER_SIGN:
            raise Unprocessable(f"at most {MAX_PARTS_PER_SIGN} parts per request")
        last = record.part_count or self._client_parts_bound(record)
        bad = [n for n in part_numbers if not 1 <= n <= last]
        if bad:
            raise Unprocessable(f"part numbers out of range 1..{last}: {bad[:10]}")
        if len(set(part_numbers)) != len(part_numbers):
            raise Unprocessable("partNumbers lists a part more than once")
        checksums = dict(checksums or {})
        if record.checksum_algorithm is None and checksums:
            raise Unprocessable("this upload was issued without partChecksums: its parts take no checksumSha256")
        if record.checksum_algorithm is not None:
            missing = [n for n in part_numbers if n not in checksums]
            if missing:
                raise Unprocessable(
                    f"this upload was issued with partChecksums: give each part's checksumSha256 "
                    f"(base64 SHA-256), missing for parts {missing[:10]}"
                )
        bad_checksums = [n for n, value in checksums.items() if not presign.is_sha256_base64(value)]
        if bad_checksums:
            raise Unprocessable(f"checksumSha256 must be the base64 of 32 bytes (parts {bad_checksums[:10]})")
        profile = self.profile(record.profile)
        if record.part_count is None and record.s3_upload_id is not None:
            self._within_ceiling(record, record.s3_upload_id)  # (a multipart upload not yet created holds nothing)
        s3_upload_id = self._multipart_of(record)
        expires_at = self.clock() + timedelta(seconds=profile.part_url_lifetime)
        return [
            SignedPart(
                part_number=n,
                url=presign.presign_part(
                    self.s3,
                    bucket=self.storage_of(record).bucket,
                    key=record.key,
                    s3_upload_id=s3_upload_id,
                    part_number=n,
                    expires_in=profile.part_url_lifetime,
                    content_length=self._planned_length(record, n),
                    checksum_sha256=checksums.get(n),
                ),
                expires_at=expires_at,
            )
            for n in part_numbers
        ]

    def _multipart_of(self, record: UploadRecord) -> str:
        """S3's multipart upload for ``record``, created now if this is the first parts call.

        Two first calls at once each create one in S3; the conditional write of its id on the
        record lets one win, and the loser aborts its own and signs for the winner's."""
        if record.s3_upload_id is not None:
            return record.s3_upload_id
        s3_metadata = {"upload-id": record.upload_id, **record.metadata}
        created = self.storage_of(record).create_multipart(
            record.key, record.content_type, s3_metadata, checksum_algorithm=record.checksum_algorithm
        )
        attached = self.store.attach_multipart(record.upload_id, created)
        if attached is not None:
            logger.info("multipart created", upload_id=record.upload_id)
            return created
        self.storage_of(record).abort_multipart(record.key, created)  # lost the race (or the upload closed)
        fresh = self.store.get(record.upload_id)
        if fresh is None or fresh.status != Status.PENDING or fresh.s3_upload_id is None:
            raise Conflict("the upload changed state while its parts were being signed")
        return fresh.s3_upload_id

    @staticmethod
    def _planned_length(record: UploadRecord, n: int) -> int | None:
        """The exact size of part ``n`` of a planned upload (the last one holds the rest)."""
        if record.part_size is None or record.part_count is None:
            return None  # the client sizes its parts (Uppy): bounded by _within_ceiling instead
        return record.size - record.part_size * (record.part_count - 1) if n == record.part_count else record.part_size

    @staticmethod
    def _client_parts_bound(record: UploadRecord) -> int:
        """The most parts a client that sizes its own (Uppy) can need for the upload's ceiling:
        every part but the last holds at least S3's 5 MiB (Uppy's chunks never hold less), so a
        ceiling of 1 KiB needs one part, 100 MiB twenty. No part number past it is signed."""
        return min(S3_MAX_PARTS, max(1, -(-record.size // S3_MIN_PART)))

    def _within_ceiling(self, record: UploadRecord, s3_upload_id: str) -> None:
        """Parts the client sizes are unbounded each (up to S3's 5 GiB: a presigned PUT cannot sign
        a range of lengths): sign no more once S3 holds the upload's ceiling. With the part numbers
        bounded (``_client_parts_bound``), S3 holds at most that many parts of 5 GiB before a
        complete over the ceiling aborts them (413), or the bucket's lifecycle rule does a day
        after they began."""
        try:
            held = sum(part.size for part in self.storage_of(record).list_parts(record.key, s3_upload_id))
        except NoSuchUpload as exc:
            raise Conflict("S3 no longer has this multipart upload") from exc
        if held >= record.size:
            raise TooLarge(
                f"S3 already holds {held} bytes of this upload, its ceiling of {record.size}: complete it",
                maxSize=record.size,
            )

    def list_parts(self, owner: str, upload_id: str) -> tuple[UploadRecord, list[StoredPart]]:
        record = self._open_multipart(owner, upload_id)
        if record.s3_upload_id is None:
            return record, []  # no parts call yet: S3 has no multipart upload, so no parts
        try:
            return record, self.storage_of(record).list_parts(record.key, record.s3_upload_id)
        except NoSuchUpload as exc:
            raise Conflict("S3 no longer has this multipart upload") from exc

    def complete(
        self,
        owner: str,
        upload_id: str,
        parts: Sequence[tuple[int, str]],
        checksums: Mapping[int, str] | None = None,
    ) -> UploadRecord:
        """Assemble the object from its parts, once they are all in S3 and add up.

        An upload opened with part checksums names each part's checksum in the completion: the one
        S3 lists for the part, or else the client's (``checksums``, base64).

        409 when S3's parts differ from the client's list (missing, other ETag): list them and
        retry. Completing again after a lost reply answers the same record, from the record once
        processing has begun.
        """
        record = self.get(owner, upload_id)
        if record.is_multipart and record.status in _COMPLETED:
            return record  # a replay: S3 assembled it, processing took it from there
        record = self._open_multipart(owner, upload_id, record)
        # an ETag as S3 lists it (clients send it quoted, or as a header gave it): checked and sent so
        parts = [(n, etag.strip().strip('"')) for n, etag in parts]
        s3_upload_id = record.s3_upload_id
        if s3_upload_id is None:  # no part was ever signed, so S3 holds none
            self._check_parts(record, parts, [])
            raise Conflict("S3 has received no parts of this upload")
        try:
            stored = self.storage_of(record).list_parts(record.key, s3_upload_id)
        except NoSuchUpload as exc:
            if self._completed(record):
                return record  # the client retries a complete whose reply it lost
            raise Conflict("S3 no longer has this multipart upload") from exc
        try:
            total = self._check_parts(record, parts, stored)
        except TooLarge:
            self.storage_of(record).abort_multipart(
                record.key, s3_upload_id
            )  # it can never be accepted: free its parts
            raise
        if record.part_count is None and total != record.size:
            # Parts the client sized (Uppy): the declared size was a ceiling; the real total is
            # the size from now on, which processing verifies the object against.
            ceiling = record.size
            try:  # only while the size is still the ceiling: two completes at once settle once
                record = self.store.settle_size(upload_id, ceiling=ceiling, size=total, now=self.clock())
            except TransitionRefused as exc:
                fresh = self.get(owner, upload_id)
                if fresh.status != Status.PENDING or fresh.size != total:
                    raise Conflict("the upload changed state while being completed") from exc
                record = fresh  # a parallel complete of the same parts settled it
            else:
                if self.quota is not None:
                    self.quota.settle(owner, record.created_at, ceiling - total)  # charged at the ceiling
        part_checksums: dict[int, str] | None = None
        if record.checksum_algorithm is not None:
            held = {p.part_number: p.checksum_sha256 for p in stored}
            given = checksums or {}
            part_checksums = {n: c for n, _ in parts if (c := held.get(n) or given.get(n))}
        try:
            self.storage_of(record).complete_multipart(record.key, s3_upload_id, list(parts), part_checksums)
        except PartsRefused as exc:
            raise Conflict(f"S3 refused the parts ({exc.code}): list them and retry") from exc
        except NoSuchUpload as exc:
            if self._completed(record):
                return record
            raise Conflict("S3 no longer has this multipart upload") from exc
        logger.info("multipart completed", upload_id=upload_id, parts=len(parts), size=total)
        return record

    def _check_parts(self, record: UploadRecord, parts: Sequence[tuple[int, str]], stored: list[StoredPart]) -> int:
        """The parts' total size, if the client's list matches S3's parts and the upload's limits."""
        numbers = [n for n, _ in parts]
        count = record.part_count or len(parts)
        if not parts or numbers != list(range(1, count + 1)):
            raise Unprocessable(f"complete needs parts 1..{count}, each once, in order")
        have = {p.part_number: p for p in stored}
        missing = [n for n in numbers if n not in have]
        if missing:
            raise Conflict(f"S3 has not received parts {missing[:10]}")
        mismatched = [n for n, etag in parts if have[n].etag != etag]
        if mismatched:
            raise Conflict(f"ETags do not match what S3 holds for parts {mismatched[:10]}")
        sizes = [have[n].size for n in numbers]
        total = sum(sizes)
        if record.part_count is not None and total != record.size:
            raise Unprocessable(f"the parts hold {total} bytes, the upload declared {record.size}")
        if total > record.size:
            raise TooLarge(f"the parts hold {total} bytes, over this upload's {record.size}", maxSize=record.size)
        small = [n for n, size in zip(numbers[:-1], sizes[:-1], strict=True) if size < S3_MIN_PART]
        if small:
            raise Unprocessable(f"parts {small[:10]} are under S3's 5 MiB minimum (only the last may be smaller)")
        min_size = self.profile(record.profile).min_size
        if total < min_size:
            raise Unprocessable(f"the parts hold {total} bytes, under the {record.profile!r} minimum of {min_size}")
        return total

    def _completed(self, record: UploadRecord) -> bool:
        """Whether S3 assembled the object (a complete whose reply was lost): its key is there. Keys
        are unique per upload, so the name alone tells; the API role may list names under
        incoming/, never read the unverified bytes (HeadObject needs s3:GetObject)."""
        return self.storage_of(record).exists(record.key)

    def cancel(self, owner: str, upload_id: str, *, again: bool = False) -> UploadRecord:
        """PENDING to CANCELLED, its multipart upload aborted. ``again``: an upload cancelled
        already answers as it is (an abort that is repeated, as S3's own may be), not 409."""
        record = self.get(owner, upload_id)
        if again and record.status == Status.CANCELLED:
            return self._cancelled(owner, record)  # what a first cancel that failed half-way still owes
        if record.status != Status.PENDING:
            raise Conflict(f"the upload is {record.status.value}; only a pending upload can be cancelled")
        aborted = record.s3_upload_id
        if aborted is not None:
            self.storage_of(record).abort_multipart(record.key, aborted)
        try:
            record = self.store.transition(upload_id, Status.CANCELLED, now=self.clock())
        except TransitionRefused as exc:
            fresh = self.store.get(upload_id)
            if again and fresh is not None and fresh.status == Status.CANCELLED:
                return self._cancelled(owner, fresh)  # a cancel beside this one went first
            raise Conflict("the upload changed state while being cancelled") from exc
        logger.info("upload cancelled", upload_id=upload_id)
        return self._cancelled(owner, record, aborted)

    def _cancelled(self, owner: str, record: UploadRecord, aborted: str | None = None) -> UploadRecord:
        """A CANCELLED upload's S3 multipart upload aborted and its quota slot given back (both
        idempotent, so a repeated cancel finishes what a first one could not)."""
        if record.s3_upload_id is not None and record.s3_upload_id != aborted:
            # a first parts call created it while the cancel ran (or a first cancel failed before
            # it): it can no longer be used
            self.storage_of(record).abort_multipart(record.key, record.s3_upload_id)
        if self.quota is not None:
            self.quota.release(owner, record.upload_id)
        return record
