"""The benchmark's arithmetic and its cost model: pure logic, no network, no timing asserted."""

from __future__ import annotations

import math

import pytest

from bench.cold_start import import_report
from bench.figures import Figure, Target, interleaved, percentile, table


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([3, 1, 2, 4], 50) == 2.5
    assert percentile([10], 99) == 10
    assert percentile(list(range(101)), 99) == 99
    with pytest.raises(ValueError):
        percentile([], 50)


def test_interleaved_alternates_baseline_and_subject_abba() -> None:
    calls: list[str] = []

    def baseline() -> float:
        calls.append("B")
        return 1.0

    def subject() -> float:
        calls.append("S")
        return 2.0

    base, subj = interleaved(baseline, subject, 4)
    assert calls == ["B", "S", "S", "B", "B", "S", "S", "B"]
    assert (base, subj) == ([1.0] * 4, [2.0] * 4)


def test_ratio_is_the_median_of_per_repeat_ratios_and_targets_decide_pass() -> None:
    figure = Figure("f", "ms", subject=[2.0, 3.0, 30.0], baseline=[1.0, 1.0, 10.0], target=Target("ratio", "<=", 2.5))
    assert figure.ratios == [2.0, 3.0, 3.0]
    assert figure.ratio == 3.0 and figure.value == 3.0
    assert figure.passed is False
    rate = Figure("r", "MiB/s", subject=[90.0], baseline=[100.0], target=Target("ratio", ">=", 0.8))
    assert rate.passed is True
    absolute = Figure("a", "s", subject=[0.4, 0.6, 0.45], baseline=[0.1] * 3, target=Target("value", "<=", 0.5))
    assert absolute.passed is True
    assert Figure("i", "ms", [1.0], [1.0]).passed is None


def test_results_entries_carry_what_the_issue_asks_for() -> None:
    entry = Figure("f", "ms", [2.0, 4.0], [1.0, 2.0], Target("ratio", "<=", 1.5), baseline_name="b").as_json()
    for key in ("name", "value", "baseline", "ratio", "target", "pass", "median", "min", "max", "unit", "repeats"):
        assert key in entry
    assert (entry["min"], entry["max"], entry["repeats"], entry["pass"]) == (2.0, 4.0, 2, False)
    assert entry["target"]["text"] == "ratio <= 1.5"
    text = table([Figure("f", "ms", [2.0], [1.0], Target("ratio", "<=", 1.5)), Figure("g", "ms", [1.0], [1.0])])
    assert "| f |" in text and "FAIL" in text and "info" in text
    assert math.isinf(Figure("z", "ms", [1.0], [0.0]).ratio)


def test_import_report_reads_python_importtime_output() -> None:
    stderr = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:       100 |        100 |     json.decoder",
            "import time:       200 |        300 |   json",
            "import time:      1000 |       5000 | handlers.api",
            "import time:      4000 |       4000 |   boto3",
        ]
    )
    report = import_report(stderr)
    assert report["heaviest"][0] == {"module": "handlers.api", "depth": 0, "cumulativeMs": 5.0, "selfMs": 1.0}
    assert report["perPackageSelfMs"]["boto3"] == 4.0
    assert report["totalMs"] == 5.3


def test_cost_model_reads_the_template_and_knows_where_proxying_stops() -> None:
    from bench import cost_model
    from local.template import load

    functions = cost_model.template_settings()
    raw = load()
    expected = raw["Resources"]["ProcessFunction"]["Properties"].get(
        "MemorySize", raw["Globals"]["Function"]["MemorySize"]
    )
    assert functions["ProcessFunction"]["memoryMb"] == int(expected)
    assert functions["ApiFunction"]["architectures"] == ["arm64"]

    assert isinstance(cost_model.proxied(10**6, functions), cost_model.Bill)
    for size in (5 * 2**20, 100 * 10**6, 10**9):
        assert str(cost_model.proxied(size, functions)).startswith("impossible")
    one_gb = cost_model.direct(10**9, functions)
    assert any("multipart" in note for note in one_gb.notes)
    assert one_gb.s3_puts > cost_model.direct(10**6, functions).s3_puts
    text = cost_model.report()
    assert text.count("impossible") == 2 and cost_model.PRICES_DATE in text
