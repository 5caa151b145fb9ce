"""The run queue, run monitoring and run retries, enforced by a real `dagster-daemon`.

One `dagster-webserver` + `dagster-daemon` pair (ml_platform_tests/support/servers.py: own process
groups, ended as a whole) runs on a fresh DAGSTER_HOME whose dagster.yaml is the repo's
dagster.yaml with only three changes: the `LocalProcessRunLauncher` (run workers as local
processes with health checks, the single-machine stand-in for K8sRunLauncher's monitoring
contract), a 1 s monitoring poll, and one resume attempt (what Kubernetes gets). The queue
limits and run-retry settings under test are the repo's own, read from the file.

The code location is a small file written per test session whose jobs carry the platform's
real tags (taken from the GPU training job that the platform builds for a GPU spec) and sleep or wait
instead of training, so the timing is the daemon's and not the model's.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psutil
import pytest
import yaml

from ml_platform.definitions import build_definitions
from ml_platform.run_launcher import WORKER_PID_TAG
from ml_platform.spec import ResourceSpec, UseCaseSpec
from ml_platform_tests.support.instance_config import load_instance_config, max_concurrent_runs, tag_limit
from ml_platform_tests.support.servers import (
    REPO_ROOT,
    DagsterServers,
    dagster_servers,
    prepare_dagster_home,
    wait_until,
)

pytestmark = pytest.mark.slow

LOCATION = "deploy_test"
TRAINING_SLEEP_S = 2.0
INGEST_SLEEP_S = 4.0

LOCATION_SOURCE = '''
"""Test-only code location: jobs with the platform's run tags whose ops sleep or wait."""
import time
from pathlib import Path

import dagster as dg

TRAINING_TAGS = {training_tags!r}
TRAINING_SLEEP_S = {training_sleep!r}
INGEST_SLEEP_S = {ingest_sleep!r}
RELEASE = Path(__file__).parent / "release"


@dg.op
def train_on_gpu():
    time.sleep(TRAINING_SLEEP_S)


@dg.job(tags=TRAINING_TAGS)
def gpu_training():
    train_on_gpu()


@dg.op
def ingest_day():
    time.sleep(INGEST_SLEEP_S)


@dg.job
def ingestion():
    ingest_day()


@dg.op
def wait_for_release():
    deadline = time.time() + 120
    while not RELEASE.exists():
        if time.time() > deadline:
            raise RuntimeError("the test never released this run")
        time.sleep(0.1)


@dg.job
def long_running():
    wait_for_release()


defs = dg.Definitions(jobs=[gpu_training, ingestion, long_running], executor=dg.in_process_executor)
'''


def gpu_training_tags(spec: UseCaseSpec) -> dict[str, str]:
    """The run tags of the platform's training job for a GPU variant of the spec."""
    gpu_spec = spec.model_copy(update={"resources": ResourceSpec(gpu=1, cpu="4", memory="16Gi")})
    job = build_definitions([gpu_spec]).resolve_job_def(f"{gpu_spec.name}_training")
    return {key: value for key, value in job.tags.items() if not key.startswith("dagster/")}


def write_test_dagster_yaml(home: Path) -> dict:
    config = load_instance_config(REPO_ROOT / "dagster.yaml")
    config["run_launcher"] = {"module": "ml_platform.run_launcher", "class": "LocalProcessRunLauncher"}
    config["run_monitoring"] = {**config["run_monitoring"], "poll_interval_seconds": 1, "max_resume_run_attempts": 1}
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return config


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, churn_spec: UseCaseSpec) -> Iterator[DagsterServers]:
    root = tmp_path_factory.mktemp("deploy_daemon")
    location = root / "location"
    location.mkdir()
    (location / "location.py").write_text(
        LOCATION_SOURCE.format(
            training_tags=gpu_training_tags(churn_spec), training_sleep=TRAINING_SLEEP_S, ingest_sleep=INGEST_SLEEP_S
        )
    )
    (location / "workspace.yaml").write_text(
        yaml.safe_dump({"load_from": [{"python_file": {"relative_path": "location.py", "location_name": LOCATION}}]})
    )
    home = prepare_dagster_home(root / "dagster_home")
    write_test_dagster_yaml(home)
    with dagster_servers(home, repo_root=location, wait_for_daemon=True) as running:
        running.location_dir = location  # type: ignore[attr-defined]
        yield running


def launch(servers: DagsterServers, job: str) -> str:
    """Submit a run of `job` through the webserver, as any GraphQL client would; returns its run id."""
    return servers.client().submit_job_execution(
        job, repository_location_name=LOCATION, repository_name="__repository__", run_config={}
    )


def records(instance: dg.DagsterInstance, run_ids: list[str]) -> list:
    return list(instance.get_run_records(filters=dg.RunsFilter(run_ids=run_ids)))


def test_queue_runs_at_most_the_limit_of_gpu_trainings_while_ingestion_flows(
    servers: DagsterServers, churn_spec: UseCaseSpec
) -> None:
    config = load_instance_config(REPO_ROOT / "dagster.yaml")
    tags = gpu_training_tags(churn_spec)
    limit = tag_limit(config, "ml_platform/kind", tags["ml_platform/kind"])
    assert limit is not None and limit >= 1, "dagster.yaml must limit concurrent training runs"
    max_runs = max_concurrent_runs(config)

    training = [launch(servers, "gpu_training") for _ in range(limit + 2)]
    ingestion = [launch(servers, "ingestion") for _ in range(2)]

    with servers.instance() as instance:
        finished = wait_until(
            lambda: (
                (rs := records(instance, training + ingestion)) and all(r.dagster_run.is_finished for r in rs) and rs
            ),
            servers,
            timeout=120,
            what="every queued run to finish",
        )
        statuses = {r.dagster_run.run_id: r.dagster_run.status for r in finished}
        assert set(statuses.values()) == {dg.DagsterRunStatus.SUCCESS}, statuses
        tagged = {r.dagster_run.run_id: r.dagster_run.tags for r in finished}
        assert all(tagged[run_id]["ml_platform/kind"] == "training" for run_id in training)

    intervals = {r.dagster_run.run_id: (r.start_time, r.end_time) for r in finished}
    assert all(start and end for start, end in intervals.values()), intervals

    def most_at_once(run_ids: list[str]) -> int:
        edges = sorted(
            [(intervals[i][0], 1) for i in run_ids] + [(intervals[i][1], -1) for i in run_ids],
            key=lambda edge: (edge[0], edge[1]),
        )
        running = peak = 0
        for _, step in edges:
            running += step
            peak = max(peak, running)
        return peak

    assert most_at_once(training) == limit, {i: intervals[i] for i in training}
    assert most_at_once(training + ingestion) <= max_runs
    # Ingestion is not held behind the queued trainings: it ran while training runs were waiting.
    last_training_start = max(intervals[i][0] for i in training)
    assert all(intervals[i][0] < last_training_start for i in ingestion), intervals


def _worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid of the run's current worker once that worker has started executing the step."""
    run = instance.get_run_by_id(run_id)
    pid = run.tags.get(WORKER_PID_TAG) if run else None
    if pid is None or run.status != dg.DagsterRunStatus.STARTED:
        return None
    step_starts = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_START).records
    started_by_worker = any(record.event_log_entry.dagster_event.pid == int(pid) for record in step_starts)
    return int(pid) if started_by_worker and psutil.pid_exists(int(pid)) else None


def test_a_killed_run_worker_is_resumed_then_failed_by_run_monitoring_and_the_run_is_retried(
    servers: DagsterServers,
) -> None:
    config = load_instance_config(REPO_ROOT / "dagster.yaml")
    run_id = launch(servers, "long_running")
    with servers.instance() as instance:
        first = wait_until(
            lambda: _worker_pid(instance, run_id), servers, "the run worker to start its step", timeout=60
        )
        os.kill(first, signal.SIGKILL)

        second = wait_until(
            lambda: (pid := _worker_pid(instance, run_id)) and pid != first and pid,
            servers,
            "run monitoring to resume the run with a new worker that re-runs the interrupted step",
            timeout=60,
        )
        os.kill(second, signal.SIGKILL)

        failed = wait_until(
            lambda: (run := instance.get_run_by_id(run_id)).is_finished and run,
            servers,
            "run monitoring to fail the run once its resume attempts are used up",
            timeout=60,
        )
        assert failed.status == dg.DagsterRunStatus.FAILURE
        engine_messages = [
            record.event_log_entry.message
            for record in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT).records
        ]
        failure = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
        failure_message = failure[-1].event_log_entry.message or ""
        assert any("Resuming run" in message for message in engine_messages), engine_messages
        assert "Detected run worker status" in failure_message and "surpassed the configured maximum" in failure_message
        assert f"run worker process {second} is gone" in failure_message

        # Run retries (dagster.yaml: worker crashes are retried, failed gates are not) take over.
        (servers.location_dir / "release").touch()  # type: ignore[attr-defined]
        retry = wait_until(
            lambda: next(
                (
                    r
                    for r in instance.get_runs(filters=dg.RunsFilter(tags={"dagster/parent_run_id": run_id}))
                    if r.is_finished
                ),
                None,
            ),
            servers,
            "the daemon's automatic retry of the failed run to finish",
            timeout=90,
        )
        assert retry.status == dg.DagsterRunStatus.SUCCESS
        assert retry.tags["dagster/retry_number"] == "1"
        assert config["run_retries"]["enabled"] and config["run_retries"]["max_retries"] >= 1


def test_servers_leave_no_run_worker_behind(servers: DagsterServers) -> None:
    """Every run worker is a child of the daemon's process group, which the fixture ends as a whole."""
    pids = {p.pid for p in servers.processes()}
    assert servers.daemon is not None and servers.daemon.pid in pids
    with servers.instance() as instance:
        for run in instance.get_runs():
            pid = run.tags.get(WORKER_PID_TAG)
            if pid and psutil.pid_exists(int(pid)):
                assert os.getpgid(int(pid)) in servers.process_groups
