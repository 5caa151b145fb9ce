"""Stages of a use case run from a shell (`ml-platform materialize|train|predict`, the demo): the same
materializations the UI launches, with live per-stage progress, and the failed gates spelled out."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import dagster as dg

from ml_platform.runner import materialize_stages


# an evaluation's outcome: passed, failed with severity WARN (its day went through) or failed (ERROR: blocked)
Outcome = Literal["passed", "warned", "failed"]


@dataclass
class StageRun:
    success: bool
    run_id: str
    days_done: dict[str, int] = field(default_factory=dict)  # stage -> days the run materialized
    failed_days: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # stage -> day -> each blocking reason
    errors: list[str] = field(default_factory=list)  # step errors other than failed days (a missing champion, ...)
    warnings: dict[str, list[str]] = field(default_factory=dict)  # asset:check -> each warned day's reason
    checks: Counter[tuple[str, Outcome]] = field(default_factory=Counter)  # (asset:check, outcome) -> evaluations


def run_stages(defs: Any, spec: Any, label: str, stages: Sequence[str], instance: Any, days: list[str] | None) -> StageRun:
    """Materialize `stages` over `days` (None: unpartitioned stages) in this process, showing progress."""
    with StageProgress(instance, spec, label, stages, days or []):
        result = materialize_stages(defs, spec, stages, instance, days, log_level="ERROR")
    run = StageRun(result.success, result.run_id)
    done: dict[str, set[str | None]] = {}
    for event in result.get_asset_materialization_events():  # a retried step records its days again: count each once
        done.setdefault(event.asset_key.path[-1], set()).add(event.partition)
    run.days_done = {stage: len(days) for stage, days in done.items()}
    for evaluation in result.get_asset_check_evaluations():
        stage = evaluation.asset_key.path[-1]
        name = f"{stage}:{evaluation.check_name}"
        outcome: Outcome = ("passed" if evaluation.passed
                            else "warned" if evaluation.severity == dg.AssetCheckSeverity.WARN else "failed")
        run.checks[(name, outcome)] += 1
        if outcome == "failed":
            reasons = run.failed_days.setdefault(stage, {}).setdefault(evaluation.partition or "-", [])
            reasons.append(f"{evaluation.check_name}: {evaluation.description}")
        elif outcome == "warned":
            run.warnings.setdefault(name, []).append(evaluation.description or "")
    for event in result.all_events:
        failure = event.step_failure_data if event.is_step_failure else None
        if failure and not (failure.user_failure_data and "failed_partition_count" in failure.user_failure_data.metadata):
            run.errors.append(f"{event.step_key}: {failure.error.message.strip().splitlines()[0]}")
    return run


class StageProgress:
    """Days materialized so far per stage of a running in-process run, with elapsed time (rich, on stdout).

    A poller thread reads the instance; the run itself stays on the main thread, as Dagster expects."""

    def __init__(self, instance, spec, label: str, stages, days: list[str]) -> None:  # noqa: ANN001
        from rich.progress import MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        from ml_platform.assets import keys

        self.instance, self.days = instance, set(days)
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), MofNCompleteColumn(), TimeElapsedColumn())
        self.tasks = {
            keys.of_stage(spec, stage): self.progress.add_task(f"{label}: {stage}", total=len(days) or 1)
            for stage in stages
        }
        self.cursor = instance.event_log_storage.get_maximum_record_id() or 0
        self.stop = threading.Event()
        self.poller = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> StageProgress:
        self.progress.start()
        self.poller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.poller.join()
        self._update()
        self.progress.stop()

    def _poll(self) -> None:
        while not self.stop.wait(0.5):
            self._update()

    def _update(self) -> None:
        for key, task in self.tasks.items():
            self.progress.update(task, completed=self._done(key))

    def _done(self, key) -> int:  # noqa: ANN001
        """Days of `key` materialized since the run began (1 for an unpartitioned stage once it is done)."""
        import dagster as dg

        if self.days:
            return len(self.instance.event_log_storage.get_latest_storage_id_by_partition(
                key, dg.DagsterEventType.ASSET_MATERIALIZATION, partitions=self.days, after_cursor=self.cursor
            ))
        records = self.instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key, after_storage_id=self.cursor), limit=1)
        return len(records.records)
