"""The per-change cost guard of ``make bench`` (bench/bench_cost.py --check)."""

from __future__ import annotations

import json

from bench.bench_cost import BUDGET, GUARDED, over_budget


def test_a_rise_past_the_tolerance_fails_and_one_within_it_passes() -> None:
    recorded = {"member_add": {"statements": 20, "cpu_ms_server": 10.0}}
    assert over_budget({"member_add": {"statements": 24, "cpu_ms_server": 11.9}}, recorded) == []
    over = over_budget({"member_add": {"statements": 25, "cpu_ms_server": 12.5}}, recorded)
    assert over == ["member_add: statements 25 > budget 20 + 20%",
                    "member_add: cpu_ms_server 12.5 > budget 10.0 + 20%"]


def test_the_recorded_budget_covers_every_change_kind_and_guarded_figure() -> None:
    recorded = json.loads(BUDGET.read_text(encoding="utf-8"))
    assert {"graph", "member_add", "lb_rename"} <= set(recorded["changes"])
    for kind, figures in recorded["changes"].items():
        assert set(GUARDED) <= set(figures), kind
