"""The end-to-end suite's bookkeeping: the by-hand request mix and the CPU accounting. Pure
logic and this machine's /proc, no network, no timing asserted."""

from __future__ import annotations

import os
import sys
from collections import Counter

import pytest

from bench.end_to_end import (
    BENCH,
    EMULATOR,
    HOST,
    MIX_STEPS,
    Captured,
    cpu_shares,
    cpu_snapshot,
    mix_plan,
    request_mix,
)

PRODUCT_ID = "5809f591c2346f77d821fb9880d0f25a"
BY_HAND_ID = "0123456789abcdef0123456789abcdef"


def captured() -> Captured:
    """What the emulator captured of one product upload (abridged from a real capture)."""
    transaction = {
        "TransactItems": [
            {
                "Update": {
                    "TableName": "uploads",
                    "Key": {"pk": {"S": "owner#anonymous"}},
                    "UpdateExpression": "SET #open.#id = :until ADD #bytes :size",
                    "ConditionExpression": "#day = :day AND size(#open) < :max",
                    "ExpressionAttributeNames": {"#open": "open", "#id": PRODUCT_ID, "#bytes": "bytes", "#day": "day"},
                    "ExpressionAttributeValues": {":until": {"N": "1"}, ":size": {"N": "960"}},
                }
            },
            {
                "Put": {
                    "TableName": "uploads",
                    "Item": {
                        "pk": {"S": f"upload#{PRODUCT_ID}"},
                        "owner": {"S": "anonymous"},
                        "key": {"S": f"incoming/{PRODUCT_ID}/a.txt"},
                        "thumb": {"B": "AAEC"},
                    },
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ],
        "ClientRequestToken": "4aa7cac2-01a6-49e3-9be3-b2e0d8295622",
    }
    claim = {"TableName": "uploads", "Key": {"pk": {"S": f"upload#{PRODUCT_ID}"}}, "ReturnValues": "ALL_NEW"}
    event = {"Entries": [{"Source": "directupload", "Detail": f'{{"uploadId":"{PRODUCT_ID}"}}', "EventBusName": "bus"}]}
    return Captured(
        PRODUCT_ID,
        {"dynamodb:TransactWriteItems": [transaction], "dynamodb:UpdateItem": [claim], "events:PutEvents": [event]},
        {"pk": {"S": "owner#anonymous"}, "day": {"S": "2026-12-02"}},
    )


def test_a_replayed_request_is_the_products_own_for_an_upload_of_the_baselines() -> None:
    got = captured().request("dynamodb:TransactWriteItems", 0, BY_HAND_ID, "owner#bench-1", "mix-bus")
    assert got is not None
    update, put = (next(iter(item.values())) for item in got["TransactItems"])
    # the same expressions and conditions, for the baseline's upload and owner
    assert update["UpdateExpression"] == "SET #open.#id = :until ADD #bytes :size"
    assert update["ConditionExpression"] == "#day = :day AND size(#open) < :max"
    assert update["ExpressionAttributeNames"]["#id"] == BY_HAND_ID
    assert update["Key"] == {"pk": {"S": "owner#bench-1"}}
    assert put["Item"]["pk"] == {"S": f"upload#{BY_HAND_ID}"} and put["Item"]["owner"] == {"S": "bench-1"}
    assert put["Item"]["key"] == {"S": f"incoming/{BY_HAND_ID}/a.txt"}
    assert put["Item"]["thumb"] == {"B": b"\x00\x01\x02"}  # binary as boto3 takes it
    assert "ClientRequestToken" not in got  # a new transaction each time, not a retry of the product's
    assert PRODUCT_ID not in repr(got)


def test_a_replayed_event_goes_to_the_baselines_bus_and_past_the_capture_the_last_request_repeats() -> None:
    capture = captured()
    (entry,) = capture.request("events:PutEvents", 0, BY_HAND_ID, "owner#bench-1", "mix-bus")["Entries"]  # type: ignore[index]
    assert entry == {"Source": "bench.mix", "Detail": f'{{"uploadId":"{BY_HAND_ID}"}}', "EventBusName": "mix-bus"}
    again = capture.request("dynamodb:UpdateItem", 2, BY_HAND_ID, "owner#bench-1", "mix-bus")
    assert again == {"TableName": "uploads", "Key": {"pk": {"S": f"upload#{BY_HAND_ID}"}}, "ReturnValues": "ALL_NEW"}
    assert capture.request("dynamodb:Query", 0, BY_HAND_ID, "owner#bench-1", "mix-bus") is None  # made by hand


@pytest.mark.parametrize("scenario", ["file-unscanned", "image", "file"])
def test_the_by_hand_cycle_makes_each_counted_request_of_the_scenario_once(scenario: str) -> None:
    # Given the committed counts of a scenario (what the product's roles made for one upload)
    mix = request_mix(scenario)
    # When the by-hand cycle is planned
    plan = mix_plan(mix)
    # Then it makes every one of them, each once, and nothing else
    made_each = Counter((name, n) for name, which in plan for n in which)
    assert Counter(name for name, _ in made_each) == Counter(mix)
    assert set(made_each.values()) == {1}
    # the issue's steps first: the quota's reservation and the record (one transaction, or one
    # write each), then the client's POST
    names = [name for name, _ in plan]
    assert names[: names.index("s3:PostObject") + 1] in (
        ["dynamodb:TransactWriteItems", "s3:PostObject"],
        ["dynamodb:UpdateItem", "dynamodb:PutItem", "s3:PostObject"],
    )
    assert all(which == range(1) for _, which in plan[: names.index("s3:PostObject")])


def test_a_transactional_issue_leaves_every_update_to_the_processing_steps() -> None:
    mix = {"dynamodb:TransactWriteItems": 1, "dynamodb:UpdateItem": 3, "s3:PostObject": 1, "sqs:SendMessage": 1}
    plan = mix_plan(mix)
    assert plan[:2] == [("dynamodb:TransactWriteItems", range(1)), ("s3:PostObject", range(1))]
    assert ("dynamodb:UpdateItem", range(3)) in plan and ("sqs:SendMessage", range(1)) in plan


def test_the_by_hand_cycle_refuses_a_request_it_cannot_make() -> None:
    # a new operation in the counts must not silently drop out of the baseline
    with pytest.raises(RuntimeError, match="dynamodb:BatchWriteItem"):
        mix_plan({"dynamodb:PutItem": 1, "dynamodb:BatchWriteItem": 1})
    assert "s3:PostObject" in MIX_STEPS


def test_a_missing_scenario_names_itself() -> None:
    with pytest.raises(RuntimeError, match="no scenario 'nope'"):
        request_mix("nope")


def test_cpu_shares_are_each_parts_seconds_over_the_run() -> None:
    before = {EMULATOR: 10.0, HOST: 1.0, "ApiFunction": 2.0}
    after = {EMULATOR: 13.0, HOST: 1.5, "ApiFunction": 2.5, "ProcessFunction": 1.0}  # a new process
    got = cpu_shares(before, after, wall=4.0)
    assert got["cpuSeconds"] == {EMULATOR: 3.0, "ProcessFunction": 1.0, HOST: 0.5, "ApiFunction": 0.5}
    assert got["shares"][EMULATOR] == 0.6 and sum(got["shares"].values()) == pytest.approx(1.0)
    assert got["cores"][EMULATOR] == 0.75 and got["coresTotal"] == 1.25


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_cpu_snapshot_counts_this_process_and_the_roots_own_time() -> None:
    # this process as the root: no child of it is part of a stack, its own time is the host's
    snapshot = cpu_snapshot(os.getpid())
    own = os.times()
    assert snapshot[BENCH] == pytest.approx(own.user + own.system)
    assert 0 < snapshot[HOST] <= own.user + own.system + 0.05
    assert EMULATOR not in snapshot
