"""Schedules and sensors through Dagster's test contexts: cursors, run keys, skip reasons, bad landed files."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd
import pytest

from demo.generators.churn import write_landing_files
from ml_platform.definitions import build_definitions, load_specs
from ml_platform.runner import TRAINING_STAGES, materialize_stages
from ml_platform_tests.support.automation import evaluate, landed_days, requested_ranges
from ml_platform_tests.support.fixtures import START, day_keys, landing_dir
from ml_platform_tests.support.webhook import Webhook

REPO = Path(__file__).resolve().parents[2]


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def land_two_runs_of_days(data_dir: Path) -> tuple[dg.Definitions, dg.DagsterInstance, dg.SensorResult]:
    """Days 1-5 and 8-9 of January 2025 landed, and the landed-data sensor's first tick over them."""
    write_landing_files(landing_dir(data_dir), START, 5, 200, seed=1)
    write_landing_files(landing_dir(data_dir), START + dt.timedelta(days=7), 2, 200, seed=2)
    defs = build_definitions(load_specs())
    instance = dg.DagsterInstance.ephemeral()
    return defs, instance, evaluate(defs, "churn_landed_data_sensor", instance, None)


def test_landed_data_sensor_requests_contiguous_ranges_and_reruns_changed_content_only(data_dir: Path) -> None:
    defs, instance, first = land_two_runs_of_days(data_dir)
    assert requested_ranges(first.run_requests) == [("2025-01-01", "2025-01-05"), ("2025-01-08", "2025-01-09")]
    assert all(r.job_name in (None, "churn_daily") for r in first.run_requests)
    no_champion_yet = [dg.AssetKey(["churn", "raw_events"]), dg.AssetKey(["churn", "features"])]
    assert all(r.asset_selection == no_champion_yet for r in first.run_requests), "nothing to score with yet"

    again = evaluate(defs, "churn_landed_data_sensor", instance, first.cursor)
    assert again.run_requests == [] and "no new or changed churn days" in again.skip_message

    changed = landing_dir(data_dir) / "2025-01-09.parquet"
    touched = landing_dir(data_dir) / "2025-01-08.parquet"
    original = changed.read_bytes()
    pd.read_parquet(changed).head(50).to_parquet(changed, index=False)  # a corrected re-upload
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))  # same bytes, new time
    third = evaluate(defs, "churn_landed_data_sensor", instance, first.cursor)
    [request] = third.run_requests
    assert request.partition_key == "2025-01-09"
    assert request.run_key == f"2025-01-09..2025-01-09@{sha256(changed.read_bytes())[:16]}~{sha256(original)[:8]}"
    assert evaluate(defs, "churn_landed_data_sensor", instance, third.cursor).run_requests == []

    changed.write_bytes(original)  # the correction was wrong: back to the first file, which must run again
    [reverted] = evaluate(defs, "churn_landed_data_sensor", instance, third.cursor).run_requests
    assert reverted.run_key.startswith(f"2025-01-09..2025-01-09@{sha256(original)[:16]}~") and reverted.run_key not in (
        request.run_key,
        *(r.run_key for r in first.run_requests),
    )


def test_a_corrected_day_reruns_the_processed_days_whose_feature_windows_contain_it(data_dir: Path) -> None:
    """Features of day D read raw days D-27..D: correcting day 3 reruns it and every processed later day."""
    defs, instance, first = land_two_runs_of_days(data_dir)
    corrected = landing_dir(data_dir) / "2025-01-03.parquet"
    pd.read_parquet(corrected).head(50).to_parquet(corrected, index=False)
    requests = evaluate(defs, "churn_landed_data_sensor", instance, first.cursor).run_requests
    assert requested_ranges(requests) == [("2025-01-03", "2025-01-05"), ("2025-01-08", "2025-01-09")], (
        "days 1-2 do not read day 3"
    )


def test_landed_entries_that_are_no_day_are_reported_once_and_left_alone(data_dir: Path, tmp_path: Path) -> None:
    landing = landing_dir(data_dir)
    write_landing_files(landing, START, 2, 200, seed=1)
    outside = tmp_path / "elsewhere.parquet"
    outside.write_bytes((landing / "2025-01-01.parquet").read_bytes())
    (landing / "2025-01-20.parquet").symlink_to(outside)  # escapes the landing directory
    (landing / "2025-01-21.parquet").mkdir()
    (landing / "notes.txt").write_text("not data")
    (landing / "2025-02-30.parquet").write_bytes(b"x")
    (landing / "2024-12-31.parquet").write_bytes(b"x")  # before the spec's start_date
    (landing / "2099-01-01.parquet").write_bytes(b"x")  # a day that has not happened
    (landing / ".2025-01-03.parquet.uploading").write_bytes(b"x")  # a hidden temporary file: ignored
    today = dt.datetime.now(dt.UTC).date().isoformat()
    (landing / f"{today}.parquet").write_bytes(b"x")  # the day in progress: waits for its partition, no alarm
    before = sorted(p.name for p in landing.iterdir())
    defs = build_definitions(load_specs())
    instance = dg.DagsterInstance.ephemeral()

    with Webhook() as hook, pytest.MonkeyPatch.context() as patch:
        patch.setenv("ML_PLATFORM_ALERT_WEBHOOK", hook.url)
        defs = build_definitions(load_specs())
        first = evaluate(defs, "churn_landed_data_sensor", instance, None)
        second = evaluate(defs, "churn_landed_data_sensor", instance, first.cursor)
    [request] = first.run_requests
    assert (request.tags["dagster/asset_partition_range_start"], request.tags["dagster/asset_partition_range_end"]) == (
        "2025-01-01",
        "2025-01-02",
    )
    [alert] = hook.received  # reported once, not on every tick
    rejected = alert["details"]["rejected"]
    assert alert["event"] == "landing_rejected" and set(rejected) == {
        "2025-01-20.parquet",
        "2025-01-21.parquet",
        "notes.txt",
        "2025-02-30.parquet",
        "2024-12-31.parquet",
        "2099-01-01.parquet",
    }
    assert "outside the landing directory" in rejected["2025-01-20.parquet"]
    assert "not a regular file" in rejected["2025-01-21.parquet"]
    assert "YYYY-MM-DD.parquet" in rejected["notes.txt"] and "not a calendar date" in rejected["2025-02-30.parquet"]
    assert "outside the partitions 2025-01-01.." in rejected["2024-12-31.parquet"]
    assert "outside the partitions" in rejected["2099-01-01.parquet"]
    assert second.run_requests == [] and "2099-01-01.parquet" in second.skip_message
    assert f"{today}.parquet" not in second.skip_message and today not in landed_days(second.cursor, defs)
    assert sorted(p.name for p in landing.iterdir()) == before and outside.exists(), "nothing is deleted"


def test_first_tick_adopts_days_already_in_the_lake_and_runs_only_new_ones(trained_copy: Path, churn_spec) -> None:
    defs = build_definitions(load_specs())
    instance = dg.DagsterInstance.ephemeral()
    first = evaluate(defs, "churn_landed_data_sensor", instance, None)
    assert first.run_requests == [], "a new instance must not reprocess the history already in the lake"

    write_landing_files(landing_dir(trained_copy), dt.date(2025, 3, 6), 1, 1_500, seed=4)
    [request] = evaluate(defs, "churn_landed_data_sensor", instance, first.cursor).run_requests
    assert request.partition_key == "2025-03-06"
    assert request.asset_selection is None  # a champion exists: the whole daily job, raw -> ... -> predictions


def test_new_champion_sensor_rescores_recent_days_once(trained_copy: Path, churn_spec) -> None:
    defs = build_definitions(load_specs())
    instance = dg.DagsterInstance.ephemeral()
    assert not evaluate(defs, "churn_new_champion_sensor", instance, None).run_requests
    refused = materialize_stages(
        defs,
        churn_spec,
        TRAINING_STAGES,
        instance,
        run_config={"ops": {"churn__model": {"config": {"params": {"random_state": 9}}}}},
    )
    assert not refused.success, "not significantly better: no new champion, nothing to rescore"
    assert not evaluate(defs, "churn_new_champion_sensor", instance, None).run_requests

    version = refused.asset_materializations_for_node("churn__model")[0].metadata["mlflow_version"].value
    promoted = defs.get_job_def("churn_promote").execute_in_process(
        run_config={"ops": {"churn__promote_champion": {"config": {"version": version, "reason": "test"}}}},
        instance=instance,
    )
    assert promoted.success
    tick = evaluate(defs, "churn_new_champion_sensor", instance, None)
    [request] = tick.run_requests
    assert request.job_name in (None, "churn_rescore")
    assert request.tags["dagster/asset_partition_range_start"] == "2025-02-27"
    assert request.tags["dagster/asset_partition_range_end"] == "2025-03-05"
    assert evaluate(defs, "churn_new_champion_sensor", instance, tick.cursor).run_requests == []

    # days scored after the change already use the new champion: a fresh cursor (a new UI) rescores nothing,
    # unless one of the recent days was not scored since
    assert materialize_stages(defs, churn_spec, ["predictions"], instance, ["2025-03-05"]).success
    assert len(evaluate(defs, "churn_new_champion_sensor", instance, None).run_requests) == 1
    days = [request.tags["dagster/asset_partition_range_start"], "2025-03-05"]
    assert materialize_stages(
        defs, churn_spec, ["predictions"], instance, [d.isoformat() for d in pd.date_range(*days).date]
    ).success
    quiet = evaluate(defs, "churn_new_champion_sensor", instance, None)
    assert quiet.run_requests == [] and "scored after the latest champion change" in quiet.skip_message


def test_schedules_use_the_spec_timezone_and_cron(tmp_path: Path) -> None:
    defs = build_definitions(load_specs())
    daily = defs.get_schedule_def("churn_daily_schedule")
    when = dt.datetime(2025, 2, 10, 1, 30, tzinfo=dt.UTC)
    with dg.instance_for_test() as instance:
        result = daily.evaluate_tick(dg.build_schedule_context(instance=instance, scheduled_execution_time=when))
    assert [r.partition_key for r in result.run_requests] == ["2025-02-09"]
    assert (daily.cron_schedule, daily.execution_timezone) == ("30 1 * * *", "UTC")
    retrain = defs.get_schedule_def("churn_retrain_schedule")
    assert (retrain.cron_schedule, retrain.execution_timezone, retrain.job_name) == (
        "0 3 * * 1",
        "UTC",
        "churn_training",
    )
    assert (
        defs.get_schedule_def("fraud_retrain_schedule").cron_schedule == "0 2 * * 1"
    )  # the fraud spec retrains Mondays 02:00

    berlin = next(s for s in load_specs() if s.name == "churn")
    berlin = berlin.model_copy(update={"schedule": berlin.schedule.model_copy(update={"timezone": "Europe/Berlin"})})
    schedule = build_definitions([berlin]).get_schedule_def("churn_daily_schedule")
    assert schedule.execution_timezone == "Europe/Berlin"
    local = dt.datetime(2025, 2, 10, 1, 30, tzinfo=ZoneInfo("Europe/Berlin"))  # 00:30 UTC: still Feb 10 in Berlin
    with dg.instance_for_test() as instance:
        result = schedule.evaluate_tick(dg.build_schedule_context(instance=instance, scheduled_execution_time=local))
    assert [r.partition_key for r in result.run_requests] == ["2025-02-09"]


def test_dagster_definitions_validate_on_the_workspace(tmp_path: Path) -> None:
    dagster = Path(sys.executable).parent / "dagster"
    environment = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    (tmp_path / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    completed = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        env=environment,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "ml_platform" in completed.stdout + completed.stderr


def test_features_follow_raw_events_but_never_past_a_failed_blocking_gate(data_dir: Path) -> None:
    """Declarative automation: a re-ingested newest raw day refreshes its features, unless that day's newest
    data was refused by a blocking gate (the lake still holds its last good file)."""
    landing = landing_dir(data_dir)
    write_landing_files(landing, START, 10, 200, seed=1)
    spec = next(s for s in load_specs() if s.name == "churn")
    defs = build_definitions(load_specs())
    instance = dg.DagsterInstance.ephemeral()
    features, newest = dg.AssetKey(["churn", "features"]), "2025-01-10"
    at = dt.datetime(2025, 1, 11, 0, 30, tzinfo=dt.UTC)  # the newest complete partition is 2025-01-10
    cursor = None

    def tick() -> set[str]:
        nonlocal cursor
        result = dg.evaluate_automation_conditions(defs, instance, evaluation_time=at, cursor=cursor)
        cursor = result.cursor
        return set(result.get_requested_partitions(features))

    def reupload(day: str, frame: pd.DataFrame) -> bool:
        frame.to_parquet(landing / f"{day}.parquet", index=False)
        return materialize_stages(defs, spec, ["raw_events"], instance, [day]).success

    assert materialize_stages(defs, spec, ["raw_events", "features"], instance, day_keys(START, 10)).success
    assert tick() == set(), "raw and features updated together: nothing to follow"

    good_day_10 = pd.read_parquet(landing / f"{newest}.parquet")
    assert reupload(newest, good_day_10.iloc[:-5])
    assert tick() == {newest}, "a re-ingested raw day refreshes its features"
    assert materialize_stages(defs, spec, ["features"], instance, [newest]).success
    assert tick() == set()

    assert not reupload(newest, good_day_10.drop(columns=["plan"])), "the schema gate refuses the new file"
    assert tick() == set(), "the day's latest blocking gate failed: features wait"

    assert reupload(newest, good_day_10)
    assert tick() == {newest}
