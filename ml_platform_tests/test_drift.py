"""Drift: PSI against the champion's training data, and drift -> retrain."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from ml_platform.assets import keys
from ml_platform.definitions import build_definitions, load_specs
from ml_platform.features.drift import population_stability, reference_bins
from ml_platform.io.parquet_lake import DataLake
from ml_platform.runner import MONITORING_STAGES, materialize_stages
from ml_platform_tests.test_automation import evaluate


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"x": rng.normal(0, 1, 20_000)})
    reference = reference_bins(train, ["x"])
    assert population_stability(reference, pd.DataFrame({"x": rng.normal(0, 1, 5_000)}))["x"] < 0.02
    assert population_stability(reference, pd.DataFrame({"x": rng.normal(1.5, 1, 5_000)}))["x"] > 0.5


def test_drift_asset_and_drift_sensor_retrain_only_after_consecutive_drifted_days(trained_copy: Path, churn_spec) -> None:  # noqa: ANN001
    defs = build_definitions(load_specs())
    instance = dg.DagsterInstance.ephemeral()
    days = ["2025-02-16", "2025-02-17", "2025-02-18", "2025-02-19"]
    result = materialize_stages(defs, churn_spec, MONITORING_STAGES, instance, days)
    assert result.success
    evaluations = {e.partition: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == set(days)
    assert all(e.passed for e in evaluations.values()), [e.description for e in evaluations.values()]
    assert "drift" not in str(evaluate(defs, "churn_drift_retrain_sensor", instance, None).run_requests)
    assert evaluate(defs, "churn_drift_retrain_sensor", instance, None).run_requests == []

    lake = DataLake(base_path=str(trained_copy / "lake"))
    for day in days[-2:]:  # customers suddenly log in ten times as often
        features = lake.read(keys.features(churn_spec), [day])
        lake.write_partition(keys.features(churn_spec), day, features.assign(logins_7d=features["logins_7d"] * 10 + 5))
    result = materialize_stages(defs, churn_spec, MONITORING_STAGES, instance, days)
    drifted = {e.partition: e for e in result.get_asset_check_evaluations() if not e.passed}
    assert set(drifted) == set(days[-2:]) and "logins_7d" in drifted[days[-1]].description
    assert result.success, "drift warns; it does not fail the run"

    [request] = evaluate(defs, "churn_drift_retrain_sensor", instance, None).run_requests
    assert request.tags["ml_platform/trigger"] == "drift"
    assert request.tags["ml_platform/drift_days"] == f"{days[-2]}..{days[-1]}"
