"""The whole churn graph through Dagster, and the model gates that guard the champion."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd

from ml_platform.assets import keys
from ml_platform.assets.training import SIGNIFICANCE_CHECK, promote, rollback
from ml_platform.checks.data_gates import FEATURE_CHECKS, PREDICTION_CHECKS, raw_checks
from ml_platform.definitions import build_definitions, load_specs
from ml_platform.io.parquet_lake import DataLake
from ml_platform.resources import default_resources
from ml_platform.resources.mlflow_resource import CHAMPION, PREVIOUS_CHAMPION
from ml_platform.runner import DAILY_STAGES, TRAINING_STAGES, materialize_stages
from ml_platform_tests.conftest import TrainedPlatform


def test_whole_graph_materializes_with_every_gate_passing(trained_platform: TrainedPlatform) -> None:
    spec, days = trained_platform.spec, trained_platform.days
    results = trained_platform.results
    assert all(result.success for result in results.values())

    for stage, result, checks in (
        ("raw_events", results["daily"], raw_checks(spec)),
        ("features", results["daily"], FEATURE_CHECKS),
        ("predictions", results["predictions"], PREDICTION_CHECKS),
    ):
        node = f"{spec.name}__{stage}"
        assert sorted(m.partition for m in result.asset_materializations_for_node(node)) == days
        evaluations = [e for e in result.get_asset_check_evaluations() if e.asset_key == getattr(keys, stage)(spec)]
        assert {(e.check_name, e.partition) for e in evaluations} == {(c, d) for c in checks for d in days}
        assert all(e.passed for e in evaluations)

    lake = DataLake(base_path=str(trained_platform.root / "lake"))
    features = lake.read(keys.features(spec), days)
    assert set(spec.feature_names) <= set(features.columns)
    assert features.groupby("day")["customer_id"].apply(lambda ids: ids.is_unique).all()

    model_checks = {e.check_name: e.passed for e in results["training"].get_asset_check_evaluations()}
    assert model_checks == {"meets_thresholds": True, "not_worse_than_champion": True}
    summary = lake.read_json(keys.model(spec))
    assert summary["metrics"]["accuracy"] >= 0.85 and summary["metrics"]["roc_auc"] >= 0.7

    training_set = lake.read(keys.training_set(spec), None)
    holdout_days = sorted(training_set.loc[training_set["split"] == "holdout", "day"].unique())
    train_days = sorted(training_set.loc[training_set["split"] == "train", "day"].unique())
    assert len(holdout_days) == spec.training.holdout_days
    assert pd.Timestamp(holdout_days[0]) - pd.Timestamp(train_days[-1]) > pd.Timedelta(days=spec.label.horizon_days)
    assert pd.Timestamp(holdout_days[-1]) + pd.Timedelta(days=spec.label.horizon_days) <= pd.Timestamp(days[-1])

    predictions = lake.read(keys.predictions(spec), [days[-1]])
    assert predictions["score"].between(0, 1).all() and len(predictions) == (features["day"] == days[-1]).sum()
    assert set(predictions["model_version"]) == {summary["version"]}
    metadata = results["predictions"].get_asset_materialization_events()[-1].materialization.metadata
    assert f"top_risk_{days[-1]}" in metadata


def test_mlflow_run_has_params_metrics_window_and_registered_version(trained_platform: TrainedPlatform, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("ML_PLATFORM_DATA_DIR", str(trained_platform.root))
    mlflow = default_resources()["mlflow"]
    champion = mlflow.version_by_alias("churn", CHAMPION)
    run = mlflow.client().get_run(champion.run_id)
    assert {"holdout_accuracy", "holdout_precision", "holdout_recall", "holdout_f1", "holdout_roc_auc"} <= set(run.data.metrics)
    assert run.data.params["n_estimators"] == "100"
    assert run.data.tags["dagster_run_id"] == trained_platform.results["training"].run_id
    assert ".." in run.data.tags["train_days"] and ".." in run.data.tags["holdout_days"]
    model_info = mlflow.configure().models.get_model_info(f"models:/churn/{champion.version}")
    assert model_info.signature is not None and model_info.saved_input_example_info is not None
    model_metadata = trained_platform.results["training"].asset_materializations_for_node("churn__model")[0].metadata
    assert model_metadata["mlflow_run"].value.endswith(champion.run_id)


def train(spec, instance: dg.DagsterInstance, **config) -> dg.ExecuteInProcessResult:  # noqa: ANN001
    run_config = {"ops": {f"{spec.name}__model": {"config": config}}} if config else None
    return materialize_stages(build_definitions(load_specs()), spec, TRAINING_STAGES, instance, run_config=run_config)


def test_shuffled_labels_fail_the_threshold_gate_and_champion_stays(trained_copy: Path, churn_spec) -> None:  # noqa: ANN001
    mlflow = default_resources()["mlflow"]
    before = mlflow.version_by_alias("churn", CHAMPION).version
    result = train(churn_spec, dg.DagsterInstance.ephemeral(), shuffle_labels=True)
    assert not result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["meets_thresholds"].passed
    assert "roc_auc" in checks["meets_thresholds"].description
    assert not [m for m in result.get_asset_materialization_events() if m.asset_key == keys.champion(churn_spec)]
    assert mlflow.version_by_alias("churn", CHAMPION).version == before
    newest = max(mlflow.client().search_model_versions("name='churn'"), key=lambda v: int(v.version))
    assert newest.tags["gates"] == "failed" and newest.version != before


def test_worse_challenger_is_refused_then_better_one_promoted_and_rollback_restores(trained_copy: Path, churn_spec) -> None:  # noqa: ANN001
    mlflow = default_resources()["mlflow"]
    original = str(mlflow.version_by_alias("churn", CHAMPION).version)
    instance = dg.DagsterInstance.ephemeral()

    weak = train(churn_spec, instance, params={"n_estimators": 1, "max_depth": 1})
    checks = {e.check_name: e.passed for e in weak.get_asset_check_evaluations()}
    assert checks["not_worse_than_champion"] is False
    assert str(mlflow.version_by_alias("churn", CHAMPION).version) == original

    retrained = train(churn_spec, instance)
    assert retrained.success
    promoted = str(mlflow.version_by_alias("churn", CHAMPION).version)
    assert promoted != original
    assert str(mlflow.version_by_alias("churn", PREVIOUS_CHAMPION).version) == original

    assert rollback(mlflow, "churn") == {"champion": original, "previous": promoted}
    assert str(mlflow.version_by_alias("churn", CHAMPION).version) == original

    scored = materialize_stages(build_definitions(load_specs()), churn_spec, DAILY_STAGES[2:], instance, ["2025-02-18", "2025-02-19"])
    assert scored.success
    lake = DataLake(base_path=str(trained_copy / "lake"))
    assert set(lake.read(keys.predictions(churn_spec), ["2025-02-18", "2025-02-19"])["model_version"]) == {original}


def test_significance_gate_promotes_only_a_challenger_that_is_better_beyond_noise(trained_copy: Path, churn_spec) -> None:  # noqa: ANN001
    """Seed 003: deploy only if statistically better than production on the same data."""
    strict = churn_spec.model_copy(update={"gates": churn_spec.gates.model_copy(update={"min_improvement_confidence": 0.95})})
    defs, instance = build_definitions([strict]), dg.DagsterInstance.ephemeral()
    mlflow = default_resources()["mlflow"]
    original = str(mlflow.version_by_alias("churn", CHAMPION).version)

    def train_strict(**config) -> dg.ExecuteInProcessResult:  # noqa: ANN003
        run_config = {"ops": {"churn__model": {"config": config}}} if config else None
        return materialize_stages(defs, strict, TRAINING_STAGES, instance, run_config=run_config)

    same = train_strict()  # the same data and seed: equal, so not significantly better
    checks = {e.check_name: e for e in same.get_asset_check_evaluations()}
    assert checks["not_worse_than_champion"].passed and not checks[SIGNIFICANCE_CHECK].passed
    assert str(mlflow.version_by_alias("churn", CHAMPION).version) == original

    weak = train_strict(params={"n_estimators": 2, "max_depth": 2})
    weak_version = weak.asset_materializations_for_node("churn__model")[0].metadata["mlflow_version"].value
    promote(mlflow, "churn", weak_version)  # production is running a weak model (say, after a bad rollback)

    better = train_strict()
    checks = {e.check_name: e for e in better.get_asset_check_evaluations()}
    assert checks[SIGNIFICANCE_CHECK].passed and checks[SIGNIFICANCE_CHECK].metadata["confidence"].value >= 0.95
    assert better.success
    assert str(mlflow.version_by_alias("churn", CHAMPION).version) not in (original, weak_version)
