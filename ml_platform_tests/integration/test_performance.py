"""`<use case>/performance`: realized metrics as labels mature, estimates before, and the degradation gate."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from sklearn import metrics

from ml_platform.assets import keys
from ml_platform.definitions import build_definitions, load_specs
from ml_platform.io.parquet_lake import DataLake
from ml_platform.models.challenger import CALIBRATION_TAG, THRESHOLD_TAG
from ml_platform.monitoring.degradation import PERFORMANCE_CHECK
from ml_platform.monitoring.realized import estimated_metrics, expected_roc_auc, fit_calibration
from ml_platform.runner import materialize_stages
from ml_platform.spec import UseCaseSpec
from ml_platform_tests.support.automation import evaluate
from ml_platform_tests.support.fixtures import day_keys
from ml_platform_tests.support.webhook import Webhook

MATURED = "2025-02-24"  # labels from raw 02-25..03-03: landed (the fixture lands through 2025-03-05)
PENDING = "2025-03-01"  # labels need raw up to 03-08: not landed


def partition_metadata(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict[str, dict[str, object]]:
    return {
        m.partition: {name: value.value for name, value in m.metadata.items()}
        for m in result.asset_materializations_for_node(key.to_python_identifier())
    }


def test_realized_metrics_equal_a_hand_computation_and_estimates_come_before_labels(
    trained_copy: Path,
    churn_spec: UseCaseSpec,
) -> None:
    defs = build_definitions(load_specs())
    days = day_keys()[-10:]  # 2025-02-24 .. 2025-03-05
    result = materialize_stages(defs, churn_spec, ("performance",), dg.DagsterInstance.ephemeral(), days)
    assert result.success
    by_day = partition_metadata(result, keys.performance(churn_spec))
    assert set(by_day) == set(days), "every scored day is recorded"

    lake = DataLake(base_path=str(trained_copy / "lake"))
    predictions = lake.read(keys.predictions(churn_spec), [MATURED])
    raw = lake.read(keys.raw_events(churn_spec), day_keys()[-9:-2])  # 02-25 .. 03-03, the 7 days after
    churned = set(raw.loc[raw["cancelled"] == 1, "customer_id"])
    labels = predictions["customer_id"].isin(churned).astype(int).to_numpy()
    scores = predictions["score"].to_numpy()
    version = str(predictions["model_version"].iloc[0])
    client = defs.resources["mlflow"].client()
    threshold = float(client.get_model_version("churn", version).tags[THRESHOLD_TAG])
    calibration = json.loads(client.get_model_version("churn", version).tags[CALIBRATION_TAG])  # kept at registration
    assert len(calibration["x"]) == len(calibration["y"]) and calibration["y"] == sorted(calibration["y"])
    matured = by_day[MATURED]
    assert matured["labels"] == "complete" and matured["champion_version"] == version
    assert matured["rows"] == len(predictions) and matured["label_coverage"] == 1.0
    assert matured["realized_roc_auc"] == pytest.approx(metrics.roc_auc_score(labels, scores))
    assert matured["realized_f1"] == pytest.approx(metrics.f1_score(labels, scores >= threshold))
    assert matured["realized_precision"] == pytest.approx(metrics.precision_score(labels, scores >= threshold))
    assert matured["realized_recall"] == pytest.approx(metrics.recall_score(labels, scores >= threshold))
    bins = np.minimum((scores * 10).astype(int), 9)
    ece = sum(abs(scores[bins == b].mean() - labels[bins == b].mean()) * (bins == b).sum() for b in set(bins)) / len(
        labels
    )
    assert matured["realized_calibration_error"] == pytest.approx(ece)
    assert matured["estimation_error_roc_auc"] == pytest.approx(
        matured["estimated_roc_auc"] - matured["realized_roc_auc"]
    )

    pending = by_day[PENDING]
    assert pending["labels"] == "pending until raw day 2025-03-08 lands"
    assert not [name for name in pending if name.startswith(("realized_", "estimation_error_"))]
    assert {
        "estimated_roc_auc",
        "estimated_f1",
        "estimated_precision",
        "estimated_recall",
        "estimated_accuracy",
    } <= set(pending)
    assert all(isinstance(by_day[day]["estimated_roc_auc"], float) for day in days), "floats: the Plots tab draws them"
    evaluations = [e for e in result.get_asset_check_evaluations() if e.check_name == PERFORMANCE_CHECK]
    assert {e.partition for e in evaluations} == set(days) and all(e.passed for e in evaluations)


def test_cbpe_estimates_match_the_realized_metrics_of_calibrated_scores() -> None:
    rng = np.random.default_rng(1)
    scores = rng.beta(1, 3, 50_000)
    labels = (rng.uniform(size=scores.size) < scores).astype(int)  # calibrated by construction
    spec = next(spec for spec in load_specs() if spec.name == "churn")
    estimated = estimated_metrics(spec, pd.DataFrame({"score": scores}), 0.4, {})
    assert estimated["roc_auc"] == pytest.approx(metrics.roc_auc_score(labels, scores), abs=0.01)
    assert estimated["f1"] == pytest.approx(metrics.f1_score(labels, scores >= 0.4), abs=0.01)
    assert estimated["precision"] == pytest.approx(metrics.precision_score(labels, scores >= 0.4), abs=0.01)
    assert expected_roc_auc(np.zeros(5)) is None, "no positive expected: no AUC"


def test_scores_that_are_not_probabilities_are_estimated_through_the_holdout_calibration() -> None:
    """A model whose scores are not probabilities (fraud's MLP is sharper than its rates): taken at face value
    its expected recall and F1 are far off; through the isotonic map fitted on a holdout they match."""
    rng = np.random.default_rng(2)
    spec = next(spec for spec in load_specs() if spec.name == "churn")

    def day(size: int) -> tuple[np.ndarray, np.ndarray]:
        probabilities = rng.beta(1, 6, size)
        return probabilities**0.3, (rng.uniform(size=size) < probabilities).astype(int)  # scores inflated, rank kept

    holdout_scores, holdout_labels = day(20_000)
    scores, labels = day(50_000)
    threshold = 0.6
    calibration = fit_calibration(holdout_scores, holdout_labels)
    assert (
        calibration is not None and len(calibration["x"]) <= 40 and len(json.dumps(calibration)) < 5000
    )  # an MLflow tag
    naive = estimated_metrics(spec, pd.DataFrame({"score": scores}), threshold, {})
    calibrated = estimated_metrics(spec, pd.DataFrame({"score": scores}), threshold, {}, calibration)
    realized = {
        "f1": metrics.f1_score(labels, scores >= threshold),
        "recall": metrics.recall_score(labels, scores >= threshold),
        "precision": metrics.precision_score(labels, scores >= threshold),
        "roc_auc": metrics.roc_auc_score(labels, scores),
    }
    for name, value in realized.items():
        assert calibrated[name] == pytest.approx(value, abs=0.02), name
    assert abs(naive["precision"] - realized["precision"]) > 0.1, "the uncalibrated estimate was off: the test can fail"
    assert fit_calibration(holdout_scores, np.zeros(holdout_scores.size)) is None, "one class: nothing to calibrate on"


def test_a_degraded_stretch_fails_the_gate_and_retrains_once_with_the_numbers(
    trained_copy: Path,
    churn_spec: UseCaseSpec,
    webhook: Webhook,
) -> None:
    lake = DataLake(base_path=str(trained_copy / "lake"))
    raw_key = keys.raw_events(churn_spec)
    for day in day_keys()[day_keys().index("2025-02-20") :]:  # every customer active after 02-20 "cancels", none else
        events = lake.read(raw_key, [day])
        lake.write_partition(raw_key, day, events.assign(cancelled=1 - events["cancelled"]))
    defs = build_definitions(load_specs())
    instance = dg.DagsterInstance.ephemeral()
    days = day_keys()[day_keys().index("2025-02-01") : day_keys().index("2025-02-26") + 1]
    result = materialize_stages(defs, churn_spec, ("performance",), instance, days)
    assert not result.success, "the gate fails the run, naming the days"
    failure = result.failure_data_for_node("churn__performance").user_failure_data
    assert "churn/performance: " in failure.description and "performance_within_holdout" in failure.description
    recorded = partition_metadata(result, keys.performance(churn_spec))
    assert set(recorded) == set(days), "every day is measured and recorded, degraded or not"
    auc = {day: meta["realized_roc_auc"] for day, meta in recorded.items()}
    outcome = {e.partition: e.passed for e in result.get_asset_check_evaluations() if e.check_name == PERFORMANCE_CHECK}
    assert all(outcome[day] for day in days if day <= "2025-02-10"), auc
    assert not any(outcome[day] for day in days if day >= "2025-02-19"), auc
    first_fail = min(day for day, ok in outcome.items() if not ok)
    assert all(not outcome[day] for day in days if day >= first_fail), "one stretch, to the newest day"

    tick = evaluate(defs, "churn_performance_retrain_sensor", instance, None)
    [request] = tick.run_requests
    assert request.tags["ml_platform/trigger"] == "performance"
    episode_start = request.tags["ml_platform/performance_days"].split("..")[0]
    assert request.run_key == f"performance-episode-{episode_start}" and episode_start < first_fail
    repeat = evaluate(defs, "churn_performance_retrain_sensor", instance, tick.cursor)
    assert repeat.run_requests == [] and "already requested" in repeat.skip_message, "once per episode"
    [alert] = [a for a in webhook.received if a.get("event") == "performance_degraded"]
    assert alert["details"]["days"]["2025-02-26"] == pytest.approx(auc["2025-02-26"], abs=1e-4), json.dumps(alert)
    assert alert["details"]["bound"] > max(alert["details"]["days"].values())


def test_automation_runs_a_day_when_it_is_scored_and_again_when_its_last_label_day_lands(
    trained_copy: Path,
    churn_spec: UseCaseSpec,
) -> None:
    defs = build_definitions(load_specs())
    instance = dg.DagsterInstance.ephemeral()
    performance = keys.performance(churn_spec)
    at = dt.datetime(2025, 3, 6, 0, 30, tzinfo=dt.UTC)  # the newest partition is 2025-03-05
    cursor = None

    def tick() -> set[str]:
        nonlocal cursor
        result = dg.evaluate_automation_conditions(defs, instance, evaluation_time=at, cursor=cursor)
        cursor = result.cursor
        return set(result.get_requested_partitions(performance))

    def materialize(stage: str, days: list[str]) -> None:
        assert materialize_stages(defs, churn_spec, [stage], instance, days).success

    tick()
    materialize("predictions", [MATURED])
    assert tick() == {MATURED}, "scored: the estimate runs at once"
    materialize("performance", [MATURED])
    assert tick() == set()
    label_days = day_keys()[-9:-2]  # 02-25 .. 03-03
    materialize("raw_events", label_days[:-1])
    assert tick() == set(), "a label day is still missing"
    materialize("raw_events", label_days[-1:])
    assert tick() == {MATURED}, "the last label day landed: the realized metrics run"


def test_prometheus_gauges_show_the_newest_realized_and_estimated_metrics(
    trained_copy: Path,
    churn_spec: UseCaseSpec,
) -> None:
    from ml_platform.metrics_exporter import PlatformCollector

    defs = build_definitions(load_specs())
    instance = dg.DagsterInstance.ephemeral()
    result = materialize_stages(defs, churn_spec, ("performance",), instance, day_keys()[-10:-4])  # 02-24..03-01
    by_day = partition_metadata(result, keys.performance(churn_spec))
    gauges = {metric.name: metric.samples for metric in PlatformCollector(instance, [churn_spec], defs).collect()}
    realized = {s.labels["metric"]: s for s in gauges["ml_platform_realized_metric"]}
    estimated = {s.labels["metric"]: s for s in gauges["ml_platform_estimated_metric"]}
    assert realized["roc_auc"].labels["day"] == "2025-02-26", "the newest day whose labels matured"
    assert realized["roc_auc"].value == pytest.approx(by_day["2025-02-26"]["realized_roc_auc"])
    assert estimated["f1"].labels["day"] == PENDING and estimated["f1"].value == pytest.approx(
        by_day[PENDING]["estimated_f1"]
    )
    [coverage] = gauges["ml_platform_label_coverage"]
    assert coverage.value == 1.0
    from ml_platform.cli import summary

    lines = summary("churn", instance).splitlines()
    assert (
        f"  performance realized on 2025-02-26: roc_auc {by_day['2025-02-26']['realized_roc_auc']:.4f} "
        f"(champion v{realized['roc_auc'].labels['champion_version']}, label coverage 100%)" in lines
    )
    assert any(line.startswith(f"  performance estimated on {PENDING}: roc_auc ") for line in lines), lines
