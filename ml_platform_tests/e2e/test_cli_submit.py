"""`ml-platform materialize` submits to a deployed instance's run queue, or runs in-process where no daemon serves one.

Every command is the installed `ml-platform` in its own process, as from a shell, on a DAGSTER_HOME holding the
repo's dagster.yaml (QueuedRunCoordinator). Three days of churn land, the second without a required column: the
run fails that day at the raw gate and stores the other two, whichever way it executes. With a real
`dagster-daemon` (and webserver, support/servers.py) the default and `--url` submit: the run is enqueued and
dequeued by the daemon, launched by the instance's run launcher, and the command prints what the in-process
command prints for the same days, with the same exit code.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from demo.generators.churn import write_landing_files
from ml_platform_tests.support.fixtures import START, day_keys, landing_dir
from ml_platform_tests.support.servers import (
    BIN,
    REPO_ROOT,
    dagster_servers,
    open_instance,
    prepare_dagster_home,
    server_env,
)

COMMAND = ["materialize", "churn", "--stages", "raw_events"]
FIRST, BAD, LAST = day_keys(count=3)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """Three landed churn days; the middle one lacks the required column `plan`."""
    directory = tmp_path / "data"
    files = write_landing_files(landing_dir(directory), START, 3, 300, seed=4)
    pd.read_parquet(files[1]).drop(columns=["plan"]).to_parquet(files[1], index=False)
    return directory


def ml_platform(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "ml-platform"), *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def summary(done: subprocess.CompletedProcess) -> list[str]:
    """What the command reports of the run, from its result line on (run id masked), then its failed days."""
    out = done.stdout.splitlines()
    [start] = [i for i, line in enumerate(out) if re.search(r": (ok|FAILED) \(run \w{8}, ", line)]
    reported = [re.sub(r"\(run \w{8}, ", "(run RUN, ", line) for line in out[start:]]
    # stderr: the command's failed-day lines (an in-process run's Dagster log also writes the step's traceback)
    return reported + [line for line in done.stderr.splitlines() if re.match(r"  \w+ \d{4}-\d\d-\d\d failed: ", line)]


EXPECTED = [
    f"churn: 3 day(s) {FIRST}..{LAST}: FAILED (run RUN, raw_events)",
    "  raw_events: 2 day(s) done, 1 failed",
    f"  raw_events {BAD} failed: schema: partition {BAD}: missing column(s) ['plan']",
]


def test_without_a_daemon_the_command_runs_in_process(data: Path, tmp_path: Path) -> None:
    home = prepare_dagster_home(tmp_path / "home")
    env = server_env(home, {"ML_PLATFORM_DATA_DIR": str(data)})

    done = ml_platform(COMMAND, env)
    assert done.returncode == 1, done.stderr
    assert summary(done) == EXPECTED, done.stdout + done.stderr
    assert "submitting" not in done.stdout
    with open_instance(home) as instance:
        [run] = instance.get_runs()
        assert run.remote_job_origin is None  # executed by the command itself, not launched from a code location
        assert not instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_ENQUEUED)

    refused = ml_platform([*COMMAND, "--submit"], env)
    assert refused.returncode == 2
    assert "--submit: the instance in" in refused.stderr and "start `dagster-daemon run`" in refused.stderr


@pytest.mark.slow
def test_with_a_daemon_the_command_submits_to_the_queue_and_reports_as_in_process(data: Path, tmp_path: Path) -> None:
    home = prepare_dagster_home(tmp_path / "home")
    with dagster_servers(home, {"ML_PLATFORM_DATA_DIR": str(data)}, wait_for_daemon=True) as servers:
        submitted = ml_platform(COMMAND, servers.env)
        assert submitted.returncode == 1, servers.logs() + submitted.stdout + submitted.stderr
        assert "submitting to the run queue of the instance" in submitted.stdout
        assert summary(submitted) == EXPECTED, submitted.stdout + submitted.stderr

        through_webserver = ml_platform([*COMMAND, "--url", servers.url], servers.env)
        assert through_webserver.returncode == 1, servers.logs() + through_webserver.stdout + through_webserver.stderr
        assert f"submitting to the run queue of {servers.url}" in through_webserver.stdout
        assert summary(through_webserver) == EXPECTED, through_webserver.stdout + through_webserver.stderr

        with servers.instance() as instance:
            runs = instance.get_runs()
            assert len(runs) == 2
            for run in runs:  # created from the code location's job, queued, and launched by the daemon
                assert (run.job_name, run.remote_job_origin.location_name) == ("churn_daily", "ml_platform")
                assert run.status == dg.DagsterRunStatus.FAILURE
                assert run.tags["ml_platform/stage"] == "raw_events"
                assert (
                    run.tags["dagster/asset_partition_range_start"],
                    run.tags["dagster/asset_partition_range_end"],
                ) == (FIRST, LAST)
                lifecycle = [
                    entry.dagster_event.event_type
                    for entry in instance.all_logs(
                        run.run_id,
                        of_type={
                            dg.DagsterEventType.RUN_ENQUEUED,
                            dg.DagsterEventType.RUN_STARTING,
                            dg.DagsterEventType.RUN_START,
                        },
                    )
                ]
                assert lifecycle == [
                    dg.DagsterEventType.RUN_ENQUEUED,
                    dg.DagsterEventType.RUN_STARTING,
                    dg.DagsterEventType.RUN_START,
                ], lifecycle  # queued, then launched by the daemon
            assert instance.get_materialized_partitions(dg.AssetKey(["churn", "raw_events"])) == {FIRST, LAST}

    # --in-process: the stopped daemon's last heartbeat is younger than DAEMON_ALIVE_S, the default would submit
    in_process = ml_platform([*COMMAND, "--in-process"], server_env(home, {"ML_PLATFORM_DATA_DIR": str(data)}))
    assert in_process.returncode == 1, in_process.stderr
    assert summary(in_process) == EXPECTED
