"""Stages of a use case run from a shell (`ml-platform materialize|train|predict`, the demo): the same
materializations the UI launches, with live per-stage progress, and the failed gates spelled out.

A run is executed in this process, or submitted to a deployed instance and followed to its end; either way
the summary is read from the run's events (materializations, check evaluations, step failures), so both
print the same days done and failed."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import dagster as dg

from ml_platform.runner import materialize_stages

if TYPE_CHECKING:
    from ml_platform.spec import UseCaseSpec

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


@dataclass(frozen=True)
class RunEvent:
    """What the summary reads of one event of a run, whether Dagster's own or the webserver's GraphQL answer."""

    kind: Literal["materialized", "evaluated", "step_failed"]
    stage: str = ""  # the asset's last key part
    partition: str | None = None
    check: str = ""
    outcome: Outcome = "passed"
    text: str = ""  # an evaluation's description, a step failure's first line
    step_key: str = ""
    counts_failed_days: bool = False  # a step failure that only reports the run's failed days (see PartitionGate)


def run_stages(
    defs: Any,
    spec: UseCaseSpec,
    label: str,
    stages: Sequence[str],
    instance: dg.DagsterInstance,
    days: list[str] | None,
) -> StageRun:
    """Materialize `stages` over `days` (None: unpartitioned stages) in this process, showing progress."""
    with StageProgress(spec, label, stages, days or [], instance_counter(instance, days or [])):
        result = materialize_stages(defs, spec, stages, instance, days, log_level="ERROR")
    return summarise(result.run_id, result.success, dagster_run_events(result.all_events))


def follow_on_instance(
    spec: UseCaseSpec,
    label: str,
    stages: Sequence[str],
    instance: dg.DagsterInstance,
    days: list[str] | None,
    submit: Callable[[], str],
) -> StageRun:
    """Submit with `submit` (returns the run id), then follow the run in `instance` to its end, showing progress."""
    with StageProgress(spec, label, stages, days or [], instance_counter(instance, days or [])) as progress:
        run_id = submit()
        progress.note(f"run {run_id[:8]}")
        while not (run := _run(instance, run_id)).is_finished:
            progress.note(f"run {run_id[:8]} {run.status.value.lower()}")
            time.sleep(FOLLOW_POLL_S)
    logged = instance.all_logs(
        run_id,
        of_type={
            dg.DagsterEventType.ASSET_MATERIALIZATION,
            dg.DagsterEventType.ASSET_CHECK_EVALUATION,
            dg.DagsterEventType.STEP_FAILURE,
        },
    )
    return summarise(
        run_id,
        run.status == dg.DagsterRunStatus.SUCCESS,
        dagster_run_events(entry.dagster_event for entry in logged if entry.dagster_event),
    )


def _run(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRun:
    """The run as stored now; it was just submitted, so its absence is an error worth naming."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise RuntimeError(f"run {run_id} is not in the instance at {instance.root_directory}")
    return run


def follow_on_webserver(
    url: str, spec: UseCaseSpec, label: str, stages: Sequence[str], days: list[str] | None, submit: Callable[[], str]
) -> StageRun:
    """Submit with `submit`, then follow the run's status and event log through the webserver's GraphQL at `url`
    (where the deployment's instance is out of reach, as from a laptop to Kubernetes), showing progress."""
    events: list[RunEvent] = []
    done: dict[str, set[str | None]] = {}

    def counted(key: dg.AssetKey) -> int:
        return len(done.get(key.path[-1], set()))

    with StageProgress(spec, label, stages, days or [], counted) as progress:
        run_id = submit()
        cursor: str | None = None
        while True:
            status = _graphql(url, RUN_STATUS_QUERY, {"runId": run_id})["runOrError"]
            if "status" not in status:
                raise RuntimeError(f"{url}: run {run_id} not found: {status}")
            while True:  # every event logged so far: the status was read first, so a finished run's log is whole
                page = _graphql(url, RUN_LOGS_QUERY, {"runId": run_id, "afterCursor": cursor})["logsForRun"]
                if "events" not in page:
                    raise RuntimeError(f"{url}: the log of run {run_id}: {page}")
                events += [event for event in map(graphql_run_event, page["events"]) if event]
                cursor = page["cursor"]
                if not page["hasMore"]:
                    break
            for event in events:
                if event.kind == "materialized":
                    done.setdefault(event.stage, set()).add(event.partition)
            progress.note(f"run {run_id[:8]} {status['status'].lower()}")
            if status["status"] in FINISHED_STATUSES:
                break
            time.sleep(FOLLOW_POLL_S)
    return summarise(run_id, status["status"] == "SUCCESS", events)


FOLLOW_POLL_S = 1.0
FINISHED_STATUSES = frozenset({"SUCCESS", "FAILURE", "CANCELED"})


def summarise(run_id: str, success: bool, events: Iterable[RunEvent]) -> StageRun:
    """Days done and failed per stage, warnings, check counts and other step errors, from the run's events."""
    run = StageRun(success, run_id)
    done: dict[str, set[str | None]] = {}
    for event in events:
        if event.kind == "materialized":  # a retried step records its days again: count each once
            done.setdefault(event.stage, set()).add(event.partition)
        elif event.kind == "evaluated":
            name = f"{event.stage}:{event.check}"
            run.checks[(name, event.outcome)] += 1
            if event.outcome == "failed":
                reasons = run.failed_days.setdefault(event.stage, {}).setdefault(event.partition or "-", [])
                reasons.append(f"{event.check}: {event.text}")
            elif event.outcome == "warned":
                run.warnings.setdefault(name, []).append(event.text)
        elif not event.counts_failed_days:
            run.errors.append(f"{event.step_key}: {event.text}")
    run.days_done = {stage: len(days) for stage, days in done.items()}
    return run


def dagster_run_events(events: Iterable[dg.DagsterEvent]) -> list[RunEvent]:
    """The summary's view of Dagster events (an in-process result's, or the instance's event log)."""
    seen: list[RunEvent] = []
    for event in events:
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION and event.asset_key is not None:
            seen.append(RunEvent("materialized", event.asset_key.path[-1], event.partition))
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.asset_check_evaluation_data
            outcome: Outcome = (
                "passed"
                if evaluation.passed
                else "warned"
                if evaluation.severity == dg.AssetCheckSeverity.WARN
                else "failed"
            )
            seen.append(
                RunEvent(
                    "evaluated",
                    evaluation.asset_key.path[-1],
                    evaluation.partition,
                    evaluation.check_name,
                    outcome,
                    evaluation.description or "",
                )
            )
        elif event.is_step_failure:
            failure = event.step_failure_data
            seen.append(
                RunEvent(
                    "step_failed",
                    step_key=event.step_key or "",
                    text=failure.error.message.strip().splitlines()[0] if failure.error else "",
                    counts_failed_days=bool(
                        failure.user_failure_data and GATE_FAILURE_METADATA in failure.user_failure_data.metadata
                    ),
                )
            )
    return seen


def graphql_run_event(event: Mapping[str, Any]) -> RunEvent | None:
    """The summary's view of an event of the webserver's `logsForRun` (RUN_LOGS_QUERY); None for other events."""
    kind = event.get("__typename")
    if kind == "MaterializationEvent":
        return RunEvent("materialized", event["assetKey"]["path"][-1], event["partition"])
    if kind == "AssetCheckEvaluationEvent":
        evaluation = event["evaluation"]
        outcome: Outcome = (
            "passed" if evaluation["success"] else "warned" if evaluation["severity"] == "WARN" else "failed"
        )
        return RunEvent(
            "evaluated",
            evaluation["assetKey"]["path"][-1],
            evaluation["partition"],
            evaluation["checkName"],
            outcome,
            evaluation["description"] or "",
        )
    if kind == "ExecutionStepFailureEvent":
        labels = {entry["label"] for entry in (event["failureMetadata"] or {}).get("metadataEntries", [])}
        message = (event["error"] or {}).get("message") or ""
        return RunEvent(
            "step_failed",
            step_key=event["stepKey"] or "",
            text=(message.strip().splitlines() or [""])[0],
            counts_failed_days=GATE_FAILURE_METADATA in labels,
        )
    return None


# The metadata entry of the failure a PartitionGate raises after storing the good days: the failed days are
# reported by their evaluations, not as a step error.
GATE_FAILURE_METADATA = "failed_partition_count"

RUN_STATUS_QUERY = """
query RunStatus($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { status }
    ... on RunNotFoundError { message }
    ... on PythonError { message }
  }
}
"""

RUN_LOGS_QUERY = """
query RunLogs($runId: ID!, $afterCursor: String) {
  logsForRun(runId: $runId, afterCursor: $afterCursor) {
    __typename
    ... on EventConnection {
      cursor
      hasMore
      events {
        __typename
        ... on MaterializationEvent { assetKey { path } partition }
        ... on AssetCheckEvaluationEvent {
          evaluation { checkName assetKey { path } partition success severity description }
        }
        ... on ExecutionStepFailureEvent {
          stepKey
          error { message }
          failureMetadata { metadataEntries { label } }
        }
      }
    }
    ... on RunNotFoundError { message }
    ... on PythonError { message }
  }
}
"""


def _graphql(url: str, query: str, variables: Mapping[str, Any]) -> dict[str, Any]:
    """One query to the webserver's /graphql; its `data`, or an error naming the answer."""
    import requests

    response = requests.post(
        f"{url.rstrip('/')}/graphql", json={"query": query, "variables": dict(variables)}, timeout=60
    )
    payload = response.json() if response.ok else {}
    if not response.ok or payload.get("errors") or "data" not in payload:
        raise RuntimeError(
            f"{url}/graphql answered HTTP {response.status_code}: {payload.get('errors') or response.text[:500]}"
        )
    data: dict[str, Any] = payload["data"]
    return data


def instance_counter(instance: dg.DagsterInstance, days: list[str]) -> Callable[[dg.AssetKey], int]:
    """Days of a stage materialized in `instance` from now on (1 for an unpartitioned stage once it is done)."""
    cursor = instance.event_log_storage.get_maximum_record_id() or 0
    wanted = set(days)

    def count(key: dg.AssetKey) -> int:
        if wanted:
            return len(
                instance.event_log_storage.get_latest_storage_id_by_partition(
                    key, dg.DagsterEventType.ASSET_MATERIALIZATION, partitions=wanted, after_cursor=cursor
                )
            )
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, after_storage_id=cursor), limit=1
        )
        return len(records.records)

    return count


class StageProgress:
    """Days done so far per stage of a running run (as `count` reads them), with elapsed time (rich, on stdout).

    A poller thread counts; an in-process run itself stays on the main thread, as Dagster expects."""

    def __init__(
        self, spec: UseCaseSpec, label: str, stages: Sequence[str], days: list[str], count: Callable[[dg.AssetKey], int]
    ) -> None:
        from rich.progress import MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        from ml_platform.assets import keys

        self.count = count
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), MofNCompleteColumn(), TimeElapsedColumn()
        )
        self.tasks = {
            keys.of_stage(spec, stage): self.progress.add_task(f"{label}: {stage}", total=len(days) or 1)
            for stage in stages
        }
        self.label = label
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

    def note(self, text: str) -> None:
        """Show `text` (a submitted run's id and status) next to the first stage's bar."""
        task, stage = next(iter(self.tasks.values())), next(iter(self.tasks)).path[-1]
        self.progress.update(task, description=f"{self.label}: {stage} ({text})")

    def _poll(self) -> None:
        while not self.stop.wait(0.5):
            self._update()

    def _update(self) -> None:
        for key, task in self.tasks.items():
            self.progress.update(task, completed=self.count(key))
