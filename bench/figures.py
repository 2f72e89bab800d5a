"""Figures: a subject against its baseline, repeated, and what the table and results.json show."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between the closest ranks."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Target:
    """What passes: ``on`` ("ratio" or "value") compared with ``limit`` by ``op`` ("<=" or ">=")."""

    on: str
    op: str
    limit: float

    def holds(self, value: float) -> bool:
        return value <= self.limit if self.op == "<=" else value >= self.limit

    def text(self, unit: str) -> str:
        return f"{self.on} {self.op} {self.limit:g}" + (f" {unit}" if self.on == "value" else "")


@dataclass
class Figure:
    """One line of the table: the subject's value, the baseline's, and their ratio, per repeat."""

    name: str
    unit: str
    subject: list[float]  # one value per repeat
    baseline: list[float]  # one value per repeat, measured interleaved with the subject
    # subject / baseline for times (lower is better); subject / baseline for rates too, with
    # the target saying which way is good
    target: Target | None = None
    notes: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    baseline_name: str = ""

    @property
    def ratios(self) -> list[float]:
        return [s / b if b else math.inf for s, b in zip(self.subject, self.baseline, strict=True)]

    @property
    def value(self) -> float:
        return statistics.median(self.subject)

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @property
    def passed(self) -> bool | None:
        if self.target is None:
            return None
        return self.target.holds(self.ratio if self.target.on == "ratio" else self.value)

    def as_json(self) -> dict[str, Any]:
        def rounded(x: float) -> float:
            return float(f"{x:.6g}")

        return {
            "name": self.name,
            "unit": self.unit,
            "value": rounded(self.value),
            "baseline": rounded(statistics.median(self.baseline)),
            "baselineName": self.baseline_name,
            "ratio": rounded(self.ratio),
            "target": None
            if self.target is None
            else {
                "on": self.target.on,
                "op": self.target.op,
                "limit": self.target.limit,
                "text": self.target.text(self.unit),
            },
            "pass": self.passed,
            "repeats": len(self.subject),
            "median": rounded(self.value),
            "min": rounded(min(self.subject)),
            "max": rounded(max(self.subject)),
            "baselineMin": rounded(min(self.baseline)),
            "baselineMax": rounded(max(self.baseline)),
            "ratioMin": rounded(min(self.ratios)),
            "ratioMax": rounded(max(self.ratios)),
            "samples": [rounded(x) for x in self.subject],
            "baselineSamples": [rounded(x) for x in self.baseline],
            "notes": self.notes,
            **({"details": self.details} if self.details else {}),
        }


def interleaved(
    baseline: Callable[[], float], subject: Callable[[], float], pairs: int
) -> tuple[list[float], list[float]]:
    """Run baseline and subject ``pairs`` times each in ABBA order (B S S B B S ...), so drift
    in the machine's load falls on both alike. Each callable returns its own measurement."""
    base: list[float] = []
    subj: list[float] = []
    for i in range(pairs):
        if i % 2 == 0:
            base.append(baseline())
            subj.append(subject())
        else:
            subj.append(subject())
            base.append(baseline())
    return base, subj


def fmt(value: float, unit: str) -> str:
    if math.isinf(value):
        return "inf"
    if unit in ("x",):
        return f"{value:.2f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"


def table(figures: Sequence[Figure]) -> str:
    """The results as a markdown table (what `make bench` prints and docs/performance.md holds, generated)."""
    rows = [
        "| figure | value | baseline | ratio (min-max) | target | result | n |",
        "|---|---:|---:|---:|---|---|---:|",
    ]
    for f in figures:
        status = {True: "PASS", False: "FAIL", None: "info"}[f.passed]
        target = f.target.text(f.unit) if f.target else "-"
        rows.append(
            f"| {f.name} | {fmt(f.value, f.unit)} {f.unit} "
            f"(min {fmt(min(f.subject), f.unit)}, max {fmt(max(f.subject), f.unit)}) "
            f"| {fmt(statistics.median(f.baseline), f.unit)} {f.unit} "
            f"| {f.ratio:.2f} ({min(f.ratios):.2f}-{max(f.ratios):.2f}) | {target} | {status} | {len(f.subject)} |"
        )
    return "\n".join(rows)
