"""The whole churn graph through Dagster, and the model gates that guard the champion."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd

from ml_platform.assets import keys
from ml_platform.assets.training import SIGNIFICANCE_CHECK
from ml_platform.checks.rules import FEATURE_CHECKS, PREDICTION_CHECKS, raw_checks
from ml_platform.cli import main as cli
from ml_platform.definitions import build_definitions, load_specs
from ml_platform.io.parquet_lake import DataLake
from ml_platform.resources import default_resources
from ml_platform.resources.mlflow_resource import CHAMPION, PREVIOUS_CHAMPION
from ml_platform.runner import TRAINING_STAGES, materialize_stages
from ml_platform.spec import UseCaseSpec
from ml_platform_tests.support.automation import evaluate
from ml_platform_tests.support.corrupt import scramble_labels
from ml_platform_tests.support.fixtures import CLASSIFIER_PLOTS, TrainedPlatform, assert_evaluation_plots
from ml_platform_tests.support.results import materializations
from ml_platform_tests.support.webhook import Webhook


def test_whole_graph_materializes_with_every_gate_passing(trained_platform: TrainedPlatform) -> None:
    spec, days = trained_platform.spec, trained_platform.days
    results = trained_platform.results
    assert all(result.success for result in results.values())

    for stage, result, checks in (
        ("raw_events", results["daily"], raw_checks(spec)),
        ("features", results["daily"], FEATURE_CHECKS),
        ("predictions", results["predictions"], PREDICTION_CHECKS),
    ):
        assert sorted(m.partition for m in materializations(result, keys.of_stage(spec, stage))) == days
        evaluations = [e for e in result.get_asset_check_evaluations() if e.asset_key == keys.of_stage(spec, stage)]
        assert {(e.check_name, e.partition) for e in evaluations} == {(c, d) for c in checks for d in days}
        assert all(e.passed for e in evaluations)

    lake = DataLake(base_path=str(trained_platform.root / "lake"))
    features = lake.read(keys.features(spec), days)
    assert set(spec.feature_names) <= set(features.columns)
    assert features.groupby("day")["customer_id"].apply(lambda ids: ids.is_unique).all()

    model_checks = {e.check_name: e for e in results["training"].get_asset_check_evaluations()}
    assert {name: e.passed for name, e in model_checks.items()} == {"meets_thresholds": True, SIGNIFICANCE_CHECK: True}
    assert "first model" in model_checks[SIGNIFICANCE_CHECK].description, "no champion yet: thresholds alone decide"
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
    # every partition carries its own day's metadata, not the range's totals
    by_day = {m.partition: m.metadata for m in materializations(results["predictions"], keys.predictions(spec))}
    assert by_day[days[-1]]["rows"].value == len(predictions)
    assert "top_risk" in by_day[days[-1]] and by_day[days[0]]["rows"].value == (features["day"] == days[0]).sum()


def test_mlflow_run_has_params_metrics_window_and_registered_version(
    trained_platform: TrainedPlatform, monkeypatch
) -> None:
    monkeypatch.setenv("ML_PLATFORM_DATA_DIR", str(trained_platform.root))
    mlflow = default_resources()["mlflow"]
    champion = mlflow.version_by_alias("churn", CHAMPION)
    run = mlflow.client().get_run(champion.run_id)
    assert {"holdout_accuracy", "holdout_precision", "holdout_recall", "holdout_f1", "holdout_roc_auc"} <= set(
        run.data.metrics
    )
    assert run.data.params["n_estimators"] == "100"
    assert run.data.tags["dagster_run_id"] == trained_platform.results["training"].run_id
    assert ".." in run.data.tags["train_days"] and ".." in run.data.tags["holdout_days"]
    model_info = mlflow.configure().models.get_model_info(f"models:/churn/{champion.version}")
    assert model_info.signature is not None and model_info.saved_input_example_info is not None
    model_metadata = trained_platform.results["training"].asset_materializations_for_node("churn__model")[0].metadata
    assert model_metadata["mlflow_run"].value.endswith(champion.run_id)
    assert_evaluation_plots(trained_platform.results["training"], "churn__model", CLASSIFIER_PLOTS, mlflow)
    assert {"train_days", "holdout_days", "train_rows", "holdout_rows", "params", "versus_champion"} <= set(
        model_metadata
    )
    assert model_metadata["holdout_accuracy"].value == round(model_metadata["holdout_accuracy"].value, 4)
    version = mlflow.client().get_model_version("churn", champion.version)
    assert trained_platform.results["training"].run_id in version.description and "holdout" in version.description


def train(spec, instance: dg.DagsterInstance, **config) -> dg.ExecuteInProcessResult:
    run_config = {"ops": {f"{spec.name}__model": {"config": config}}} if config else None
    return materialize_stages(build_definitions(load_specs()), spec, TRAINING_STAGES, instance, run_config=run_config)


def test_labels_without_signal_fail_the_threshold_gate_and_champion_stays(trained_copy: Path, churn_spec) -> None:
    resources = default_resources()
    mlflow = resources["mlflow"]
    before = mlflow.version_by_alias("churn", CHAMPION).version
    scramble_labels(resources["lake"], churn_spec)
    result = train(churn_spec, dg.DagsterInstance.ephemeral())
    assert not result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["meets_thresholds"].passed
    assert "roc_auc" in checks["meets_thresholds"].description
    assert not [m for m in result.get_asset_materialization_events() if m.asset_key == keys.champion(churn_spec)]
    assert mlflow.version_by_alias("churn", CHAMPION).version == before
    newest = max(mlflow.client().search_model_versions("name='churn'"), key=lambda v: int(v.version))
    assert newest.tags["gates"] == "failed" and newest.version != before


def test_only_a_significantly_better_challenger_becomes_champion(
    trained_copy: Path, churn_spec, webhook: Webhook
) -> None:
    """A challenger is deployed only if statistically better than the champion on the same holdout."""
    mlflow, instance = default_resources()["mlflow"], dg.DagsterInstance.ephemeral()
    original = str(mlflow.version_by_alias("churn", CHAMPION).version)

    rival = train(churn_spec, instance, params={"random_state": 9})  # same model, another seed
    check = {e.check_name: e for e in rival.get_asset_check_evaluations()}[SIGNIFICANCE_CHECK]
    values = {name: value.value for name, value in check.metadata.items()}
    assert values["improvement"] > 0, "precondition: the rival is better on this holdout"
    assert values["challenger_roc_auc"] > values["champion_roc_auc"] and values["p_value"] >= 0.05
    assert not check.passed and not rival.success and "not significantly better" in check.description
    assert str(mlflow.version_by_alias("churn", CHAMPION).version) == original
    newest = max(mlflow.client().search_model_versions("name='churn'"), key=lambda v: int(v.version))
    tags = mlflow.client().get_run(newest.run_id).data.tags
    assert tags["gates"] == "failed" and round(float(tags["promotion_p_value"]), 4) == values["p_value"]
    assert (
        tags["promotion_champion_version"] == original
        and round(float(tags["promotion_challenger"]), 4) == values["challenger_roc_auc"]
    )

    stump = train(churn_spec, instance, params={"n_estimators": 1, "max_depth": 1})
    stump_version = stump.asset_materializations_for_node("churn__model")[0].metadata["mlflow_version"].value
    forced = (
        build_definitions(load_specs())
        .get_job_def("churn_promote")
        .execute_in_process(
            run_config={
                "ops": {"churn__promote_champion": {"config": {"version": stump_version, "reason": "incident drill"}}}
            },
            instance=instance,
        )
    )
    assert forced.success and str(mlflow.version_by_alias("churn", CHAMPION).version) == stump_version
    assert mlflow.client().get_model_version("churn", stump_version).tags["champion_action"] == "forced_promotion"

    better = train(churn_spec, instance)
    check = {e.check_name: e for e in better.get_asset_check_evaluations()}[SIGNIFICANCE_CHECK]
    assert better.success and check.passed and check.metadata["p_value"].value < churn_spec.gates.significance_level
    assert check.metadata["improvement_interval"].value["low"] > 0
    champion = mlflow.version_by_alias("churn", CHAMPION)
    assert str(champion.version) not in (original, stump_version)
    assert champion.tags["champion_action"] == "promoted" and champion.tags["champion_replaced"] == stump_version
    assert str(mlflow.version_by_alias("churn", PREVIOUS_CHAMPION).version) == stump_version
    [promoted] = [
        a for a in webhook.received if a["event"] == "champion_promoted" and a["details"]["action"] == "promoted"
    ]
    assert promoted["details"]["champion"] == str(champion.version) and "p = " in promoted["text"]


def test_rollback_restores_the_exact_previous_version_and_its_predictions(
    trained_copy: Path,
    churn_spec,
    tmp_path: Path,
    monkeypatch,
    capsys,
    webhook: Webhook,
) -> None:
    (tmp_path / "dagster_home").mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    mlflow, defs = default_resources()["mlflow"], build_definitions(load_specs())
    instance = dg.DagsterInstance.get()  # the instance the CLI uses
    lake = DataLake(base_path=str(trained_copy / "lake"))
    original = str(mlflow.version_by_alias("churn", CHAMPION).version)
    recent = lake.existing_partitions(keys.features(churn_spec))[-churn_spec.schedule.rescore_days :]
    before = lake.read(keys.predictions(churn_spec), recent)

    def rescore_as_the_sensor_asks(cursor: str | None) -> str:
        tick = evaluate(defs, "churn_new_champion_sensor", instance, cursor)
        [request] = tick.run_requests
        days = [request.tags["dagster/asset_partition_range_start"], request.tags["dagster/asset_partition_range_end"]]
        assert days == [recent[0], recent[-1]]
        assert materialize_stages(defs, churn_spec, ["predictions"], instance, recent).success
        return tick.cursor

    stump = train(churn_spec, instance, params={"n_estimators": 1, "max_depth": 1})
    stump_version = stump.asset_materializations_for_node("churn__model")[0].metadata["mlflow_version"].value
    assert cli(["rollback", "churn", "--to", stump_version]) == 2, "a refused version is no rollback target"
    assert "never passed its gates" in capsys.readouterr().err
    assert cli(["promote", "churn", stump_version, "--reason", "canary of the small model"]) == 0
    cursor = rescore_as_the_sensor_asks(None)
    assert set(lake.read(keys.predictions(churn_spec), recent)["model_version"]) == {stump_version}

    assert cli(["rollback", "churn", "--reason", "canary lost 20% recall"]) == 0
    assert f"champion is now version {original} (was {stump_version})" in capsys.readouterr().out
    restored = mlflow.version_by_alias("churn", CHAMPION)
    assert str(restored.version) == original
    assert str(mlflow.version_by_alias("churn", PREVIOUS_CHAMPION).version) == stump_version
    assert (
        restored.tags["champion_action"] == "rolled_back"
        and restored.tags["champion_reason"] == "canary lost 20% recall"
    )
    assert "(ml-platform rollback)" in restored.tags["champion_by"]
    assert cli(["summary"]) == 0
    summary = capsys.readouterr().out
    assert f"version {original} " in summary and "rolled_back by" in summary and ": canary lost 20% recall" in summary
    rescore_as_the_sensor_asks(cursor)
    pd.testing.assert_frame_equal(lake.read(keys.predictions(churn_spec), recent), before)

    [event] = [e for e in instance.fetch_materializations(keys.champion(churn_spec), limit=1).records]
    metadata = event.asset_materialization.metadata
    assert metadata["action"].value == "rolled_back" and metadata["reason"].value == "canary lost 20% recall"
    assert str(mlflow.version_by_alias("churn", CHAMPION).version) == original
    assert cli(["promote", "churn", "99", "--reason", "typo"]) == 2
    assert "no registered version '99'" in capsys.readouterr().err

    changes = [
        (a["event"], a["details"]["champion"], a["details"]["reason"])
        for a in webhook.received
        if a["event"].startswith("champion_")
    ]
    assert changes == [
        ("champion_promoted", stump_version, "canary of the small model"),
        ("champion_rolled_back", original, "canary lost 20% recall"),
    ]


def with_features(spec: UseCaseSpec, features: list[dict]) -> UseCaseSpec:
    return UseCaseSpec.model_validate({**spec.model_dump(), "features": features})


def rebuild_features_and_train(spec: UseCaseSpec, data: Path) -> dg.ExecuteInProcessResult:
    """What a user does after editing the spec's features: recompute every feature day, then retrain."""
    defs, instance = build_definitions([spec]), dg.DagsterInstance.ephemeral()
    days = DataLake(base_path=str(data / "lake")).existing_partitions(keys.raw_events(spec))
    assert materialize_stages(defs, spec, ["features"], instance, days).success
    return materialize_stages(defs, spec, TRAINING_STAGES, instance)


def test_a_champion_whose_features_the_spec_no_longer_computes_is_refused_with_the_way_forward(
    trained_copy: Path, churn_spec: UseCaseSpec
) -> None:
    mlflow = default_resources()["mlflow"]
    before = str(mlflow.version_by_alias("churn", CHAMPION).version)
    features = churn_spec.model_dump()["features"]
    renamed = with_features(churn_spec, [{**features[0], "name": "weekly_logins"}, *features[1:]])
    result = rebuild_features_and_train(renamed, trained_copy)
    assert not result.success
    check = {e.check_name: e for e in result.get_asset_check_evaluations()}[SIGNIFICANCE_CHECK]
    assert not check.passed
    assert (
        f"champion v{before} was trained on feature(s) ['logins_7d'] that the current spec does not compute"
        in check.description
    )
    assert "ml-platform promote churn" in check.description
    assert str(mlflow.version_by_alias("churn", CHAMPION).version) == before


def test_a_champion_is_scored_on_its_own_features_when_the_spec_adds_one(
    trained_copy: Path, churn_spec: UseCaseSpec
) -> None:
    features = churn_spec.model_dump()["features"]
    extra = {
        "name": "logins_3d",
        "agg": "count",
        "where": {"column": "event_type", "equals": "login"},
        "window_days": 3,
    }
    result = rebuild_features_and_train(with_features(churn_spec, [*features, extra]), trained_copy)
    check = {e.check_name: e for e in result.get_asset_check_evaluations()}[SIGNIFICANCE_CHECK]
    values = {name: value.value for name, value in check.metadata.items()}
    assert 0.5 < values["champion_roc_auc"] <= 1.0 and 0.0 < values["p_value"] <= 1.0, values


def test_tuning_logs_every_trial_with_its_fold_scores_and_trains_the_best(
    trained_copy: Path, churn_spec: UseCaseSpec
) -> None:
    data = churn_spec.model_dump()
    tuning = {"space": {"max_depth": [3, 10], "n_estimators": [30]}, "trials": 4, "folds": 2}
    label = {**data["label"], "horizon_days": 2}  # a shorter purge, so 64 days of history hold two folds
    spec = UseCaseSpec.model_validate({**data, "label": label, "training": {**data["training"], "tuning": tuning}})
    result = materialize_stages(build_definitions([spec]), spec, TRAINING_STAGES, dg.DagsterInstance.ephemeral())
    [model] = result.asset_materializations_for_node("churn__model")
    client = default_resources()["mlflow"].client()
    run_id = model.metadata["mlflow_run"].value.rsplit("/", 1)[1]
    parent = client.get_run(run_id)
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'")
    assert sorted(int(child.data.params["max_depth"]) for child in children) == [3, 10]
    for child in children:
        assert {"fold_0_roc_auc", "fold_1_roc_auc", "cv_roc_auc"} <= set(child.data.metrics)
        folds = [child.data.metrics["fold_0_roc_auc"], child.data.metrics["fold_1_roc_auc"]]
        assert abs(child.data.metrics["cv_roc_auc"] - sum(folds) / 2) < 1e-9
    [best] = [child for child in children if child.data.tags["tuning"] == "best"]
    assert best.data.metrics["cv_roc_auc"] == max(child.data.metrics["cv_roc_auc"] for child in children)
    assert parent.data.params["max_depth"] == best.data.params["max_depth"] and parent.data.tags["tuning_trials"] == "2"
