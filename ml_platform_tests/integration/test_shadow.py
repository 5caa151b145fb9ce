"""Shadow challengers on live days: scores by the non-champion, the paired live comparison once labels mature,
and `gates.live_evidence_days` holding a passing challenger back until the live evidence is in.

On a copy of the session's trained churn platform (champion v1, 64 days): a weak v2 (one stump) is forced to
champion, a retrained v3 passes its holdout gates but waits in shadow, scores two live days, is compared with
v2 on their matured labels, and is promoted by the live-evidence sensor's promote run after the second day.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from ml_platform.assets import keys
from ml_platform.assets.shadow import CHAMPION_SIDE, SHADOW, paired_test
from ml_platform.cli import summary
from ml_platform.definitions import build_definitions, load_specs
from ml_platform.metrics_exporter import PlatformCollector
from ml_platform.models.registry import change_champion
from ml_platform.monitoring.realized import LABEL, NAIVE
from ml_platform.resources.mlflow_resource import CHAMPION
from ml_platform.runner import TRAINING_STAGES, materialize_stages
from ml_platform.spec import UseCaseSpec
from ml_platform.steps import score_frame
from ml_platform_tests.support.automation import evaluate
from ml_platform_tests.support.fixtures import TrainedPlatform

WEAK = {"ops": {"churn__model": {"config": {"params": {"n_estimators": 1, "max_depth": 1}}}}}


def partition_metadata(instance: dg.DagsterInstance, key: dg.AssetKey, day: str) -> dict[str, object]:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[day]), limit=1
    ).records
    return {name: value.value for name, value in records[0].asset_materialization.metadata.items()}


def test_without_a_challenger_shadow_predictions_is_an_empty_day_with_a_note(
    trained_copy: Path,
    trained_platform: TrainedPlatform,
    churn_spec: UseCaseSpec,
) -> None:
    defs, instance, day = build_definitions(load_specs()), dg.DagsterInstance.ephemeral(), trained_platform.days[-1]
    result = materialize_stages(defs, churn_spec, ["shadow_predictions"], instance, [day])
    assert result.success
    stored = defs.resources["lake"].read(keys.shadow_predictions(churn_spec), [day])
    assert stored.empty and {"score", "model_version"} <= set(stored.columns)
    note = partition_metadata(instance, keys.shadow_predictions(churn_spec), day)["note"]
    assert note == "no version to shadow: none is registered besides the champion (v1)", note

    listed = churn_spec.model_copy(
        update={"monitoring": churn_spec.monitoring.model_copy(update={"shadow_versions": [5]})}
    )
    refused = materialize_stages(build_definitions([listed]), listed, ["shadow_predictions"], instance, [day])
    failure = next(event for event in refused.all_events if event.is_step_failure).step_failure_data.error.message
    assert "monitoring.shadow_versions lists version(s) [5] that are not registered; expected some of [1]" in failure


def test_shadow_version_scores_live_days_is_compared_and_promoted_after_live_evidence(
    trained_copy: Path,
    trained_platform: TrainedPlatform,
    churn_spec: UseCaseSpec,
) -> None:
    spec = churn_spec.model_copy(update={"gates": churn_spec.gates.model_copy(update={"live_evidence_days": 2})})
    defs, instance = build_definitions([spec]), dg.DagsterInstance.ephemeral()
    mlflow, lake = defs.resources["mlflow"], defs.resources["lake"]
    materialize_stages(defs, spec, TRAINING_STAGES, instance, run_config=WEAK)  # v2, a stump: fails its gates
    change_champion(mlflow, "churn", "2", "forced_promotion", "test: a weak champion to beat", "test")

    training = materialize_stages(defs, spec, TRAINING_STAGES, instance)  # v3 passes its gates, waits in shadow
    checks = {e.check_name: e.passed for e in training.get_asset_check_evaluations()}
    assert checks == {"meets_thresholds": True, "significantly_better_than_champion": True}, checks
    assert training.success and not training.asset_materializations_for_node("churn__champion")
    assert str(mlflow.version_by_alias("churn", CHAMPION).version) == "2"

    days = trained_platform.days[50:52]  # labels mature 7 days later, within the 64 landed days
    assert materialize_stages(defs, spec, ["predictions"], instance, days).success  # scored by champion v2
    assert materialize_stages(defs, spec, ["shadow_predictions"], instance, days).success
    shadow = lake.read(keys.shadow_predictions(spec), days)
    assert set(shadow["model_version"]) == {"3"}
    direct = score_frame(mlflow.load_model("churn", "3"), lake.read(keys.features(spec), days), spec, "3")
    pd.testing.assert_frame_equal(shadow.reset_index(drop=True), direct.reset_index(drop=True), check_dtype=False)

    assert materialize_stages(defs, spec, ["shadow_comparison"], instance, days[:1]).success
    first = partition_metadata(instance, keys.shadow_comparison(spec), days[0])
    assert (first["shadow_version"], first["champion_version"], first["live_days"]) == ("3", "2", 1)
    assert isinstance(first["live_delta_roc_auc"], float) and first["live_delta_roc_auc"] > 0.05, first
    assert first["live_p_value"] < spec.gates.significance_level and first["day_p_value"] == first["live_p_value"]
    paired = lake.read(keys.shadow_comparison(spec), days[:1])
    assert len(paired) == first["rows"] == len(shadow[shadow["day"] == days[0]]) and paired["label"].notna().any()
    waiting = evaluate(defs, "churn_live_evidence_sensor", instance, None)
    assert not waiting.run_requests and "needs 2 day(s)" in (waiting.skip_message or ""), waiting.skip_message

    assert materialize_stages(defs, spec, ["shadow_comparison"], instance, days[1:]).success
    second = partition_metadata(instance, keys.shadow_comparison(spec), days[1])
    assert second["live_days"] == 2 and second["live_p_value"] < spec.gates.significance_level
    assert not np.isclose(second["live_delta_roc_auc"], second["day_delta_roc_auc"])  # both days, not the last
    metrics = {metric.name: metric for metric in PlatformCollector(instance, [spec], defs).collect()}
    [delta] = metrics["ml_platform_shadow_live_delta"].samples
    assert delta.labels == {"use_case": "churn", "shadow_version": "3", "champion_version": "2", "metric": "roc_auc"}
    assert delta.value == second["live_delta_roc_auc"] and metrics["ml_platform_shadow_live_days"].samples[0].value == 2
    text = summary("churn", instance)
    assert "shadow: version(s) 3 scoring live days" in text, text
    assert f"live comparison through {days[1]}: v3 vs champion v2 roc_auc +" in text and "over 2 day(s)" in text, text

    ready = evaluate(defs, "churn_live_evidence_sensor", instance, None)
    [request] = ready.run_requests
    promote = defs.get_job_def("churn_promote").execute_in_process(run_config=request.run_config, instance=instance)
    assert promote.success
    champion = mlflow.version_by_alias("churn", CHAMPION)
    assert str(champion.version) == "3" and champion.tags["champion_reason"].startswith("live evidence: roc_auc +")
    assert champion.tags["champion_action"] == "promoted_on_live_evidence"  # not recorded as a forced promotion
    assert not evaluate(defs, "churn_live_evidence_sensor", instance, None).run_requests  # v3 is champion now


def test_automation_scores_the_newest_day_in_shadow_and_compares_a_day_once_its_labels_mature(
    trained_copy: Path,
    trained_platform: TrainedPlatform,
    churn_spec: UseCaseSpec,
) -> None:
    defs, instance, spec = build_definitions([churn_spec]), dg.DagsterInstance.ephemeral(), churn_spec
    days, shadow, compared = trained_platform.days, keys.shadow_predictions(spec), keys.shadow_comparison(spec)
    day, newest = days[55], days[-1]  # day's labels mature with raw day 62 (7-day horizon)
    selection = dg.AssetSelection.assets(shadow, compared)
    noon_after = dt.datetime.fromisoformat(newest).replace(hour=12, tzinfo=dt.UTC) + dt.timedelta(days=1)
    start = dg.evaluate_automation_conditions(defs, instance, selection, evaluation_time=noon_after)
    assert materialize_stages(defs, spec, ["raw_events"], instance, days[55:62]).success  # a run is a range
    assert materialize_stages(defs, spec, ["raw_events"], instance, [newest]).success
    assert materialize_stages(defs, spec, ["predictions", "shadow_predictions"], instance, [day]).success
    waiting = dg.evaluate_automation_conditions(
        defs, instance, selection, evaluation_time=noon_after, cursor=start.cursor
    )
    assert waiting.total_requested == 0  # raw day 62 is missing (labels not mature), the newest features too

    assert materialize_stages(defs, spec, ["raw_events"], instance, [days[62]]).success
    assert materialize_stages(defs, spec, ["features"], instance, [newest]).success
    ready = dg.evaluate_automation_conditions(
        defs, instance, selection, evaluation_time=noon_after, cursor=waiting.cursor
    )
    assert ready.get_requested_partitions(shadow) == {newest}  # eager: the newest day's features landed
    assert ready.get_requested_partitions(compared) == {day}  # every raw day through day + 7 landed

    # a backfill reaching the newest days compares the matured ones and fails naming the others
    backfill = materialize_stages(defs, spec, ["shadow_comparison"], instance, days[55:])
    failure = next(event for event in backfill.all_events if event.is_step_failure).step_failure_data.error.message
    assert f"labels not mature for 7 day(s) {days[57]}..{days[63]}" in failure and "2 day(s) compared" in failure
    assert instance.get_materialized_partitions(compared) == {day, days[56]}
    assert (
        partition_metadata(instance, compared, days[56])["note"]
        == f"no shadow version scored {days[56]}: nothing to compare"
    )


def test_the_live_test_reads_each_task_as_its_promotion_does() -> None:
    """News compares predicted classes, prices forecasts against the naive last value, fraud F1 at each version's
    threshold: a shadow that is right where the champion is wrong is significantly better, and not the reverse."""
    rng = np.random.default_rng(0)
    for spec in (s for s in load_specs() if s.name in ("news", "prices", "fraud")):
        rows = 400
        if spec.label.task == "multiclass":
            truth = rng.choice(spec.classes, rows)
            frame = pd.DataFrame(
                {
                    LABEL: truth,
                    f"{SHADOW}_predicted_class": truth,
                    f"{CHAMPION_SIDE}_predicted_class": rng.choice(spec.classes, rows),
                }
            )
        elif spec.label.task == "regression":
            truth = rng.normal(100, 10, rows)
            frame = pd.DataFrame(
                {
                    LABEL: truth,
                    NAIVE: truth + rng.normal(0, 5, rows),
                    f"{SHADOW}_score": truth + rng.normal(0, 1, rows),
                    f"{CHAMPION_SIDE}_score": truth + rng.normal(0, 8, rows),
                }
            )
        else:
            truth = (rng.random(rows) < 0.3).astype(float)
            frame = pd.DataFrame(
                {
                    LABEL: truth,
                    f"{SHADOW}_score": np.where(truth == 1, 0.7, 0.2),
                    f"{CHAMPION_SIDE}_score": rng.random(rows),
                }
            )
        better = paired_test(spec, frame, 0.5, 0.5)
        assert better is not None and better.significant(spec.gates.significance_level), (spec.name, better)
        swapped = frame.rename(
            columns={
                f"{mine}_{column}": f"{theirs}_{column}"
                for column in ("score", "predicted_class")
                for mine, theirs in ((SHADOW, CHAMPION_SIDE), (CHAMPION_SIDE, SHADOW))
            }
        )
        worse = paired_test(spec, swapped, 0.5, 0.5)
        assert worse is not None and worse.improvement < 0 and not worse.significant(spec.gates.significance_level)
    assert paired_test(spec, frame.iloc[:0], 0.5, 0.5) is None
