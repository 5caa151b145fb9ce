"""Fraud (PyTorch MLP per transaction), prices (bidirectional GRU forecaster) and the tutorial
use case, all through the same factory, gates and registry as churn."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from demo.generators.fraud import generate_fraud_events
from ml_platform.assets import keys
from ml_platform.assets.training import SIGNIFICANCE_CHECK
from ml_platform.cli import main as cli
from ml_platform.definitions import build_definitions, load_specs
from ml_platform.features.compute import compute_features
from ml_platform.io.parquet_lake import DataLake
from ml_platform.resources import default_resources
from ml_platform.resources.mlflow_resource import CHAMPION
from ml_platform.runner import TRAINING_STAGES, materialize_stages
from ml_platform.spec import load_spec
from ml_platform_tests.support.corrupt import scramble_labels
from ml_platform_tests.support.fixtures import CLASSIFIER_PLOTS, FORECAST_PLOTS, START, assert_evaluation_plots
from ml_platform_tests.support.use_cases import USE_CASE_SIZES, UseCasePlatform


@pytest.fixture(scope="module", params=sorted(USE_CASE_SIZES))
def platform(request: pytest.FixtureRequest, use_case_platform: Callable[[str], UseCasePlatform]) -> UseCasePlatform:
    return use_case_platform(request.param)


def retrain(
    platform: UseCasePlatform,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    data: Path | None = None,
    **config: object,
) -> dg.ExecuteInProcessResult:
    """Train again on a copy of the platform's data dir (or on `data`, a copy already made)."""
    copy = data or shutil.copytree(platform.root, tmp_path / "data")
    monkeypatch.setenv("ML_PLATFORM_DATA_DIR", str(copy))
    run_config = {"ops": {f"{platform.name}__model": {"config": config}}} if config else None
    return materialize_stages(
        build_definitions(load_specs()),
        platform.spec,
        TRAINING_STAGES,
        dg.DagsterInstance.ephemeral(),
        run_config=run_config,
    )


def test_end_to_end_gates_pass_and_champion_scores(platform: UseCasePlatform, monkeypatch: pytest.MonkeyPatch) -> None:
    assert platform.daily.success and platform.training.success and platform.predictions.success
    checks = {e.check_name: e.passed for e in platform.training.get_asset_check_evaluations()}
    assert checks == {"meets_thresholds": True, SIGNIFICANCE_CHECK: True}
    metrics = platform.summary["metrics"]
    if platform.name == "fraud":
        assert metrics["f1"] >= 0.90
    else:
        assert metrics["mae"] < metrics["naive_mae"] * (1 - platform.spec.gates.min_metrics["skill_vs_naive"])
        assert metrics["rmse"] < metrics["naive_rmse"]

    scored = platform.lake.read(keys.predictions(platform.spec), platform.days[-1:])
    features = platform.lake.read(keys.features(platform.spec), platform.days[-1:])
    assert len(scored) == len(features) > 0
    assert not scored.duplicated(platform.spec.key_columns).any()
    assert set(scored["model_version"]) == {platform.summary["version"]}

    monkeypatch.setenv("ML_PLATFORM_DATA_DIR", str(platform.root))
    mlflow = default_resources()["mlflow"]
    champion = mlflow.version_by_alias(platform.name, CHAMPION)
    info = mlflow.configure().models.get_model_info(f"models:/{platform.name}/{champion.version}")
    assert "pytorch" in info.flavors and info.signature is not None
    run = mlflow.client().get_run(champion.run_id)
    assert {f"holdout_{m}" for m in metrics} <= set(run.data.metrics)
    if platform.name == "fraud":
        assert 0 < float(champion.tags["decision_threshold"]) < 1
        assert run.data.params["decision_threshold"] == champion.tags["decision_threshold"]
    plots = CLASSIFIER_PLOTS if platform.spec.label.task == "classification" else FORECAST_PLOTS
    assert_evaluation_plots(platform.training, f"{platform.name}__model", plots, mlflow)


def test_a_model_without_skill_fails_the_gate_and_champion_stays(
    platform: UseCasePlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = shutil.copytree(platform.root, tmp_path / "data")
    if platform.spec.label.task == "classification":  # labels that carry no signal
        scramble_labels(DataLake(base_path=str(copy / "lake")), platform.spec)
        result = retrain(platform, tmp_path, monkeypatch, data=copy)
    else:  # a forecaster that has hardly trained: no better than the naive last-value forecast
        result = retrain(platform, tmp_path, monkeypatch, data=copy, params={"epochs": 1, "lr": 1e-7})
    assert not result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["meets_thresholds"].passed
    assert (
        str(default_resources()["mlflow"].version_by_alias(platform.name, CHAMPION).version)
        == platform.summary["version"]
    )


def test_same_data_and_seed_give_the_same_metrics_and_no_promotion(
    platform: UseCasePlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = retrain(platform, tmp_path, monkeypatch)
    again = DataLake(base_path=str(tmp_path / "data" / "lake")).read_json(keys.model(platform.spec))
    assert again["metrics"] == pytest.approx(platform.summary["metrics"], abs=1e-9)
    check = {e.check_name: e for e in result.get_asset_check_evaluations()}[SIGNIFICANCE_CHECK]
    assert not result.success and not check.passed and check.metadata["improvement"].value == 0, (
        "a tie is no improvement"
    )
    assert (
        str(default_resources()["mlflow"].version_by_alias(platform.name, CHAMPION).version)
        == platform.summary["version"]
    )


def test_fraud_velocity_uses_only_previous_days(fraud_spec) -> None:
    events = pd.concat([frame for _, frame in generate_fraud_events(START, 12, 400, seed=1)], ignore_index=True)
    day = "2025-01-10"
    original = compute_features(events, fraud_spec, [day])
    same_day_burst = events[events["event_time"].dt.strftime("%Y-%m-%d") == day].copy()
    same_day_burst["transaction_id"] += "-dup"
    later = events[events["event_time"] >= pd.Timestamp("2025-01-11", tz="UTC")].assign(amount=9_999.0)
    tampered = pd.concat([events[events["event_time"] < pd.Timestamp("2025-01-11", tz="UTC")], later, same_day_burst])
    recomputed = compute_features(tampered, fraud_spec, [day])
    velocity = [n for n in fraud_spec.feature_names if n.startswith("card_")]
    merged = original.merge(recomputed, on="transaction_id", suffixes=("", "_again"))
    assert len(merged) == len(original) > 0
    for name in velocity:
        np.testing.assert_allclose(merged[name], merged[f"{name}_again"])


@pytest.fixture(scope="module")
def fraud_spec():
    return next(spec for spec in load_specs() if spec.name == "fraud")


def test_scaffolded_spec_is_valid_and_never_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli(["new-use-case", "returns", "--dir", str(tmp_path)]) == 0
    spec = load_spec(tmp_path / "returns.yaml")
    assert spec.name == "returns" and "EDIT" in (tmp_path / "returns.yaml").read_text()
    assert cli(["new-use-case", "returns", "--dir", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli(["new-use-case", "Bad-Name", "--dir", str(tmp_path)]) == 2


def test_all_use_cases_share_one_code_location() -> None:
    defs = build_definitions(load_specs())
    groups = {key.path[0] for key in defs.resolve_all_asset_keys()}
    assert {"churn", "fraud", "prices", "news"} <= groups
    for name in ("churn", "fraud", "prices", "news"):
        assert {f"{name}_daily", f"{name}_training", f"{name}_rescore"} <= {job.name for job in defs.jobs}
