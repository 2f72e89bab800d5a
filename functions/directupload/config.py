"""Configuration: environment variables parsed once into a validated model.

The same variables drive Lambda (set by template.yaml) and the local stack.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from directupload.backends import TrustedIssuers, parse_allow_list
from directupload.errors import ConfigError
from directupload.profiles import GiB, Profile, load_profiles

ENV_NAMES = {
    "uploads_table": "UPLOADS_TABLE",
    "uploads_bucket": "UPLOADS_BUCKET",
    "uploads_buckets": "UPLOADS_BUCKETS",
    "event_bus_name": "EVENT_BUS_NAME",
    "auth_mode": "AUTH_MODE",
    "stage": "STAGE",
    "rejected_objects": "REJECTED_OBJECTS",
    "profiles_json": "PROFILES_JSON",
    "quota_max_pending": "QUOTA_MAX_PENDING",
    "quota_daily_bytes": "QUOTA_DAILY_BYTES",
    "max_receive_count": "MAX_RECEIVE_COUNT",
    "record_retention_days": "RECORD_RETENTION_DAYS",
    "step_time_limit_seconds": "STEP_TIME_LIMIT_SECONDS",
    "step_memory_limit_mb": "STEP_MEMORY_LIMIT_MB",
    "download_domain": "DOWNLOAD_DOMAIN",
    "cloudfront_key_pair_id": "CLOUDFRONT_KEY_PAIR_ID",
    "cloudfront_private_key_secret_arn": "CLOUDFRONT_PRIVATE_KEY_SECRET_ARN",
    "malware_scanning": "MALWARE_SCANNING",
    "ingest_queue_url": "INGEST_QUEUE_URL",
    "trusted_issuer_role_arns": "TRUSTED_ISSUER_ROLE_ARNS",
}
# Downloads through CloudFront: all three set, or none (then downloads are S3 presigned GETs).
CLOUDFRONT_FIELDS = ("download_domain", "cloudfront_key_pair_id", "cloudfront_private_key_secret_arn")


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # Each field's description is the docs' meaning of its variable (docs/generated/environment.md).
    uploads_table: str = Field(min_length=1, description="the uploads DynamoDB table")
    uploads_bucket: str = Field(min_length=1, description="the default bucket: profiles that name none")
    uploads_buckets: str = Field(
        default="",
        pattern=r"^[a-z0-9.,-]*$",
        description="every bucket the functions may use, comma-separated (the template's ExistingBuckets,"
        " or the stack's own bucket); empty: UPLOADS_BUCKET alone",
    )
    event_bus_name: str = Field(min_length=1, description="the EventBridge bus outcomes are published on")
    # Required on purpose: auth is off only when someone says so.
    auth_mode: Literal["jwt", "none"] = Field(
        description="`jwt` (the owner is the token's `sub`) or `none` (one anonymous owner); never off by accident"
    )
    stage: str = Field(default="dev", description="the deployment stage")
    rejected_objects: Literal["delete", "quarantine"] = Field(
        default="quarantine", description="`quarantine` (moved under `quarantine/`) or `delete`"
    )
    profiles_json: str = Field(default="", description="replaces the built-in profiles (JSON: name -> profile)")
    quota_max_pending: int = Field(default=20, ge=1, description="uploads one owner may have open at once")
    quota_daily_bytes: int = Field(default=10 * GiB, ge=1, description="bytes one owner may be issued per UTC day")
    max_receive_count: int = Field(
        default=5, ge=1, description="the ingest queue's maxReceiveCount, so the last attempt records FAILED"
    )
    record_retention_days: int = Field(
        default=30, ge=1, description="how long records of unprocessed uploads live after their last change (TTL)"
    )
    # the budget of one file's decoding steps (processing/budget.py)
    step_time_limit_seconds: int = Field(
        default=120, ge=0, le=800, description="time budget of one file's decoding steps (0: in-process, no budget)"
    )
    step_memory_limit_mb: int = Field(default=640, ge=64, description="memory budget of one file's decoding steps")
    download_domain: str = Field(
        default="", pattern=r"^[A-Za-z0-9.-]*$", description="CloudFront domain that serves downloads"
    )
    cloudfront_key_pair_id: str = Field(default="", description="the CloudFront public key id signing downloads")
    cloudfront_private_key_secret_arn: str = Field(
        default="", description="the secret holding the CloudFront private key"
    )
    malware_scanning: Literal["enabled", "disabled"] = Field(
        default="enabled", description="whether a malware scanner reports verdicts (parameter MalwareProtection)"
    )
    ingest_queue_url: str = Field(
        default="", description="the ingest queue, where the processor schedules its own checks (a scan's deadline)"
    )
    trusted_issuer_role_arns: str = Field(
        default="",
        description="the IAM roles of the backends that may call /backend/uploads (comma-separated; empty: none)",
    )

    @model_validator(mode="after")
    def _cloudfront_all_or_nothing(self) -> Settings:
        given = [field for field in CLOUDFRONT_FIELDS if getattr(self, field)]
        if given and len(given) < len(CLOUDFRONT_FIELDS):
            missing = [ENV_NAMES[field] for field in CLOUDFRONT_FIELDS if field not in given]
            raise PydanticCustomError("cloudfront", "downloads through CloudFront also need " + ", ".join(missing))
        return self

    @field_validator("trusted_issuer_role_arns")
    @classmethod
    def _role_arns(cls, value: str) -> str:
        parse_allow_list(value)  # ValueError names the entry that is no role ARN
        return value

    @property
    def trusted_issuers(self) -> TrustedIssuers:
        return TrustedIssuers.of(parse_allow_list(self.trusted_issuer_role_arns))

    @property
    def buckets(self) -> tuple[str, ...]:
        """The configured buckets, the default one first."""
        named = (name.strip() for name in self.uploads_buckets.split(","))
        return tuple(dict.fromkeys([self.uploads_bucket, *(name for name in named if name)]))

    @property
    def downloads_through_cloudfront(self) -> bool:
        return bool(self.download_domain)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values = {field: env[name] for field, name in ENV_NAMES.items() if env.get(name, "") != ""}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                if not err["loc"]:  # a rule across variables names them in its message
                    problems.append(err["msg"])
                    continue
                field = str(err["loc"][0])
                problems.append(f"{ENV_NAMES.get(field, field)}: {err['msg']}")
            raise ConfigError("invalid configuration: " + "; ".join(problems)) from None

    @property
    def profiles(self) -> dict[str, Profile]:
        return _profiles(self.profiles_json)


@lru_cache(maxsize=8)
def _profiles(profiles_json: str) -> dict[str, Profile]:
    return load_profiles(profiles_json)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this container, validated once (cold start), profiles included."""
    settings = Settings.from_env()
    profiles = settings.profiles  # fail at cold start, not on the first request
    for name, profile in sorted(profiles.items()):
        if profile.bucket is not None and profile.bucket not in settings.buckets:
            raise ConfigError(
                f"profile {name!r} names the bucket {profile.bucket!r}, which is not one of the configured "
                f"buckets {list(settings.buckets)} (UPLOADS_BUCKETS; template parameter ExistingBuckets)"
            )
    if settings.malware_scanning == "disabled":
        unscannable = sorted(name for name, profile in profiles.items() if profile.scan == "required")
        if unscannable:
            # fail closed, and loudly: without a scanner these uploads could never be accepted
            raise ConfigError(
                f"MALWARE_SCANNING is disabled but profiles {unscannable} require a scan: enable "
                "MalwareProtection or set their scan to off (ProfilesJson)"
            )
    return settings
