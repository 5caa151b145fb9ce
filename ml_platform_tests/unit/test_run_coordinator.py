"""Backfill lanes (ml_platform/run_coordinator.py): a cap of N spreads a use case's queued runs over N lanes."""

from __future__ import annotations

from ml_platform.run_coordinator import least_busy_lane


def test_runs_queued_together_take_every_lane_before_sharing_one() -> None:
    taken: list[str] = []
    for _ in range(5):
        taken.append(least_busy_lane("churn", 2, taken))
    assert taken == ["churn:0", "churn:1", "churn:0", "churn:1", "churn:0"]


def test_a_finished_run_frees_its_lane_and_other_use_cases_do_not_count() -> None:
    assert least_busy_lane("churn", 3, ["churn:0", "churn:2", "fraud:1", "fraud:1"]) == "churn:1"
    assert least_busy_lane("churn", 1, ["churn:0", "churn:0"]) == "churn:0"  # a cap of one: one lane, one queue
