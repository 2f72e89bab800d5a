"""What the UploadsTable adapter refuses before it writes anything."""

from __future__ import annotations

import pytest

from directupload.models import Status
from directupload.store import UploadStore


class NoTable:
    """A DynamoDB client that must not be called: a refused write never reaches the table."""

    def __getattr__(self, name: str) -> None:
        raise AssertionError(f"the table was called ({name})")


@pytest.mark.parametrize(
    "write",
    [
        {"pending_evnt": "Upload Processed"},  # a misspelt outbox marker
        {"remove": ["claim_etg"]},
        {"unless_set": "pendingEvent"},
    ],
)
def test_a_write_naming_no_field_of_the_record_is_refused(write: dict[str, object]) -> None:
    store = UploadStore("uploads", NoTable())
    with pytest.raises(ValueError, match="not fields of UploadRecord"):
        store.transition("u1", Status.PROCESSED, **write)  # type: ignore[arg-type]
