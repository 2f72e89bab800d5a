"""How the PublishFunction cuts owed events into PutEvents calls (directupload/events.py)."""

from __future__ import annotations

from typing import Any

from directupload import events


class Recording:
    """A stand-in for the EventBridge client that records each call's entries (upload, type)."""

    def __init__(self, refuse_at: tuple[int, int] | None = None) -> None:
        self.calls: list[list[tuple[str, str]]] = []
        self.refuse_at = refuse_at  # (call, entry) answered as failed

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        import json

        self.calls.append([(json.loads(e["Detail"])["uploadId"], e["DetailType"]) for e in Entries])
        results: list[dict[str, Any]] = [{"EventId": str(n)} for n in range(len(Entries))]
        if self.refuse_at is not None and self.refuse_at[0] == len(self.calls) - 1:
            results[self.refuse_at[1]] = {"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}
            return {"FailedEntryCount": 1, "Entries": results}
        return {"FailedEntryCount": 0, "Entries": results}


def owed(*pairs: tuple[str, str]) -> list[tuple[str, dict[str, Any]]]:
    return [(kind, {"uploadId": upload}) for upload, kind in pairs]


def test_two_events_of_one_upload_never_share_a_call_and_their_order_holds() -> None:
    client = Recording()
    events.EventPublisher("bus", client).publish_all(
        owed(("u1", events.PROCESSED), ("u1", events.DELETED), ("u2", events.PROCESSED))
    )
    assert client.calls == [[("u1", events.PROCESSED)], [("u1", events.DELETED), ("u2", events.PROCESSED)]]


def test_at_most_ten_entries_go_in_one_call() -> None:
    client = Recording()
    events.EventPublisher("bus", client).publish_all(owed(*((f"u{n}", events.PROCESSED) for n in range(23))))
    assert [len(call) for call in client.calls] == [10, 10, 3]
    assert [u for call in client.calls for u, _ in call] == [f"u{n}" for n in range(23)]


def test_a_refused_entry_says_how_many_went_out_before_it_and_nothing_after_is_sent() -> None:
    client = Recording(refuse_at=(1, 1))  # the second call's second entry
    publisher = events.EventPublisher("bus", client)
    try:
        publisher.publish_all(owed(*((f"u{n}", events.PROCESSED) for n in range(15))))
    except events.PublishFailedError as refused:
        assert refused.sent == 11
    else:
        raise AssertionError("a refused entry must raise")
    assert len(client.calls) == 2  # the calls after the refused one were never made
