"""A run launcher for one machine that run monitoring can watch: each run worker is a local process.

Dagster's `DefaultRunLauncher` starts run workers inside the code server and offers no
worker health check, so the daemon's run monitoring cannot see a worker die (the code
server notices instead, and nothing can resume the run). `K8sRunLauncher` can: it starts
`dagster api execute_run` as a Kubernetes Job, reports the Job's state to run monitoring
and resumes a run whose pod died with `dagster api resume_run`.

`LocalProcessRunLauncher` keeps that contract on a single machine (a VM, `make ui`, the
deployment tests): it starts the same `dagster api execute_run` / `resume_run` commands as
child processes of the launching daemon or webserver, records each worker's pid on the run
(`ml_platform/run_worker_pid`), and answers `check_run_worker_health` from the process
table. So a killed worker is detected by run monitoring, resumed up to
`run_monitoring.max_resume_run_attempts` times, and then failed and handed to run retries,
exactly as on Kubernetes. Configure it in dagster.yaml:

    run_launcher:
      module: ml_platform.run_launcher
      class: LocalProcessRunLauncher
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dagster import DagsterRun

from ml_platform.dagster_internals import (
    CheckRunHealthResult,
    ConfigurableClass,
    ConfigurableClassData,
    ExecuteRunArgs,
    JobPythonOrigin,
    LaunchRunContext,
    ResumeRunArgs,
    ResumeRunContext,
    RunLauncher,
    WorkerStatus,
)

WORKER_PID_TAG = "ml_platform/run_worker_pid"


class LocalProcessRunLauncher(RunLauncher, ConfigurableClass):
    """Launches every run worker as a local `dagster api execute_run` process with health checks and resume."""

    def __init__(self, inst_data: ConfigurableClassData | None = None, env_vars: Mapping[str, str] | None = None):
        self._inst_data = inst_data
        self._env_vars = dict(env_vars or {})
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        super().__init__()  # type: ignore[no-untyped-call]  # RunLauncher.__init__ is unannotated

    # ConfigurableClass ---------------------------------------------------------------------------

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        from dagster import Field, Permissive

        return {
            "env_vars": Field(
                Permissive(),  # type: ignore[no-untyped-call]  # unannotated in Dagster
                is_required=False,
                description="Extra environment variables for every run worker.",
            )
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> LocalProcessRunLauncher:
        return cls(inst_data=inst_data, **config_value)

    # launching ------------------------------------------------------------------------------------

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        args = ExecuteRunArgs(
            job_origin=_origin(run),
            run_id=run.run_id,
            instance_ref=self._instance.get_ref(),
            set_exit_code_on_failure=True,
        ).get_command_args()
        self._start_worker(run, args, "Started run worker")

    @property
    def supports_resume_run(self) -> bool:
        return True

    def resume_run(self, context: ResumeRunContext) -> None:
        run = context.dagster_run
        args = ResumeRunArgs(
            job_origin=_origin(run),
            run_id=run.run_id,
            instance_ref=self._instance.get_ref(),
            set_exit_code_on_failure=True,
        ).get_command_args()
        self._start_worker(run, args, f"Started run worker to resume the run (attempt {context.resume_attempt_number})")

    def _start_worker(self, run: DagsterRun, args: Sequence[str], message: str) -> None:
        # The code location's own interpreter (its entry point may be a bare `dagster` not on PATH here).
        executable = run.job_code_origin.executable_path if run.job_code_origin else None
        command = [executable or sys.executable, "-m", "dagster", *args[list(args).index("api") :]]
        # Same process group as the launcher (daemon or webserver): stopping it stops its workers.
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, env={**os.environ, **self._env_vars}, close_fds=True
        )
        with self._lock:
            self._children[process.pid] = process
        self._instance.add_run_tags(run.run_id, {WORKER_PID_TAG: str(process.pid)})
        self._instance.report_engine_event(f"{message} (pid {process.pid}).", run, cls=self.__class__)

    # monitoring -----------------------------------------------------------------------------------

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    @property
    def supports_run_worker_crash_recovery(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        current = self._instance.get_run_by_id(run.run_id) or run
        pid = _pid(current)
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "no run worker pid recorded on the run")
        if self._worker_alive(pid, run.run_id):
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        if current.is_success:
            return CheckRunHealthResult(WorkerStatus.SUCCESS)
        return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker process {pid} is gone{self._exit_note(pid)}")

    def get_run_worker_debug_info(self, run: DagsterRun, include_container_logs: bool | None = True) -> str | None:
        pid = _pid(self._instance.get_run_by_id(run.run_id) or run)
        return None if pid is None else f"Local run worker pid {pid}{self._exit_note(pid)}."

    def _exit_note(self, pid: int) -> str:
        with self._lock:
            child = self._children.get(pid)
        code = child.poll() if child is not None else None
        if code is None:
            return ""
        return f" (killed by signal {-code})" if code < 0 else f" (exit code {code})"

    def _worker_alive(self, pid: int, run_id: str) -> bool:
        with self._lock:
            child = self._children.get(pid)
        if child is not None and child.poll() is not None:  # our child: poll() also reaps it
            return False
        return _process_runs(pid, run_id)

    # cancelling -----------------------------------------------------------------------------------

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        pid = _pid(run)
        if pid is None or not self._worker_alive(pid, run_id):
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)  # `dagster api execute_run` turns SIGTERM into a clean cancel
        return True

    def dispose(self) -> None:
        with self._lock:
            children = list(self._children.values())
        for child in children:
            child.poll()


def _process_runs(pid: int, run_id: str) -> bool:
    """Whether `pid` is a live (not zombie) process whose command line names the run (not a recycled pid)."""
    proc = Path("/proc") / str(pid)
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X") and run_id in command


def _pid(run: DagsterRun) -> int | None:
    value = run.tags.get(WORKER_PID_TAG)
    return int(value) if value and value.isdigit() else None


def _origin(run: DagsterRun) -> JobPythonOrigin:
    """The code a run executes; a run launched from a code location always has it."""
    if run.job_code_origin is None:
        raise ValueError(f"run {run.run_id} has no code origin: it was not launched from a code location")
    return run.job_code_origin
