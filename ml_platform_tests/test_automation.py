"""Schedules and sensors: new data runs as ranges, a new champion rescores, the schedule takes yesterday."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd

from ml_platform.definitions import build_definitions, load_specs
from ml_platform.runner import TRAINING_STAGES, materialize_stages
from ml_platform.use_cases.churn_data import write_landing_files
from ml_platform_tests.conftest import START, landing_dir

REPO = Path(__file__).resolve().parents[1]


def evaluate(defs: dg.Definitions, name: str, instance: dg.DagsterInstance, cursor: str | None):  # noqa: ANN201
    sensor = defs.get_sensor_def(name)
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=dict(defs.resources or {}), definitions=defs
    ) as context:
        return sensor.evaluate_tick(context)


def test_landed_data_sensor_requests_contiguous_ranges_and_reruns_changed_days(data_dir: Path) -> None:
    write_landing_files(landing_dir(data_dir), START, 5, 200, seed=1)
    write_landing_files(landing_dir(data_dir), START + dt.timedelta(days=7), 2, 200, seed=2)
    defs = build_definitions(load_specs())
    instance = dg.DagsterInstance.ephemeral()

    first = evaluate(defs, "churn_landed_data_sensor", instance, None)
    ranges = sorted((r.tags.get("dagster/asset_partition_range_start"), r.tags.get("dagster/asset_partition_range_end"))
                    for r in first.run_requests)
    assert ranges == [("2025-01-01", "2025-01-05"), ("2025-01-08", "2025-01-09")]
    assert all(r.job_name in (None, "churn_daily") for r in first.run_requests)
    no_champion_yet = [dg.AssetKey(["churn", "raw_events"]), dg.AssetKey(["churn", "features"])]
    assert all(r.asset_selection == no_champion_yet for r in first.run_requests), "nothing to score with yet"

    assert evaluate(defs, "churn_landed_data_sensor", instance, first.cursor).run_requests == []

    changed = landing_dir(data_dir) / "2025-01-03.parquet"
    pd.read_parquet(changed).head(50).to_parquet(changed, index=False)
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    third = evaluate(defs, "churn_landed_data_sensor", instance, first.cursor)
    assert [r.partition_key for r in third.run_requests] == ["2025-01-03"]


def test_landed_data_sensor_scores_new_days_once_a_champion_exists(trained_copy: Path, churn_spec) -> None:  # noqa: ANN001
    defs = build_definitions(load_specs())
    [request] = evaluate(defs, "churn_landed_data_sensor", dg.DagsterInstance.ephemeral(), None).run_requests
    assert request.asset_selection is None  # the whole daily job: raw -> features -> predictions -> drift
    assert request.tags["dagster/asset_partition_range_end"] == "2025-03-05"


def test_new_champion_sensor_rescores_recent_days_once(trained_copy: Path, churn_spec) -> None:  # noqa: ANN001
    defs = build_definitions(load_specs())
    instance = dg.DagsterInstance.ephemeral()
    assert not evaluate(defs, "churn_new_champion_sensor", instance, None).run_requests
    assert materialize_stages(defs, churn_spec, TRAINING_STAGES, instance).success

    tick = evaluate(defs, "churn_new_champion_sensor", instance, None)
    [request] = tick.run_requests
    assert request.tags["dagster/asset_partition_range_start"] == "2025-02-27"
    assert request.tags["dagster/asset_partition_range_end"] == "2025-03-05"
    assert evaluate(defs, "churn_new_champion_sensor", instance, tick.cursor).run_requests == []


def test_daily_schedule_targets_yesterday_and_retrain_is_weekly() -> None:
    defs = build_definitions(load_specs())
    daily = defs.get_schedule_def("churn_daily_schedule")
    when = dt.datetime(2025, 2, 10, 1, 30, tzinfo=dt.timezone.utc)
    with dg.instance_for_test() as instance:
        result = daily.evaluate_tick(dg.build_schedule_context(instance=instance, scheduled_execution_time=when))
    assert [r.partition_key for r in result.run_requests] == ["2025-02-09"]
    assert daily.cron_schedule == "30 1 * * *"
    assert defs.get_schedule_def("churn_retrain_schedule").cron_schedule == "0 3 * * 1"


def test_dagster_definitions_validate_on_the_workspace(tmp_path: Path) -> None:
    dagster = Path(sys.executable).parent / "dagster"
    environment = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    (tmp_path / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    completed = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO, capture_output=True, text=True, timeout=180, env=environment,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "ml_platform" in completed.stdout + completed.stderr
