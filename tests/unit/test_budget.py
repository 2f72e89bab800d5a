"""The per-file budget: a decoding step that runs too long or needs too much memory is a
rejection, in a child process; what a step returns or raises comes back as it would in-process."""

from __future__ import annotations

import io
import time

import pytest

from directupload.errors import Rejected
from directupload.processing.budget import Budget, run_within
from directupload.processing.steps import Derived, Step, StepResult, VerifiedObject
from tests.records import upload_record


def obj(data: bytes = b"bytes") -> VerifiedObject:
    record = upload_record(size=len(data))
    return VerifiedObject(record, "b", record.key, len(data), "0" * 64, "image/png", "e", io.BytesIO(data))


def test_a_step_that_does_not_finish_in_time_is_rejected_as_too_complex() -> None:
    def forever(_: VerifiedObject) -> StepResult:
        while True:
            time.sleep(1)

    with pytest.raises(Rejected) as caught:
        run_within(Step("image", forever, needs_body=True), obj(), Budget(seconds=0.5))
    assert caught.value.code == "too-complex" and "0.5 s" in caught.value.message


def test_a_step_that_needs_more_memory_than_its_budget_is_rejected_as_too_complex() -> None:
    def hungry(_: VerifiedObject) -> StepResult:
        hoard = [bytearray(64 * 1024 * 1024) for _ in range(32)]  # 2 GiB
        return StepResult(fields={"n": len(hoard)})

    with pytest.raises(Rejected) as caught:
        run_within(Step("pdf", hungry, needs_body=True), obj(), Budget(seconds=30, memory_bytes=128 * 1024 * 1024))
    assert caught.value.code == "too-complex"


def test_what_a_step_returns_or_raises_comes_back_from_the_child() -> None:
    def reads(verified: VerifiedObject) -> StepResult:
        data = verified.read().read()
        return StepResult(fields={"length": len(data)}, derived=[Derived("copy.bin", data[::-1], "application/x-test")])

    def crashes(_: VerifiedObject) -> StepResult:
        raise IndexError("deep inside a decoder")

    result = run_within(Step("image", reads, needs_body=True), obj(b"abcdef"), Budget(seconds=30))
    assert result.fields == {"length": 6}
    assert [(d.name, d.data, d.variant) for d in result.derived] == [("copy.bin", b"fedcba", "copy")]
    with pytest.raises(Rejected) as caught:
        run_within(Step("image", crashes, needs_body=True), obj(), Budget(seconds=30))
    assert (caught.value.code, "IndexError" in caught.value.message) == ("corrupt-image", True)


def test_a_fault_of_ours_in_the_child_is_retried_not_blamed_on_the_file() -> None:
    from directupload.processing.budget import StepCrashedError

    def unsendable(_: VerifiedObject) -> StepResult:
        return StepResult(fields={"callback": lambda: None})  # a lambda cannot be pickled

    with pytest.raises(StepCrashedError):
        run_within(Step("image", unsendable, needs_body=True), obj(), Budget(seconds=30))
