"""`ml-platform materialize | train | predict`: a use case's stages from a shell, through the same
definitions and gates as the UI, with progress; then each stage's days done and failed, every failed day with
its reasons, and exit 1 when any day or step failed (gates that only warn are listed too, and do not fail it).

Where the run executes: `--in-process` (this process, on $DAGSTER_HOME's instance), `--submit` (the instance's
run queue: its daemon launches the run with the instance's run launcher), `--url URL` (the run queue of the
deployment whose webserver answers at URL, e.g. Kubernetes, followed through its GraphQL). By default a run is
submitted when the instance queues runs and its daemon is alive, else it executes in this process: a laptop
without `dagster-daemon` runs in-process, a shell next to a running deployment uses its queue and limits."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Literal

from ml_platform.assets import keys
from ml_platform.spec import UseCaseSpec


def run_command(args: argparse.Namespace, spec: UseCaseSpec, instance: Any) -> int:
    from ml_platform.definitions import build_definitions, load_specs
    from ml_platform.runner import MONITORING_STAGES, TRAINING_STAGES

    mode = run_mode(args, instance)
    defs = build_definitions(load_specs())
    if args.command == "materialize":
        days = _source_days(defs, spec, args.first, args.last)
        label, stages = f"{spec.name}: {len(days)} day(s) {days[0]}..{days[-1]}", args.stages
    elif args.command == "train":
        days, label, stages = None, f"{spec.name}: training", list(TRAINING_STAGES)
    else:
        days = _newest_feature_days(spec, args.days)
        label, stages = f"{spec.name}: {len(days)} day(s) {days[0]}..{days[-1]}", ["predictions", *MONITORING_STAGES]
    result = _run(mode, args, defs, spec, label, stages, instance, days)
    print(f"{label}: {'ok' if result.success else 'FAILED'} (run {result.run_id[:8]}, {' -> '.join(stages)})")
    if days is not None:
        for stage in stages:
            failed = len(result.failed_days.get(stage, {}))
            print(f"  {stage}: {result.days_done.get(stage, 0)} day(s) done" + (f", {failed} failed" if failed else ""))
    for name, reasons in result.warnings.items():  # the days went through: a note, not an error
        print(f"  {len(reasons)} day(s) warned: {name}, e.g. {reasons[0]}")
    for line in failed_day_lines(result.failed_days):
        print(f"  {line}", file=sys.stderr)
    for error in result.errors:
        print(f"  {error}", file=sys.stderr)
    return 0 if result.success else 1


Mode = Literal["in-process", "submit", "url"]


def run_mode(args: argparse.Namespace, instance: Any) -> Mode:
    """Where the run executes (see the module's docstring); --submit to an instance whose daemon is not
    serving its queue is refused (ValueError: exit 2), since the run would wait in the queue forever."""
    from ml_platform.runner import daemon_serves_queue

    if args.url:
        return "url"
    if args.in_process:
        return "in-process"
    serving = daemon_serves_queue(instance)
    if args.submit and not serving:
        raise ValueError(
            f"--submit: the instance in {instance.root_directory} has no dagster-daemon serving a run "
            "queue (QueuedRunCoordinator with a queue heartbeat in the last 2 minutes); start "
            "`dagster-daemon run`, or leave --submit out to run in this process"
        )
    return "submit" if serving else "in-process"


def _run(
    mode: Mode,
    args: argparse.Namespace,
    defs: Any,
    spec: UseCaseSpec,
    label: str,
    stages: list[str],
    instance: Any,
    days: list[str] | None,
) -> Any:
    """Execute in this process, or submit the same run and follow it to its end; returns its StageRun."""
    from ml_platform.runner import submit_to_instance, submit_to_webserver
    from ml_platform.stage_runs import follow_on_instance, follow_on_webserver, run_stages

    if mode == "in-process":
        return run_stages(defs, spec, label, stages, instance, days)
    if mode == "url":
        print(f"{label}: submitting to the run queue of {args.url}")
        return follow_on_webserver(
            args.url, spec, label, stages, days, lambda: submit_to_webserver(args.url, spec, stages, days)
        )
    workspace = Path(args.workspace)
    print(f"{label}: submitting to the run queue of the instance in {instance.root_directory} ({workspace})")
    return follow_on_instance(
        spec, label, stages, instance, days, lambda: submit_to_instance(workspace, spec, stages, days)
    )


def failed_day_lines(failed_days: dict[str, dict[str, list[str]]], listed: int = 10) -> list[str]:
    """Each stage's failed days with their reasons: the first `listed` of each stage, then a count."""
    lines = []
    for stage, by_day in failed_days.items():
        for day in sorted(by_day)[:listed]:
            lines.append(f"{stage} {day} failed: " + "; ".join(by_day[day]))
        if len(by_day) > listed:
            lines.append(f"{stage}: {len(by_day) - listed} more failed day(s) (`ml-platform summary` lists them)")
    return lines


def _source_days(defs: Any, spec: UseCaseSpec, first: str | None, last: str | None) -> list[str]:
    """The days the source has data for, within the use case's partitions and [first, last]; with
    `source.missing_days: empty`, every day from the first to the last of them."""
    from ml_platform.resources.sources import source_resource_key

    partitions = defs.resolve_assets_def(keys.raw_events(spec)).partitions_def.get_partition_keys()
    source = defs.resources[source_resource_key(spec)].source_for(spec)
    days = sorted(day for day in source.versions() if (first is None or day >= first) and (last is None or day <= last))
    if spec.missing_days == "empty" and days:  # a day without data is a day without events: every day between
        days = [day for day in partitions if (first or days[0]) <= day <= (last or days[-1])]
    days = sorted(set(days) & set(partitions))
    if not days:
        window = f"{first or 'the start'}..{last or 'the latest partition'}"
        start = partitions[0] if partitions else spec.start_date  # ML_PLATFORM_PARTITIONS_START may start them later
        raise ValueError(f"{spec.name}: the source has no day in {window} within the partitions (from {start})")
    return days


def _newest_feature_days(spec: UseCaseSpec, count: int) -> list[str]:
    from ml_platform.resources import default_resources

    days = default_resources()["lake"].existing_partitions(keys.features(spec))[-count:]
    if not days:
        raise ValueError(f"{spec.name}: no feature days yet; run `ml-platform materialize {spec.name}` first")
    return days
