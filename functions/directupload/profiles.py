"""Upload profiles: what may be uploaded, how big, for how long, processed how.

Profiles are configuration. The built-in set below can be replaced wholesale with the
``PROFILES_JSON`` variable (a JSON object of name -> profile), validated at cold start.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from directupload.errors import ConfigError
from directupload.processing.steps import STEPS, VERIFY

MiB = 1024 * 1024
GiB = 1024 * MiB

# S3 hard limits (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html)
S3_MAX_SINGLE_POST = 5 * GiB
S3_MIN_PART = 5 * MiB
S3_MAX_PART = 5 * GiB
S3_MAX_PARTS = 10_000
S3_MAX_OBJECT = 5 * 1024 * GiB

# Declared types of documents a browser runs script in (HTML, XHTML, SVG, XML with stylesheets).
ACTIVE_TYPES = frozenset(
    {"text/html", "application/xhtml+xml", "image/svg+xml", "text/xml", "application/xml", "text/javascript"}
)


class Profile(BaseModel):
    """One named kind of upload (as UploadThing's file routes)."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True, extra="forbid")

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")]
    content_types: Annotated[tuple[str, ...], Field(min_length=1)]
    max_size: Annotated[int, Field(gt=0, le=S3_MAX_OBJECT)]
    min_size: Annotated[int, Field(ge=1)] = 1
    url_ttl_seconds: Annotated[int, Field(ge=60, le=3600)] = 900
    # Lifetime of a multipart part URL; None: url_ttl_seconds. Longer suits mobile apps that send
    # parts in the background and may be suspended for hours (they re-sign on resume anyway). A
    # URL signed with the function's temporary credentials lives at most as long as they do.
    part_url_ttl_seconds: Annotated[int | None, Field(ge=60, le=21600)] = None
    steps: tuple[str, ...] = (VERIFY,)
    # Uploads of at least this many bytes go multipart; None: never.
    multipart_threshold: Annotated[int | None, Field(ge=S3_MIN_PART)] = None
    part_size: Annotated[int, Field(ge=S3_MIN_PART, le=S3_MAX_PART)] = 16 * MiB
    # Lifetime of a download URL (GET /uploads/{id}/download).
    download_ttl_seconds: Annotated[int, Field(ge=10, le=3600)] = 300
    # Processed uploads are removed (object, derived files, record) this many days after
    # processing; None: kept until their owner deletes them.
    retain_days: Annotated[int | None, Field(ge=1, le=36500)] = None
    # HTML, XHTML and SVG documents run script in a browser: refused unless a profile says so
    # (and then only ever downloaded as attachments)
    allow_active_content: bool = False
    # "required": PROCESSED only once the malware scanner found no threat in the verified bytes
    # (GuardDuty Malware Protection on AWS, ClamAV locally); a threat, a failed or unsupported
    # scan, or no verdict within scan_timeout_seconds is REJECTED. "off": no scan.
    scan: Literal["required", "off"] = "required"
    scan_timeout_seconds: Annotated[int, Field(ge=5, le=900)] = 600
    # The bucket its uploads go to, one of the configured set (checked at cold start, config.py);
    # None: the default bucket.
    bucket: Annotated[str | None, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")] = None

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        if self.min_size > self.max_size:
            raise ValueError("minSize is larger than maxSize")
        unknown = set(self.steps) - {VERIFY, *STEPS}
        if unknown:
            raise ValueError(f"unknown processing steps {sorted(unknown)}; known: {sorted({VERIFY, *STEPS})}")
        if VERIFY not in self.steps:
            raise ValueError(f"every profile lists {VERIFY!r}: it always runs, before the other steps")
        single_max = self.max_size if self.multipart_threshold is None else self.multipart_threshold - 1
        if single_max > S3_MAX_SINGLE_POST:
            raise ValueError("uploads over 5 GiB need multipart: set multipartThreshold")
        # part_size_for() grows the part size, but never past S3's 5 GiB part limit
        if self.multipart_threshold is not None and self.max_size > S3_MAX_PART * S3_MAX_PARTS:
            raise ValueError("maxSize exceeds what 10,000 parts can hold")
        for pattern in self.content_types:
            if pattern.count("/") != 1:
                raise ValueError(f"content type {pattern!r} is not type/subtype")
            if pattern in ACTIVE_TYPES and not self.allow_active_content:
                raise ValueError(f"{pattern} is active content (it runs script): set allowActiveContent to accept it")
        return self

    @property
    def part_url_lifetime(self) -> int:
        return self.part_url_ttl_seconds or self.url_ttl_seconds

    def allows(self, content_type: str) -> bool:
        if content_type in ACTIVE_TYPES and not self.allow_active_content:
            return False  # `image/*` does not mean SVG
        return any(fnmatch.fnmatchcase(content_type, pattern) for pattern in self.content_types)

    def is_multipart(self, size: int) -> bool:
        return self.multipart_threshold is not None and size >= self.multipart_threshold

    def part_size_for(self, size: int) -> int:
        """The profile's part size, grown (in whole MiB) when 10,000 parts would not hold ``size``."""
        part = self.part_size
        if size > part * S3_MAX_PARTS:
            part = -(-size // S3_MAX_PARTS)
            part = -(-part // MiB) * MiB
        return part


BUILTIN_PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="avatar",
            content_types=("image/jpeg", "image/png", "image/webp", "image/gif"),
            max_size=5 * MiB,
            url_ttl_seconds=300,
            steps=(VERIFY, "image"),
            scan="off",  # decoded by the image step and served with its sniffed type; see docs/profiles.md
        ),
        Profile(
            name="document",
            content_types=("application/pdf",),
            max_size=50 * MiB,
            url_ttl_seconds=900,
            steps=(VERIFY, "pdf"),
        ),
        Profile(
            name="file",
            content_types=(
                "image/*",
                "video/*",
                "audio/*",
                "text/plain",
                "text/csv",
                "application/json",
                "application/pdf",
                "application/zip",
                "application/octet-stream",
            ),
            max_size=100 * MiB,
            multipart_threshold=64 * MiB,
            url_ttl_seconds=900,
        ),
        Profile(
            name="video",
            content_types=("video/mp4", "video/quicktime", "video/webm"),
            max_size=5 * GiB,
            multipart_threshold=16 * MiB,
            part_size=16 * MiB,
            url_ttl_seconds=900,
            scan="off",  # GBs per file: a scan per GB is the largest cost line; see docs/profiles.md
        ),
    )
}


def load_profiles(profiles_json: str | None) -> dict[str, Profile]:
    """Built-in profiles, or the ones in ``profiles_json``; a bad document is a ConfigError."""
    if not profiles_json or not profiles_json.strip():
        return dict(BUILTIN_PROFILES)
    try:
        raw = json.loads(profiles_json)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"PROFILES_JSON is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict) or not raw:
        raise ConfigError("PROFILES_JSON must be a non-empty JSON object of name -> profile")
    profiles: dict[str, Profile] = {}
    for name, body in raw.items():
        if not isinstance(body, dict):
            raise ConfigError(f"PROFILES_JSON: profile {name!r} must be an object")
        try:
            profiles[name] = Profile.model_validate({**body, "name": name})
        except ValidationError as exc:
            raise ConfigError(f"PROFILES_JSON: profile {name!r} is invalid: {exc}") from exc
    return profiles
