"""End to end through the real UI path: webserver + daemon, the UI's launchPartitionBackfill mutation.

One `dagster-webserver` + `dagster-daemon` pair on a fresh DAGSTER_HOME; two asset backfills of
churn/raw_events + churn/features launched exactly as the UI's "Materialize selected > Launch
backfill" does from the asset graph (pure asset backfills): the latest 16 days, and 20 historical
days with one bad day. Both are launched up front so the daemons pick them up together (their backfill loop
every BACKFILL_LOOP_S, not Dagster's 30 s: support/backfill_daemon.py).
Each test checks what the daemon made of one: a single run, every good partition materialized, every
partitioned gate evaluated per partition, the bad day and the days that depend on it failed and
counted as failed by the backfill, the day files in the lake.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from demo.generators.churn import write_landing_files
from ml_platform.assets import keys
from ml_platform.automation.runs import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from ml_platform.dagster_internals import AssetCheckExecutionRecordStatus
from ml_platform.factory import daily_partitions
from ml_platform.spec import UseCaseSpec
from ml_platform_tests.support.graphql import (
    asset_check_names,
    backfill_run_ids,
    get_backfill_targets,
    graphql,
    launch_partition_backfill,
    wait_for_backfill,
)
from ml_platform_tests.support.servers import DagsterServers, dagster_servers, open_instance, prepare_dagster_home

pytestmark = pytest.mark.slow

DAYS = 16
EVENTS_PER_DAY = 800
# The backfill daemon sleeps between iterations: pickup and completion each cost up to one loop.
BACKFILL_LOOP_S = 3
BACKFILL_TIMEOUT_S = 240
BAD_INDEX = 15  # the historical range's bad day: it and the feature days after it in the range fail, nothing else


def _day_range(first: dt.date, count: int) -> list[str]:
    return [(first + dt.timedelta(days=i)).isoformat() for i in range(count)]


@dataclass
class Backfill:
    """A webserver + daemon pair on a data dir of its own, and the backfill a user launched there."""

    servers: DagsterServers
    data: Path
    days: list[str]
    backfill_id: str
    targets: dict[str, dict[str, Any]]


@dataclass
class Backfills:
    recent: Backfill
    historical: Backfill
    last_partition: str


@pytest.fixture(scope="module")
def backfills(tmp_path_factory: pytest.TempPathFactory, churn_spec: UseCaseSpec) -> Iterator[Backfills]:
    """The two backfills a user launches from the asset graph, each on its own data dir (a lake with two
    islands of days would rightly fail `inputs_complete`), launched at once so that both daemons' backfill
    loops run side by side."""
    spec, root = churn_spec, tmp_path_factory.mktemp("ui_backfill")
    last_partition = daily_partitions(spec).get_last_partition_key()
    recent = _day_range(dt.date.fromisoformat(last_partition) - dt.timedelta(days=DAYS - 1), DAYS)
    historical = _day_range(spec.start_date + dt.timedelta(days=30), 20)
    write_landing_files(
        root / "recent" / "landing" / spec.name, dt.date.fromisoformat(recent[0]), DAYS, EVENTS_PER_DAY, seed=11
    )
    # the historical range and the 20 days after it, one day of the range with a repeated event id
    files = write_landing_files(root / "historical" / "landing" / spec.name, spec.start_date, 70, 300, seed=4)
    bad = next(path for path in files if path.stem == historical[BAD_INDEX])
    frame = pd.read_parquet(bad)
    frame.loc[5, "event_id"] = frame.loc[4, "event_id"]
    frame.to_parquet(bad, index=False)
    selection = [keys.raw_events(spec), keys.features(spec)]
    launched = {}
    with contextlib.ExitStack() as stack:
        for name, days in (("recent", recent), ("historical", historical)):
            data = root / name
            servers = stack.enter_context(
                dagster_servers(
                    prepare_dagster_home(root / f"{name}_home"),
                    {"ML_PLATFORM_DATA_DIR": str(data)},
                    backfill_loop_s=BACKFILL_LOOP_S,
                )
            )
            backfill_id = launch_partition_backfill(servers.url, selection, days)
            launched[name] = Backfill(
                servers, data, days, backfill_id, get_backfill_targets(servers.url, backfill_id, selection)
            )
        yield Backfills(recent=launched["recent"], historical=launched["historical"], last_partition=last_partition)


def _materialized_by_run(instance: dg.DagsterInstance, run_id: str, key: dg.AssetKey) -> set[str]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    return {
        r.event_log_entry.dagster_event.partition for r in records if r.event_log_entry.dagster_event.asset_key == key
    }


def test_ui_asset_backfill_runs_once_and_gates_every_partition(backfills: Backfills, churn_spec: UseCaseSpec) -> None:
    """The common UI backfill: the latest 16 days (up to the last partition), raw_events + features."""
    spec, launched = churn_spec, backfills.recent
    servers, days, backfill_id, data, home = (
        launched.servers,
        launched.days,
        launched.backfill_id,
        launched.data,
        launched.servers.dagster_home,
    )
    landing = data / "landing" / spec.name
    raw_key, features_key, predictions_key = keys.raw_events(spec), keys.features(spec), keys.predictions(spec)
    # The partitioned gates as the code location defines them (landed, schema, ..., inputs_complete, ...).
    checks = {key: asset_check_names(servers.url, key) for key in (raw_key, features_key)}
    launched = time.monotonic()
    backfill = wait_for_backfill(servers.url, backfill_id, timeout=BACKFILL_TIMEOUT_S, alive=servers.assert_alive)
    took = time.monotonic() - launched
    tagged_run_ids = backfill_run_ids(servers.url, backfill_id)
    server_logs = servers.logs()
    if daily_partitions(spec).get_last_partition_key() != backfills.last_partition:
        pytest.skip("a new daily partition appeared (UTC midnight) while the backfill ran; its targets moved")

    context = f"backfill {backfill_id} after {took:.1f}s: {backfill}\n{server_logs}"
    assert backfill["status"] == "COMPLETED_SUCCESS", context
    assert backfill["isAssetBackfill"], context
    assert sorted(tuple(k["path"]) for k in backfill["assetSelection"]) == sorted(
        [tuple(raw_key.path), tuple(features_key.path)]
    ), context
    # BackfillPolicy.single_run() on both assets: the daemon groups all 16 days of both into one run.
    assert len(backfill["runs"]) == 1, context
    assert tagged_run_ids == [backfill["runs"][0]["runId"]], context
    run_id = tagged_run_ids[0]

    with open_instance(home) as instance:
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS, context
        assert run.tags["dagster/backfill"] == backfill_id
        assert (run.tags[ASSET_PARTITION_RANGE_START_TAG], run.tags[ASSET_PARTITION_RANGE_END_TAG]) == (
            days[0],
            days[-1],
        )
        assert set(run.asset_selection or ()) == {raw_key, features_key}

        # Every partition recorded as materialized by that run, for both assets, and nothing downstream.
        assert _materialized_by_run(instance, run_id, raw_key) == set(days)
        assert _materialized_by_run(instance, run_id, features_key) == set(days)
        assert instance.get_materialized_partitions(predictions_key) == set()

        # Every partitioned gate evaluated once per partition in that run, and passed.
        evaluations: dict[tuple[dg.AssetKey, str, str | None], list[bool]] = defaultdict(list)
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            evaluation = entry.dagster_event.event_specific_data
            evaluations[(evaluation.asset_key, evaluation.check_name, evaluation.partition)].append(evaluation.passed)
        assert {"landed", "schema", "timestamps_in_partition"} <= set(checks[raw_key]), checks
        assert {"inputs_complete", "feature_schema"} <= set(checks[features_key]), checks
        expected = {(key, check, day) for key, names in checks.items() for check in names for day in days}
        assert set(evaluations) == expected, sorted(set(evaluations) ^ expected)[:10]
        failed = sorted(
            (key.to_user_string(), check, day) for (key, check, day), results in evaluations.items() if not all(results)
        )
        assert not failed, failed
        assert all(len(results) == 1 for results in evaluations.values())

        # The same, as the UI reads it: per-partition check execution records in the check history.
        for asset_key, names in checks.items():
            for check in names:
                history = instance.event_log_storage.get_asset_check_execution_history(
                    dg.AssetCheckKey(asset_key, check), limit=10 * DAYS
                )
                by_partition = {record.partition: record.status for record in history if record.run_id == run_id}
                assert by_partition == dict.fromkeys(days, AssetCheckExecutionRecordStatus.SUCCEEDED), (
                    f"{asset_key.to_user_string()}:{check} {by_partition}"
                )

    # The day files are in the lake; raw days hold exactly the landed rows.
    lake = data / "lake" / spec.name
    for day in days:
        raw_file, features_file = lake / "raw_events" / f"{day}.parquet", lake / "features" / f"{day}.parquet"
        assert raw_file.is_file() and features_file.is_file(), day
        assert len(pd.read_parquet(raw_file)) == len(pd.read_parquet(landing / f"{day}.parquet")) > 0, day
        features = pd.read_parquet(features_file)
        assert len(features) > 0 and set(features["day"]) == {day}, day
    assert not (lake / "predictions").exists()


def test_ui_asset_backfill_of_a_historical_range_fails_only_the_bad_day_and_what_depends_on_it(
    backfills: Backfills, churn_spec: UseCaseSpec
) -> None:
    """The tutorial's step 4 on a past range: 20 days of January 2025 selected for raw_events + features in
    the asset graph, with data landed for them and the 20 days after, one of them bad. One run, exactly the
    selected days; the bad raw day and the feature days whose window holds it fail, every other day of the
    range is materialized by the same run, and the backfill reads as failed with those counts."""
    spec, launched = churn_spec, backfills.historical
    servers, days, targets = launched.servers, launched.days, launched.targets
    raw_key, features_key = keys.raw_events(spec), keys.features(spec)
    bad_day, blocked = days[BAD_INDEX], days[BAD_INDEX:]  # the window reaches past the range's end
    backfill = wait_for_backfill(
        servers.url, launched.backfill_id, timeout=BACKFILL_TIMEOUT_S, alive=servers.assert_alive
    )
    server_logs = servers.logs()
    context = f"backfill {launched.backfill_id}: {backfill}\n{server_logs}"
    assert targets[raw_key.to_user_string()]["ranges"] == [(days[0], days[-1])], targets
    assert targets[features_key.to_user_string()]["ranges"] == [(days[0], days[-1])], targets
    assert backfill["status"] == "COMPLETED_FAILED", context
    assert len(backfill["runs"]) == 1, context
    counts = {
        "/".join(status["assetKey"]["path"]): status
        for status in backfill["assetBackfillData"]["assetBackfillStatuses"]
    }
    expected = {raw_key: (len(days) - 1, 1), features_key: (len(days) - len(blocked), len(blocked))}
    for key, (materialized, failed) in expected.items():
        status = counts[key.to_user_string()]
        assert (
            status["numPartitionsTargeted"],
            status["numPartitionsMaterialized"],
            status["numPartitionsFailed"],
        ) == (len(days), materialized, failed), status
    run_id = backfill["runs"][0]["runId"]
    with servers.instance() as instance:
        assert _materialized_by_run(instance, run_id, raw_key) == set(days) - {bad_day}
        assert _materialized_by_run(instance, run_id, features_key) == set(days) - set(blocked)
        failed = {
            (e.dagster_event.event_specific_data.check_name, e.dagster_event.event_specific_data.partition)
            for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
            if not e.dagster_event.event_specific_data.passed
        }
        assert failed == {("unique_event_ids", bad_day), *(("inputs_complete", day) for day in blocked)}, failed
    assert "emitted no result" not in server_logs


def test_the_ui_serves_the_lineage_and_descriptions_of_every_use_case(backfills: Backfills) -> None:
    """What a user browsing the asset graph sees, read from the webserver's GraphQL API."""
    query = """
    query Lineage {
      assetNodes {
        assetKey { path } groupName description kinds isPartitioned
        dependencyKeys { path }
        owners { ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
        metadataEntries { label }
      }
    }
    """
    nodes = {
        "/".join(node["assetKey"]["path"]): node for node in graphql(backfills.recent.servers.url, query)["assetNodes"]
    }
    for use_case in ("churn", "fraud", "prices", "news"):
        parents = {
            name.split("/", 1)[1]: {"/".join(d["path"]) for d in node["dependencyKeys"]}
            for name, node in nodes.items()
            if name.startswith(f"{use_case}/")
        }
        assert parents["features"] == {f"{use_case}/raw_events"}
        assert parents["training_set"] == {f"{use_case}/raw_events", f"{use_case}/features"}
        assert parents["model"] == {f"{use_case}/training_set"}
        assert parents["champion"] == {f"{use_case}/model"}
        assert parents["predictions"] == {f"{use_case}/features", f"{use_case}/champion"}
        assert parents["drift"] == {f"{use_case}/features", f"{use_case}/predictions", f"{use_case}/champion"}
        if use_case == "news":  # the daily report of a multiclass use case
            assert parents["report"] == {f"{use_case}/features", f"{use_case}/predictions"}
        assert parents["performance"] == {f"{use_case}/predictions", f"{use_case}/raw_events"}  # labels: later raw days
        assert parents["shadow_predictions"] == {f"{use_case}/features"}
        for stage in parents:
            node = nodes[f"{use_case}/{stage}"]
            assert node["groupName"] == use_case and node["description"] and node["kinds"] and node["owners"], node
            assert node["isPartitioned"] == (
                stage
                in (
                    "raw_events",
                    "features",
                    "predictions",
                    "drift",
                    "report",
                    "performance",
                    "shadow_predictions",
                    "shadow_comparison",
                )
            )
        for stage in ("raw_events", "features", "predictions"):
            assert "dagster/column_schema" in {
                entry["label"] for entry in nodes[f"{use_case}/{stage}"]["metadataEntries"]
            }
