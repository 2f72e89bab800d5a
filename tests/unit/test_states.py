"""The state machine table itself: every status is accounted for, and the sets derived from it
say what the code relies on."""

from __future__ import annotations

from directupload.models import DELETABLE, FINAL_FOR_CLIENTS, REASONS, SHOWN_AS, TERMINAL, TRANSITIONS, Status


def test_every_status_is_reached_by_a_write_or_shown_on_read() -> None:
    reached = set(TRANSITIONS) | set(SHOWN_AS) | {Status.PENDING}  # PENDING: POST /uploads creates it
    assert reached == set(Status)
    assert set(REASONS) == set(TRANSITIONS)
    assert not set(SHOWN_AS) & set(TRANSITIONS)


def test_processing_never_leaves_a_terminal_status() -> None:
    for to in (Status.UPLOADED, Status.SCANNING, Status.PROCESSED, Status.REJECTED, Status.FAILED):
        assert not TRANSITIONS[to] & TERMINAL, to


def test_clients_stop_following_where_only_an_operator_or_owner_moves_it_on() -> None:
    # a status processing can still leave by itself is not final for clients (FAILED waits for a redrive)
    moving_on = TRANSITIONS[Status.UPLOADED] | TRANSITIONS[Status.SCANNING] | TRANSITIONS[Status.DELETED]
    assert not moving_on & FINAL_FOR_CLIENTS
    assert Status.FAILED in FINAL_FOR_CLIENTS and Status.FAILED in DELETABLE
