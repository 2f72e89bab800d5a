"""The state machine table (models.TRANSITIONS) is what the store enforces: a write the table does
not allow is refused by DynamoDB's condition, whatever the caller asks."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Api


def issued_record(api: Api) -> str:
    status, body, _ = api.call(
        "POST", "/uploads", {"profile": "file", "filename": "a.txt", "contentType": "text/plain", "size": 5}
    )
    assert status == 201, body
    return str(body["uploadId"])


def test_a_write_the_table_forbids_is_refused(aws: Any, api: Api) -> None:
    from directupload import wiring
    from directupload.models import Status
    from directupload.store import TransitionRefused

    store = wiring.store()
    upload_id = issued_record(api)
    # Given a PENDING upload, when processing tries to record an outcome it never claimed,
    # then the store refuses: PROCESSED is reached from UPLOADED, SCANNING or FAILED only
    with pytest.raises(TransitionRefused):
        store.transition(upload_id, Status.PROCESSED)
    with pytest.raises(TransitionRefused):
        store.transition(upload_id, Status.DELETED)
    record = store.get(upload_id)
    assert record is not None and record.status == Status.PENDING
    # an allowed move goes through; after it, the same move is refused (CANCELLED is left only by DELETE)
    assert store.transition(upload_id, Status.CANCELLED).status == Status.CANCELLED
    with pytest.raises(TransitionRefused):
        store.transition(upload_id, Status.CANCELLED)


def test_no_write_moves_an_upload_back_to_pending(aws: Any, api: Api) -> None:
    from directupload import wiring
    from directupload.models import Status

    upload_id = issued_record(api)
    with pytest.raises(ValueError, match="no write moves an upload to PENDING"):
        wiring.store().transition(upload_id, Status.PENDING)


def test_settling_a_size_happens_once(aws: Any, api: Api) -> None:
    from directupload import wiring
    from directupload.store import TransitionRefused

    store = wiring.store()
    upload_id = issued_record(api)
    assert store.settle_size(upload_id, ceiling=5, size=3).size == 3
    with pytest.raises(TransitionRefused):  # the size is no longer the ceiling
        store.settle_size(upload_id, ceiling=5, size=4)
    record = store.get(upload_id)
    assert record is not None and record.size == 3
