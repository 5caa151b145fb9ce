"""A UI backfill of a use case with `backfill.max_days_per_run` becomes several runs that write what one run writes,
no more of them at once than its `backfill.max_concurrent_runs`.

`churn_split` is the shipped churn spec (same landing files) with `backfill.max_days_per_run: 2` and
`max_concurrent_runs: 1`, loaded from a user spec directory by a real webserver + daemon (the repo's dagster.yaml: its
queued run coordinator); the UI's launchPartitionBackfill of its raw_events + features over 4 days becomes two
runs of two days. Their lake files are byte-identical to churn's, materialized as one range run in process from the
same landing files, and each day's checks have the same outcomes.

The two runs are queued in one daemon iteration and the instance lets four runs through at once, so only the cap
keeps them apart: each run's span from its launch (RUN_STARTING) to its end overlaps the other's not at all, and both
ran in the use case's one lane (`ml_platform/run_coordinator.py`). Two runs prove the cap as well as more would (a third
run only repeated the second), and the backfill daemon looks every BACKFILL_LOOP_S instead of Dagster's 30 s
(support/backfill_daemon.py): the same runs, less idle waiting.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest
import yaml

from demo.generators.churn import write_landing_files
from ml_platform.assets import keys
from ml_platform.definitions import build_definitions
from ml_platform.runner import materialize_stages
from ml_platform.spec import UseCaseSpec, load_spec
from ml_platform_tests.support.graphql import launch_partition_backfill, wait_for_backfill
from ml_platform_tests.support.servers import dagster_servers, open_instance, prepare_dagster_home

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
DAYS, PER_RUN, CAP = 4, 2, 1
BACKFILL_LOOP_S = 3
LANE_TAG = "ml_platform/backfill_lane"
STAGES = ("raw_events", "features")


def _check_outcomes(instance: dg.DagsterInstance, run_ids: list[str]) -> dict[tuple[str, str, str], bool]:
    """(stage, check, day) -> passed, over the runs' check evaluations (each evaluated once)."""
    outcomes: dict[tuple[str, str, str], bool] = {}
    for run_id in run_ids:
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            evaluation = entry.dagster_event.event_specific_data
            key = (evaluation.asset_key.path[-1], evaluation.check_name, evaluation.partition)
            assert key not in outcomes, key
            outcomes[key] = evaluation.passed
    return outcomes


def _spans(instance: dg.DagsterInstance, run_ids: list[str]) -> list[tuple[float, float]]:
    """Each run's span from its launch (RUN_STARTING: out of the queue) to its end."""
    spans = []
    for run_id in run_ids:
        [starting] = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_STARTING)
        record = instance.get_run_record_by_id(run_id)
        assert record is not None and record.end_time is not None, run_id
        spans.append((starting.timestamp, record.end_time))
    return spans


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans], key=lambda e: (e[0], e[1]))
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def test_ui_backfill_split_into_runs_of_two_days_writes_what_one_run_writes(
    churn_spec: UseCaseSpec,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    days = [(churn_spec.start_date + dt.timedelta(days=i)).isoformat() for i in range(DAYS)]
    raw = yaml.safe_load((REPO_ROOT / "ml_platform" / "use_cases" / "churn.yaml").read_text())
    raw.update(name="churn_split", backfill={"max_days_per_run": PER_RUN, "max_concurrent_runs": CAP})
    raw["source"]["directory"] = "landing/churn"
    specs_dir = tmp_path / "specs"
    specs_dir.mkdir()
    (specs_dir / "churn_split.yaml").write_text(yaml.safe_dump(raw))
    split_spec = load_spec(specs_dir / "churn_split.yaml")
    data = tmp_path / "data"
    write_landing_files(data / "landing" / "churn", churn_spec.start_date, DAYS, 300, seed=5)

    home = prepare_dagster_home(tmp_path / "home")
    env = {"ML_PLATFORM_DATA_DIR": str(data), "ML_PLATFORM_SPECS_DIR": str(specs_dir)}
    with dagster_servers(home, env, backfill_loop_s=BACKFILL_LOOP_S) as servers:
        backfill_id = launch_partition_backfill(
            servers.url, [keys.raw_events(split_spec), keys.features(split_spec)], days
        )
        backfill = wait_for_backfill(servers.url, backfill_id, timeout=300, alive=servers.assert_alive)
        logs = servers.logs()
    assert backfill["status"] == "COMPLETED_SUCCESS", f"{backfill}\n{logs}"
    assert len(backfill["runs"]) == DAYS // PER_RUN, backfill

    run_ids = [run["runId"] for run in backfill["runs"]]
    with open_instance(home) as instance:
        split_checks = _check_outcomes(instance, run_ids)
        spans = _spans(instance, run_ids)
        lanes = {instance.get_run_by_id(run_id).tags.get(LANE_TAG) for run_id in run_ids}
        queue = instance.get_concurrency_config().run_queue_config
    assert queue is not None and queue.max_concurrent_runs >= DAYS // PER_RUN  # only the cap keeps the runs apart
    assert lanes == {"churn_split:0"}, lanes
    assert _most_at_once(spans) == CAP, spans
    assert {(stage, day) for stage, _check, day in split_checks} == {(stage, day) for stage in STAGES for day in days}
    assert split_checks[("features", "inputs_complete", days[PER_RUN])] is True  # a window reaching into the first run

    whole = tmp_path / "whole"
    write_landing_files(whole / "landing" / "churn", churn_spec.start_date, DAYS, 300, seed=5)
    monkeypatch.setenv("ML_PLATFORM_DATA_DIR", str(whole))
    instance = dg.DagsterInstance.ephemeral()
    result = materialize_stages(build_definitions([churn_spec]), churn_spec, STAGES, instance, days)
    assert split_checks == _check_outcomes(instance, [result.run_id])
    for stage in STAGES:
        for day in days:
            split = (data / "lake" / "churn_split" / stage / f"{day}.parquet").read_bytes()
            assert split == (whole / "lake" / "churn" / stage / f"{day}.parquet").read_bytes(), f"{stage}/{day}"
