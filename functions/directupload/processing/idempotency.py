"""Once per object version: powertools idempotency around ``Processor.process``.

S3 delivers each notification at least once, and a redrive or a duplicate may reach a
second ProcessFunction while the first still works on the object. The idempotency record
(IdempotencyTable, keyed by bucket, key, sequencer or version id, and ETag) makes that
second delivery wait (``IdempotencyAlreadyInProgressError``: its message is retried) and a
later one return the stored outcome without reading the object again. Correctness does not
rest on it alone: the record's conditional transitions (store.py) and the outbox marker
still decide what is final and what is announced, so an expired idempotency record only
costs a second read.

Built once per container by ``wiring.process_once``, which the processor handler calls: the
API's cold start never loads it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

from directupload.observability import logger, metrics
from directupload.processing.outcomes import Outcome
from directupload.processing.pipeline import UNREAD, ObjectRef, Processor

# ObjectRef's fields, as powertools serialises the dataclass. S3 puts a sequencer in every
# notification (moto does not), so the version id and the ETag tell versions apart too; a
# scanner's verdict on a version is a delivery of its own.
EVENT_KEY = "[bucket, key, sequencer || version_id, etag, verdict.status, verdict.event_id, deadline_check]"
# Longer than S3 takes to deliver a late duplicate, short enough to keep the table small.
EXPIRES_AFTER_SECONDS = 24 * 3600


def _cached(response: Any, idempotent_data: DataRecord) -> str:
    logger.info("notification already handled", outcome=response)
    metrics.add_metric(name="DuplicateNotifications", unit="Count", value=1)
    return Outcome.DUPLICATE


def config() -> IdempotencyConfig:
    return IdempotencyConfig(
        event_key_jmespath=EVENT_KEY,
        raise_on_no_idempotency_key=True,
        expires_after_seconds=EXPIRES_AFTER_SECONDS,
        response_hook=_cached,
    )


# ``Processor.process`` once per delivery: called with ``ref=`` (the idempotency record's data)
ProcessOnce = Callable[..., str]


def process_once(processor: Processor, table_name: str, client: Any, cfg: IdempotencyConfig) -> ProcessOnce:
    """``processor.process`` guarded by idempotency records in ``table_name``; call with ``ref=``.

    A scan verdict or deadline check that decides nothing (``Processor.screen``: it would write
    nothing whoever ran it, and when) is answered without an idempotency record; any other runs
    under one, with the record the screen read."""
    persistence = DynamoDBPersistenceLayer(table_name=table_name, boto3_client=client)

    @idempotent_function(data_keyword_argument="ref", persistence_store=persistence, config=cfg)
    def guarded(ref: ObjectRef, record: Any = UNREAD) -> str:
        return processor.process(ref, record)

    def process(ref: ObjectRef) -> str:
        outcome, record = processor.screen(ref)
        if outcome is not None:
            return outcome
        return guarded(ref=ref, record=record)

    return process
