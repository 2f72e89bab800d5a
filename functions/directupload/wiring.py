"""The composition root: builds each function's objects once per container, from settings."""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from typing import TYPE_CHECKING

from directupload import aws
from directupload.config import get_settings
from directupload.deletion import Deleter
from directupload.events import EventPublisher
from directupload.quotas import OwnerQuota
from directupload.storage import Storage
from directupload.store import UploadStore
from directupload.uploads import UploadService

if TYPE_CHECKING:
    from directupload.cdn import CloudFrontUrlSigner
    from directupload.processing.pipeline import Processor
    from directupload.webhooks import DeadLetters, WebhookSender, WebhookSettings


@cache
def store() -> UploadStore:
    settings = get_settings()
    return UploadStore(
        settings.uploads_table, aws.client("dynamodb"), retention=timedelta(days=settings.record_retention_days)
    )


@cache
def storage() -> Storage:
    settings = get_settings()
    return Storage(settings.uploads_bucket, aws.client("s3"), buckets=settings.buckets)


@cache
def upload_service() -> UploadService:
    settings = get_settings()
    return UploadService(
        profiles=settings.profiles,
        store=store(),
        storage=storage(),
        s3=aws.client("s3"),
        quota=quota(),
        deleter=deleter(),
        download_signer=download_signer(),
    )


@cache
def download_signer() -> CloudFrontUrlSigner | None:
    """CloudFront signed URLs when the settings name a distribution; else None (S3 presigned GETs).
    The private key is read from Secrets Manager on the first download, not here."""
    settings = get_settings()
    if not settings.downloads_through_cloudfront:
        return None
    # imported here: without a distribution the API never loads the RSA signing code
    from directupload.cdn import CloudFrontUrlSigner, SecretPrivateKey

    return CloudFrontUrlSigner(
        domain=settings.download_domain,
        key_pair_id=settings.cloudfront_key_pair_id,
        private_key=SecretPrivateKey(settings.cloudfront_private_key_secret_arn, lambda: aws.client("secretsmanager")),
    )


@cache
def publisher() -> EventPublisher:
    return EventPublisher(get_settings().event_bus_name, aws.client("events"))


@cache
def deleter() -> Deleter:
    return Deleter(store=store(), storage=storage())


@cache
def quota() -> OwnerQuota:
    settings = get_settings()
    return OwnerQuota(
        settings.uploads_table,
        aws.client("dynamodb"),
        max_pending=settings.quota_max_pending,
        daily_bytes=settings.quota_daily_bytes,
    )


@cache
def processor() -> Processor:
    # imported here: the API function never loads the processing code (sniffing, steps)
    from directupload.processing.budget import Budget
    from directupload.processing.pipeline import Processor

    settings = get_settings()
    return Processor(
        profiles=settings.profiles,
        store=store(),
        storage=storage(),
        rejected_objects=settings.rejected_objects,
        quota=quota(),
        budget=Budget(settings.step_time_limit_seconds, settings.step_memory_limit_mb * 1024 * 1024)
        if settings.step_time_limit_seconds
        else None,
    )


@cache
def webhook_settings() -> WebhookSettings:
    """WebhookFunction's own settings: it needs none of the upload settings, only its URL, secret and
    dead-letter queue."""
    import os

    from directupload.webhooks import WebhookSettings

    return WebhookSettings.from_env(os.environ)


@cache
def webhook_sender() -> WebhookSender:
    from directupload.webhooks import SigningSecret, WebhookSender

    settings = webhook_settings()
    secret = SigningSecret(settings.secret_arn, lambda: aws.client("secretsmanager"))
    return WebhookSender(settings.url, secret, timeout=settings.timeout_seconds)


@cache
def webhook_dead_letters() -> DeadLetters:
    from directupload.webhooks import DeadLetters

    return DeadLetters(webhook_settings().dead_letter_queue_url, aws.client("sqs"))


def forget_clients() -> None:
    """Forget every built object that holds a boto3 client (they are built again on next use);
    the settings stay."""
    for factory in (
        store,
        storage,
        upload_service,
        processor,
        quota,
        publisher,
        deleter,
        download_signer,
        webhook_sender,
        webhook_dead_letters,
    ):
        factory.cache_clear()


def reset() -> None:
    """Forget every built object and the settings (tests that change the environment call this)."""
    forget_clients()
    for settings in (webhook_settings, get_settings):
        settings.cache_clear()
    aws.client.cache_clear()
