"""Drift: PSI against the champion's training data, and drift -> retrain."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from ml_platform.assets import keys
from ml_platform.automation.drift_retrain import drift_episode
from ml_platform.definitions import build_definitions, load_specs
from ml_platform.features.drift import SCORE, population_stability, reference_bins
from ml_platform.io.parquet_lake import DataLake
from ml_platform.runner import MONITORING_STAGES, materialize_stages
from ml_platform_tests.support.automation import evaluate


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"x": rng.normal(0, 1, 20_000)})
    reference = reference_bins(train, ["x"])
    assert population_stability(reference, pd.DataFrame({"x": rng.normal(0, 1, 5_000)}))["x"] < 0.02
    assert population_stability(reference, pd.DataFrame({"x": rng.normal(1.5, 1, 5_000)}))["x"] > 0.5


def test_drift_asset_measures_features_and_scores_and_the_sensor_retrains_once_per_episode(
    trained_copy: Path, churn_spec
) -> None:
    defs = build_definitions(load_specs())
    instance = dg.DagsterInstance.ephemeral()
    days = ["2025-02-16", "2025-02-17", "2025-02-18", "2025-02-19"]
    result = materialize_stages(defs, churn_spec, MONITORING_STAGES, instance, days)
    assert result.success
    evaluations = {e.partition: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == set(days)
    assert all(e.passed for e in evaluations.values()), [e.description for e in evaluations.values()]
    assert "PSI over 10 training-quantile bins" in evaluations[days[0]].metadata["method"].value
    lake = DataLake(base_path=str(trained_copy / "lake"))
    measured = lake.read(keys.drift(churn_spec), days[:1])
    assert set(measured["feature"]) == {*churn_spec.feature_names, SCORE}, "every feature and the score distribution"
    quiet = evaluate(defs, "churn_drift_retrain_sensor", instance, None)
    assert quiet.run_requests == [] and "newest day: no PSI above" in quiet.skip_message

    for day in days[-2:]:  # customers suddenly log in ten times as often
        features = lake.read(keys.features(churn_spec), [day])
        lake.write_partition(keys.features(churn_spec), day, features.assign(logins_7d=features["logins_7d"] * 10 + 5))
    result = materialize_stages(defs, churn_spec, MONITORING_STAGES, instance, days)
    drifted = {e.partition: e for e in result.get_asset_check_evaluations() if not e.passed}
    assert set(drifted) == set(days[-2:]) and "logins_7d" in drifted[days[-1]].description
    assert result.success, "drift warns; it does not fail the run"

    tick = evaluate(defs, "churn_drift_retrain_sensor", instance, None)
    [request] = tick.run_requests
    assert request.tags["ml_platform/trigger"] == "drift" and request.run_key == f"drift-episode-{days[-2]}"
    assert request.tags["ml_platform/drift_days"] == f"{days[-2]}..{days[-1]}"
    repeat = evaluate(defs, "churn_drift_retrain_sensor", instance, tick.cursor)
    assert repeat.run_requests == [] and "already requested" in repeat.skip_message, "once per episode, not per tick"


def psi_rows(day: str, psi: float) -> pd.DataFrame:
    return pd.DataFrame({"day": [day], "feature": ["logins_7d"], "psi": [psi], "champion_version": ["1"]})


def test_drift_episodes_start_after_k_consecutive_days_and_end_on_a_calm_day(data_dir: Path, churn_spec) -> None:
    lake = DataLake(base_path=str(data_dir / "lake"))
    defs = build_definitions(load_specs())
    instance = dg.DagsterInstance.ephemeral()

    def tick(day: str, psi: float, cursor: str | None):
        lake.write_partition(keys.drift(churn_spec), day, psi_rows(day, psi))
        return evaluate(defs, "churn_drift_retrain_sensor", instance, cursor)

    nothing = evaluate(defs, "churn_drift_retrain_sensor", instance, None)
    assert nothing.run_requests == [] and "no churn/drift partitions yet" in nothing.skip_message
    first = tick("2025-02-01", 0.9, None)
    assert first.run_requests == [] and "on 1 day(s)" in first.skip_message
    second = tick("2025-02-02", 0.8, first.cursor)
    [request] = second.run_requests
    assert request.run_key == "drift-episode-2025-02-01"
    assert tick("2025-02-03", 0.9, second.cursor).run_requests == [], "the same episode goes on"
    calm = tick("2025-02-04", 0.1, second.cursor)
    assert calm.run_requests == [] and json.loads(calm.cursor) == {"episode": None}, "a calm day ends the episode"
    again = tick("2025-02-05", 0.7, calm.cursor)
    [request] = tick("2025-02-06", 0.7, again.cursor).run_requests
    assert request.run_key == "drift-episode-2025-02-05", "a new episode retrains again"

    assert drift_episode({"2025-03-01": 0.9, "2025-03-03": 0.9}, 0.25) == ["2025-03-03"], "a missing day breaks the run"
    assert drift_episode({"2025-03-01": 0.9, "2025-03-02": 0.9}, 0.25) == ["2025-03-01", "2025-03-02"]
    # a weekend stored without events (missing_days: empty) between two drifted days does not end the episode
    friday_monday = {"2025-03-07": 0.9, "2025-03-10": 0.9}
    assert drift_episode(friday_monday, 0.25, {"2025-03-08", "2025-03-09"}) == ["2025-03-07", "2025-03-10"]
    assert drift_episode(friday_monday, 0.25, {"2025-03-08"}) == ["2025-03-10"], "a day never measured still does"


def test_warm_up_days_are_not_measured_so_they_raise_no_drift(trained_copy: Path, churn_spec) -> None:
    """Days whose 28-day windows reach before the first raw day have small window features by construction."""
    days = ["2025-01-26", "2025-01-27", "2025-01-28"]  # raw data starts 2025-01-01: 01-28 is the first complete day
    result = materialize_stages(
        build_definitions(load_specs()), churn_spec, MONITORING_STAGES, dg.DagsterInstance.ephemeral(), days
    )
    assert result.success
    evaluations = {e.partition: e for e in result.get_asset_check_evaluations()}
    assert all(e.passed for e in evaluations.values())
    assert "warm-up" in evaluations["2025-01-27"].description and "warm-up" not in evaluations["2025-01-28"].description
    lake = DataLake(base_path=str(trained_copy / "lake"))
    assert lake.read(keys.drift(churn_spec), days[:2]).empty and not lake.read(keys.drift(churn_spec), days[2:]).empty


def test_drift_measured_against_a_replaced_champion_does_not_count(data_dir: Path, churn_spec) -> None:
    lake = DataLake(base_path=str(data_dir / "lake"))
    for day, version in (("2025-02-01", "1"), ("2025-02-02", "1"), ("2025-02-03", "2")):
        lake.write_partition(keys.drift(churn_spec), day, psi_rows(day, 0.9).assign(champion_version=version))
    tick = evaluate(build_definitions(load_specs()), "churn_drift_retrain_sensor", dg.DagsterInstance.ephemeral(), None)
    assert tick.run_requests == [] and "on 1 day(s) (2025-02-03..2025-02-03)" in tick.skip_message


def test_days_with_fewer_rows_than_min_rows_are_not_measured(trained_copy: Path, churn_spec) -> None:
    spec = churn_spec.model_copy(update={"drift": churn_spec.drift.model_copy(update={"min_rows": 1_000_000})})
    days = ["2025-01-28", "2025-01-29"]
    result = materialize_stages(
        build_definitions([spec]), spec, MONITORING_STAGES, dg.DagsterInstance.ephemeral(), days
    )
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 2 and all(
        e.passed and "fewer than drift.min_rows 1000000" in e.description for e in evaluations
    )
    assert DataLake(base_path=str(trained_copy / "lake")).read(keys.drift(spec), days).empty
