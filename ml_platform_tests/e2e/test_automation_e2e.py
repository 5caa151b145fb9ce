"""Automation end to end: real `dagster-webserver` + `dagster-daemon` drive the automation.

One scenario on a private copy of the trained churn data dir (64 days, champion version 1) and a
fresh DAGSTER_HOME, the code location loading churn alone, with every sensor RUNNING at a 2 s interval
and alerts going to a loopback webhook:

0. in-process, before the servers: a challenger (version 2) is trained and refused by its gates;
1. a file for a new day lands -> the landed-data sensor runs that day, predictions included
   (and nothing else: its first tick adopted the 64 days already in the lake);
2. drift is injected into the lake features of the newest two days;
3. `ml-platform promote churn 2` -> the new-champion sensor rescores the last 7 days with version 2
   (and a `champion_promoted` alert is posted);
4. that rescore measures the drift -> the drift sensor launches exactly one retraining run, and
   its later ticks launch nothing more;
5. a file missing a required column lands -> its run fails at the raw gate -> an alert naming the
   run id, with a link to the run in this webserver, reaches the webhook;
6. once the servers are stopped, none of their processes (code servers, run workers) is left.

Every wait polls the instance, the lake, the sensor ticks or the webhook, and fails with the
servers' log tails.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import psutil
import pytest

from demo.generators.churn import write_landing_files
from ml_platform.assets import keys
from ml_platform.definitions import build_definitions, load_specs
from ml_platform.io.parquet_lake import DataLake
from ml_platform.resources import default_resources
from ml_platform.resources.mlflow_resource import CHAMPION
from ml_platform.runner import TRAINING_STAGES, materialize_stages
from ml_platform.spec import UseCaseSpec
from ml_platform_tests.support import servers as servers_module
from ml_platform_tests.support.fixtures import landing_dir
from ml_platform_tests.support.graphql import graphql, wait_for_daemons
from ml_platform_tests.support.servers import (
    BIN,
    REPO_ROOT,
    DagsterServers,
    _group_members,
    dagster_servers,
    prepare_dagster_home,
    wait_until,
)
from ml_platform_tests.support.webhook import Webhook

pytestmark = pytest.mark.slow

LOCATION = "ml_platform"
SENSOR_INTERVAL_S = 2
NEW_DAY = "2025-03-06"
BAD_DAY = "2025-03-07"
RESCORED_DAYS = [(dt.date(2025, 2, 28) + dt.timedelta(days=i)).isoformat() for i in range(7)]  # 02-28..03-06
DRIFTED_DAYS = ["2025-03-05", NEW_DAY]
LANDED_SENSOR = "churn_landed_data_sensor"
CHAMPION_SENSOR = "churn_new_champion_sensor"
DRIFT_SENSOR = "churn_drift_retrain_sensor"
SENSOR_NAME_TAG = "dagster/sensor_name"
WAIT_S = 240
# Ticks of the drift sensor, after it launched the retraining, that must launch nothing more.
QUIET_DRIFT_TICKS = 4

SENSOR_TICKS_QUERY = """
query SensorTicks($selector: SensorSelector!, $limit: Int) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor {
      sensorState {
        status
        ticks(limit: $limit) { tickId status timestamp skipReason runIds error { message } }
      }
    }
    ... on PythonError { message stack }
    ... on SensorNotFoundError { message }
  }
}
"""


# --------------------------------------------------------------------------- helpers


def sensor_ticks(servers: DagsterServers, sensor: str, limit: int = 100) -> list[dict[str, Any]]:
    """The sensor's ticks as its page in the UI lists them, oldest first."""
    selector = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__", "sensorName": sensor}
    result = graphql(servers.url, SENSOR_TICKS_QUERY, {"selector": selector, "limit": limit}, "SensorTicks")[
        "sensorOrError"
    ]
    assert result["__typename"] == "Sensor", result
    assert result["sensorState"]["status"] == "RUNNING", f"{sensor} is not running: {result['sensorState']}"
    return sorted(result["sensorState"]["ticks"], key=lambda tick: tick["timestamp"])


RANGE_END = "dagster/asset_partition_range_end"


def describe(instance: dg.DagsterInstance, webhook: Webhook) -> str:
    """What happened so far, for failure messages: every run and every alert received."""
    runs = [
        f"  {run.run_id[:8]} {run.job_name} {run.status.value} sensor={run.tags.get(SENSOR_NAME_TAG)} "
        f"partition={run.tags.get('dagster/partition') or run.tags.get('dagster/asset_partition_range_start', '')}"
        f"{'..' + run.tags.get('dagster/asset_partition_range_end', '') if RANGE_END in run.tags else ''}"
        f" trigger={run.tags.get('ml_platform/trigger')}"
        for run in reversed(instance.get_runs())
    ]
    alerts = [
        f"  {alert['event']}: {alert['title']} run={alert['details'].get('run_id')}" for alert in webhook.received
    ]
    return "runs:\n" + "\n".join(runs or ["  (none)"]) + "\nalerts:\n" + "\n".join(alerts or ["  (none)"])


def land(landing: Path, staging: Path, day: str, frame: pd.DataFrame) -> Path:
    """Write the day's file next to the landing dir and move it in whole, as an uploader would."""
    staging.mkdir(parents=True, exist_ok=True)
    staged = staging / f"{day}.parquet"
    frame.to_parquet(staged, index=False)
    target = landing / f"{day}.parquet"
    os.replace(staged, target)
    return target


def generated_day(staging: Path, day: str, seed: int) -> pd.DataFrame:
    directory = staging / f"generated-{day}"
    [path] = write_landing_files(directory, dt.date.fromisoformat(day), 1, 1_500, seed=seed)
    return pd.read_parquet(path)


def finished(run: dg.DagsterRun | None) -> dg.DagsterRun | None:
    return run if run is not None and run.is_finished else None


# --------------------------------------------------------------------------- the scenario


def test_sensors_land_rescore_retrain_and_alert_through_real_webserver_and_daemon(
    trained_copy: Path, churn_spec: UseCaseSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = churn_spec
    monkeypatch.delenv("ML_PLATFORM_ALERT_WEBHOOK", raising=False)  # step 0 pages no one
    lake = DataLake(base_path=str(trained_copy / "lake"))
    mlflow = default_resources()["mlflow"]  # the copy's MLflow store: its champion alias is the champion
    lake_dir = trained_copy / "lake" / spec.name
    landing = landing_dir(trained_copy)
    staging = tmp_path / "staging"

    # 0. A challenger the gates refuse: registered as version 2, champion stays 1.
    refused = materialize_stages(
        build_definitions(load_specs()),
        spec,
        TRAINING_STAGES,
        dg.DagsterInstance.ephemeral(),
        run_config={"ops": {"churn__model": {"config": {"params": {"random_state": 9}}}}},
    )
    assert not refused.success, "the random_state=9 challenger was expected to be refused by the champion gates"
    challenger = str(refused.asset_materializations_for_node("churn__model")[0].metadata["mlflow_version"].value)
    assert challenger == "2", challenger
    assert str(mlflow.version_by_alias(spec.name, CHAMPION).version) == "1"

    # The alert links need the webserver's URL before the servers start: reserve its port.
    port = servers_module.free_port()
    ui_url = f"http://127.0.0.1:{port}"
    monkeypatch.setattr(servers_module, "free_port", lambda host="127.0.0.1": port)

    home = prepare_dagster_home(tmp_path / "dagster_home")
    seen_pids: set[int] = set()
    with Webhook() as webhook:
        env = {
            "ML_PLATFORM_DATA_DIR": str(trained_copy),
            # churn alone: the other use cases' sensors would tick every 2 s too, on the same 2 cores
            "ML_PLATFORM_SHIPPED_USE_CASES": "churn",
            "ML_PLATFORM_AUTOMATION": "running",
            "ML_PLATFORM_SENSOR_INTERVAL": str(SENSOR_INTERVAL_S),
            "ML_PLATFORM_ALERT_WEBHOOK": webhook.url,
            "ML_PLATFORM_UI_URL": ui_url,
        }
        with dagster_servers(home, env) as servers, servers.instance() as instance:
            assert servers.url == ui_url
            group_ids = servers.process_groups
            wait_for_daemons(servers.url, alive=servers.assert_alive)

            def context() -> str:
                return describe(instance, webhook)

            def remember_processes() -> None:
                seen_pids.update(process.pid for process in servers.processes())

            # 1. The landed-data sensor's first tick adopts the 64 days in the lake: nothing runs ...
            first_tick = wait_until(
                lambda: next((t for t in sensor_ticks(servers, LANDED_SENSOR) if t["status"] != "STARTED"), None),
                servers,
                f"the first tick of {LANDED_SENSOR}",
                context,
            )
            assert first_tick["status"] == "SKIPPED" and not first_tick["runIds"], first_tick
            assert instance.get_runs(filters=dg.RunsFilter(tags={SENSOR_NAME_TAG: LANDED_SENSOR})) == []

            # ... and a file for a new day is run through raw -> features -> predictions (-> drift).
            land(landing, staging, NEW_DAY, generated_day(staging, NEW_DAY, seed=4))
            predictions_key = keys.predictions(spec)
            wait_until(
                lambda: NEW_DAY in instance.get_materialized_partitions(predictions_key),
                servers,
                f"{NEW_DAY} predictions to be materialized after its file landed",
                context,
            )
            [materialization] = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=predictions_key, asset_partitions=[NEW_DAY]), limit=10
            ).records
            landed_run = instance.get_run_by_id(materialization.run_id)
            assert landed_run.tags.get(SENSOR_NAME_TAG) == LANDED_SENSOR, landed_run.tags
            assert landed_run.job_name == "churn_daily" and landed_run.tags["dagster/partition"] == NEW_DAY
            assert landed_run.tags["dagster/run_key"].startswith(f"{NEW_DAY}..{NEW_DAY}@"), landed_run.tags
            wait_until(
                lambda: finished(instance.get_run_by_id(landed_run.run_id)),
                servers,
                f"the landed run {landed_run.run_id} to finish",
                context,
            )
            assert instance.get_run_by_id(landed_run.run_id).status == dg.DagsterRunStatus.SUCCESS, context()
            landed_runs = instance.get_runs(filters=dg.RunsFilter(tags={SENSOR_NAME_TAG: LANDED_SENSOR}))
            assert [run.run_id for run in landed_runs] == [landed_run.run_id], context()
            assert instance.get_materialized_partitions(predictions_key) == {NEW_DAY}, "only the new day ran"
            scored = pd.read_parquet(lake_dir / "predictions" / f"{NEW_DAY}.parquet")
            assert len(scored) > 0 and set(scored["model_version"]) == {"1"}
            assert (lake_dir / "drift" / f"{NEW_DAY}.parquet").is_file()

            # 2. Customers of the newest two days suddenly log in ten times as often.
            for day in DRIFTED_DAYS:
                features = lake.read(keys.features(spec), [day])
                lake.write_partition(
                    keys.features(spec), day, features.assign(logins_7d=features["logins_7d"] * 10 + 5)
                )

            # 3. Promote the refused challenger from the command line, on the servers' instance.
            promoted = subprocess.run(
                [str(BIN / "ml-platform"), "promote", spec.name, challenger, "--reason", "e2e"],
                env=servers.env,
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert promoted.returncode == 0, f"promote failed:\n{promoted.stdout}\n{promoted.stderr}"
            assert str(mlflow.version_by_alias(spec.name, CHAMPION).version) == challenger
            [promotion_alert] = [
                alert
                for alert in webhook.received
                if alert["event"] == "champion_promoted" and alert["details"].get("action") == "forced_promotion"
            ]
            assert promotion_alert["details"]["champion"] == challenger
            assert promotion_alert["details"]["previous"] == "1"
            assert promotion_alert["details"]["reason"] == "e2e"

            rescore = wait_until(
                lambda: finished(
                    next(
                        iter(
                            instance.get_runs(
                                filters=dg.RunsFilter(
                                    job_name="churn_rescore", tags={SENSOR_NAME_TAG: CHAMPION_SENSOR}
                                ),
                                limit=1,
                            )
                        ),
                        None,
                    )
                ),
                servers,
                f"the rescore run launched by {CHAMPION_SENSOR} to finish",
                context,
            )
            assert rescore.status == dg.DagsterRunStatus.SUCCESS, context()
            assert (
                rescore.tags["dagster/asset_partition_range_start"],
                rescore.tags["dagster/asset_partition_range_end"],
            ) == (RESCORED_DAYS[0], RESCORED_DAYS[-1])
            versions = {
                day: set(pd.read_parquet(lake_dir / "predictions" / f"{day}.parquet")["model_version"])
                for day in RESCORED_DAYS
            }
            assert versions == {key: {challenger} for key in RESCORED_DAYS}, versions
            assert not (lake_dir / "predictions" / "2025-02-27.parquet").exists() or set(
                pd.read_parquet(lake_dir / "predictions" / "2025-02-27.parquet")["model_version"]
            ) == {"1"}, "only the last 7 days are rescored"
            assert {*RESCORED_DAYS} <= instance.get_materialized_partitions(predictions_key)

            # 4. The rescore measured the drift: exactly one retraining, tagged as drift-triggered ...
            drift_runs_filter = dg.RunsFilter(job_name="churn_training", tags={"ml_platform/trigger": "drift"})
            [drift_run] = wait_until(
                lambda: instance.get_runs(filters=drift_runs_filter),
                servers,
                f"{DRIFT_SENSOR} to launch a retraining run",
                context,
            )
            assert drift_run.tags[SENSOR_NAME_TAG] == DRIFT_SENSOR
            assert drift_run.tags["ml_platform/drift_days"] == f"{DRIFTED_DAYS[0]}..{DRIFTED_DAYS[-1]}"
            launched_at = instance.get_run_record_by_id(drift_run.run_id).create_timestamp.timestamp()
            remember_processes()

            # ... and none more on the sensor's following ticks (the drift episode is still going on).
            def quiet_ticks() -> list[dict[str, Any]]:
                later = [
                    t
                    for t in sensor_ticks(servers, DRIFT_SENSOR)
                    if t["timestamp"] > launched_at and t["status"] != "STARTED" and drift_run.run_id not in t["runIds"]
                ]
                return later if len(later) >= QUIET_DRIFT_TICKS else []

            later_ticks = wait_until(
                quiet_ticks, servers, f"{QUIET_DRIFT_TICKS} more ticks of {DRIFT_SENSOR}", context, timeout=120
            )
            assert all(t["status"] == "SKIPPED" and not t["runIds"] for t in later_ticks), later_ticks
            assert [run.run_id for run in instance.get_runs(filters=drift_runs_filter)] == [drift_run.run_id], context()
            drift_ticks_with_runs = [t for t in sensor_ticks(servers, DRIFT_SENSOR) if t["runIds"]]
            assert [t["runIds"] for t in drift_ticks_with_runs] == [[drift_run.run_id]], drift_ticks_with_runs

            # 5. A file that lacks a required column: its run fails at the raw gate and is alerted.
            good = generated_day(staging, BAD_DAY, seed=5)
            land(landing, staging, BAD_DAY, good.drop(columns=["plan"]))
            failed_run = wait_until(
                lambda: finished(
                    next(
                        iter(
                            instance.get_runs(
                                filters=dg.RunsFilter(
                                    job_name="churn_daily",
                                    tags={SENSOR_NAME_TAG: LANDED_SENSOR, "dagster/partition": BAD_DAY},
                                ),
                                limit=1,
                            )
                        ),
                        None,
                    )
                ),
                servers,
                f"the landed run of the bad {BAD_DAY} file to finish",
                context,
            )
            remember_processes()
            assert failed_run.status == dg.DagsterRunStatus.FAILURE, context()
            assert BAD_DAY not in instance.get_materialized_partitions(keys.raw_events(spec))
            assert not (lake_dir / "raw_events" / f"{BAD_DAY}.parquet").exists()

            def failure_alert() -> dict[str, Any] | None:
                return next((a for a in webhook.received if a["details"].get("run_id") == failed_run.run_id), None)

            alert = wait_until(failure_alert, servers, f"an alert for the failed run {failed_run.run_id}", context)
            assert alert["event"] == "gate_failed", alert  # bad data, not a broken platform
            assert {(c["asset"], c["check"], c["partition"]) for c in alert["details"]["failed_checks"]} == {
                ("churn/raw_events", "schema", BAD_DAY)
            }, alert  # the cause; its features, predictions and drift failed because of it and are counted
            assert alert["details"]["days_failed_downstream"] == 3, alert
            assert alert["link"] == f"{servers.url}/runs/{failed_run.run_id}", alert
            assert alert["link"].startswith(servers.url)
            assert alert["details"]["job"] == "churn_daily" and alert["details"]["partitions"] == BAD_DAY, alert
            assert failed_run.run_id in alert["text"]
            assert [a for a in webhook.received if a["details"].get("run_id") == failed_run.run_id] == [alert]

            # The drift retraining finishes too, whatever its gates decide, before the servers stop.
            drift_done = wait_until(
                lambda: finished(instance.get_run_by_id(drift_run.run_id)),
                servers,
                f"the drift retraining {drift_run.run_id} to finish",
                context,
            )
            assert drift_done.status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE), context()
            remember_processes()

    # 6. Stopping the servers ended their whole process groups: code servers and run workers included.
    left = [p for pgid in group_ids for p in _group_members(pgid)]
    left += [psutil.Process(pid) for pid in seen_pids if psutil.pid_exists(pid)]
    alive = []
    for process in left:
        try:
            if process.status() != psutil.STATUS_ZOMBIE and os.getpgid(process.pid) in group_ids:
                alive.append(f"{process.pid} {' '.join(process.cmdline())[:200]}")
        except (psutil.Error, ProcessLookupError, OSError):
            continue
    assert not alive, f"processes left behind by the servers: {alive}"
    assert seen_pids, "no server process was ever seen"
