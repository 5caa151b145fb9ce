"""A check set to `severity: warn` records a WARN evaluation and lets its day through, end to end.

Churn, with its `plan` column's limits set to warn: one day has a third of its plans missing (null_fraction),
another a plan outside the closed set (value_ranges, the category that first appears late). Both days are
written and reach features in the same run; their evaluations are Failed with severity WARN in the check's
Partitions data the UI reads (GraphQL); `ml-platform summary`, the CLI's run report and the metrics exporter
count them as warnings, not failures; and drift's measurement, which always warns, the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from prometheus_client.core import Metric

from demo.generators.churn import write_landing_files
from ml_platform.assets import keys
from ml_platform.cli import main, summary
from ml_platform.definitions import build_definitions, load_specs
from ml_platform.io.parquet_lake import DataLake
from ml_platform.metrics_exporter import PlatformCollector
from ml_platform.spec import UseCaseSpec
from ml_platform.stage_runs import run_stages
from ml_platform_tests.support.check_view import CheckView
from ml_platform_tests.support.fixtures import START, day_keys, landing_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
DAYS = day_keys(START, 10)
NULL_DAY, NEW_PLAN_DAY = DAYS[4], DAYS[6]

# the partition panel's evaluation, with its severity (check_view.py's panel query leaves severity out)
EVALUATION = """
query Evaluation($assetKey: AssetKeyInput!, $checkName: String!, $partition: String) {
  assetCheckExecutions(assetKey: $assetKey, checkName: $checkName, partition: $partition, limit: 1) {
    status partition evaluation { severity description }
  }
}
"""


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    """The shipped dagster.yaml (SQLite under DAGSTER_HOME), as the UI's code server loads it."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        yield instance
    finally:
        instance.dispose()


def plan_warns(spec: UseCaseSpec) -> UseCaseSpec:
    data = spec.model_dump(mode="json", exclude_unset=True)
    data["columns"] = [{**c, "severity": "warn"} if c["name"] == "plan" else c for c in data["columns"]]
    return UseCaseSpec.model_validate(data)


def land_days(data_dir: Path) -> None:
    write_landing_files(landing_dir(data_dir), START, len(DAYS), 200, seed=5)
    nulls = landing_dir(data_dir) / f"{NULL_DAY}.parquet"
    frame = pd.read_parquet(nulls)
    frame["plan"] = frame["plan"].where(np.arange(len(frame)) % 3 != 0, None)
    frame.to_parquet(nulls, index=False)
    new_plan = landing_dir(data_dir) / f"{NEW_PLAN_DAY}.parquet"
    frame = pd.read_parquet(new_plan)
    frame.loc[0, "plan"] = "enterprise"
    frame.to_parquet(new_plan, index=False)


def sample(metric: Metric, asset: str, check: str) -> float:
    [value] = [s.value for s in metric.samples if s.labels == {"use_case": "churn", "asset": asset, "check": check}]
    return value


def test_a_warned_day_is_written_and_counted_as_a_warning(
    data_dir: Path, churn_spec: UseCaseSpec, instance: dg.DagsterInstance
) -> None:
    spec = plan_warns(churn_spec)
    land_days(data_dir)
    defs = build_definitions([spec])

    run = run_stages(defs, spec, "churn", ["raw_events", "features"], instance, DAYS)

    assert run.success and not run.failed_days and not run.errors
    assert sorted(run.warnings) == ["raw_events:null_fraction", "raw_events:value_ranges"]
    assert run.warnings["raw_events:value_ranges"] == [
        f"partition {NEW_PLAN_DAY}: column 'plan' has values ['enterprise'] outside ['basic', 'standard', 'premium']"
    ]
    assert (
        run.checks[("raw_events:null_fraction", "warned")] == 1
        and run.checks[("raw_events:null_fraction", "passed")] == 9
    )
    for stage in ("raw_events", "features"):  # both days written, and their features computed
        assert sorted(instance.get_materialized_partitions(keys.of_stage(spec, stage))) == DAYS, stage
        assert (data_dir / "lake" / "churn" / stage / f"{NULL_DAY}.parquet").exists()
    assert pd.read_parquet(data_dir / "lake" / "churn" / "raw_events" / f"{NULL_DAY}.parquet")["plan"].isna().any()

    # the UI: Failed in the check's Partitions tab, with severity WARN on the partition's evaluation
    with CheckView(instance) as view:
        statuses = view.statuses()
        assert statuses[("raw_events", "null_fraction")] == {**dict.fromkeys(DAYS, "SUCCEEDED"), NULL_DAY: "FAILED"}
        assert statuses[("raw_events", "value_ranges")] == {**dict.fromkeys(DAYS, "SUCCEEDED"), NEW_PLAN_DAY: "FAILED"}
        assert statuses[("features", "inputs_complete")] == dict.fromkeys(DAYS, "SUCCEEDED")
        variables = {
            "assetKey": {"path": keys.raw_events(spec).path},
            "checkName": "null_fraction",
            "partition": NULL_DAY,
        }
        [execution] = view._query(EVALUATION, variables)["assetCheckExecutions"]
        assert execution["status"] == "FAILED" and execution["evaluation"]["severity"] == "WARN"
        assert execution["evaluation"]["description"].startswith(f"partition {NULL_DAY}: column 'plan' is 33.")

    # `ml-platform summary` (and the demo's, with the run's check counts): warnings apart from failures
    text = summary(spec.name, instance, run.checks)
    assert "gates: no day's latest evaluation failed" in text
    assert "warnings (latest evaluation per day; these days went through):" in text
    assert (
        f"churn/raw_events:null_fraction: 1 day(s) warned ({NULL_DAY}); latest: partition {NULL_DAY}: column "
        "'plan' is 33." in text
    )
    assert (
        f"churn/raw_events:value_ranges: 1 day(s) warned ({NEW_PLAN_DAY}); latest: partition {NEW_PLAN_DAY}: " in text
    )
    assert "2 warned ['raw_events:null_fraction', 'raw_events:value_ranges'], 0 failed" in text

    # the metrics exporter: a warning, not a gate failure
    metrics = {metric.name: metric for metric in PlatformCollector(instance, [spec], defs).collect()}
    assert sample(metrics["ml_platform_check_recent_warnings"], "raw_events", "null_fraction") == 1
    assert sample(metrics["ml_platform_check_recent_failures"], "raw_events", "null_fraction") == 0
    assert sample(metrics["ml_platform_check_recent_warnings"], "raw_events", "value_ranges") == 1
    assert sample(metrics["ml_platform_check_recent_warnings"], "raw_events", "schema") == 0


def test_drift_warnings_count_as_warnings_not_gate_failures(
    trained_copy: Path, churn_spec: UseCaseSpec, dagster_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Drift's gate is a measurement: a drifted day is a WARN evaluation, for `ml-platform predict`, the summary
    and the metrics alike."""
    lake = DataLake(base_path=str(trained_copy / "lake"))
    days = lake.existing_partitions(keys.features(churn_spec))[-2:]  # what `predict --days 2` scores
    for day in days:  # customers suddenly log in ten times as often
        features = lake.read(keys.features(churn_spec), [day])
        lake.write_partition(keys.features(churn_spec), day, features.assign(logins_7d=features["logins_7d"] * 10 + 5))

    assert main(["predict", "churn", "--days", "2"]) == 0
    out = capsys.readouterr().out
    assert f"  2 day(s) warned: drift:psi_within_limit, e.g. partition {days[0]}: PSI above" in out

    instance = dg.DagsterInstance.get()
    text = summary(churn_spec.name, instance)
    assert "gates: no day's latest evaluation failed" in text
    assert (
        f"churn/drift:psi_within_limit: 2 day(s) warned ({', '.join(days)}); latest: partition {days[-1]}: PSI above"
        in text
    )
    metrics = {
        metric.name: metric
        for metric in PlatformCollector(instance, [churn_spec], build_definitions(load_specs())).collect()
    }
    assert sample(metrics["ml_platform_check_recent_warnings"], "drift", "psi_within_limit") == 2
    assert sample(metrics["ml_platform_check_recent_failures"], "drift", "psi_within_limit") == 0
