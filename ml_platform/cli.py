"""`ml-platform`: generate sample data, run the demo, summarise, roll back or promote a champion."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import threading
from collections import Counter
from pathlib import Path

from ml_platform import settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ml-platform", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="land synthetic daily event files of a shipped use case")
    _add_data_arguments(generate)

    demo = commands.add_parser("demo", help="generate data, backfill, train, gate, promote, predict, summarise")
    _add_data_arguments(demo)

    summary = commands.add_parser("summary", help="what is materialized, checked and promoted")
    summary.add_argument("--use-case", default="churn", help="which use case (default churn)")

    rollback = commands.add_parser("rollback", help="make the previous champion (or --to VERSION) the champion again")
    rollback.add_argument("use_case", help="the use case whose champion goes back, e.g. churn")
    rollback.add_argument("--to", type=_positive_int, default=None, help="a registered version that passed its gates or was champion")
    rollback.add_argument("--reason", default="manual rollback from the command line", help="recorded on the version")

    promote = commands.add_parser("promote", help="force a registered version to champion past its gates (audited)")
    promote.add_argument("use_case", help="the use case whose champion changes, e.g. churn")
    promote.add_argument("version", type=_positive_int, help="the registered MLflow version to make champion")
    promote.add_argument("--reason", required=True, help="why the gates are overridden; recorded on the version")

    metrics = commands.add_parser("metrics", help="serve Prometheus metrics of runs, partitions, gates, champions, drift")
    metrics.add_argument("--port", type=_positive_int, default=9108, help="port to serve /metrics on (default 9108)")
    metrics.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 for all)")

    scaffold = commands.add_parser("new-use-case", help="write a commented spec to start your own use case from")
    scaffold.add_argument("name", help="lower_snake_case name, also the asset-key prefix")
    scaffold.add_argument("--dir", type=Path, default=None, help="where to write NAME.yaml (default: $ML_PLATFORM_SPECS_DIR or ./specs)")

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # MLflow's INFO lines (store creation) are noise here
    try:
        if args.command == "generate":
            paths = _generate(args)
            print(f"landed {len(paths)} new file(s) in {_landing_dir(args.use_case)}")
        elif args.command == "demo":
            return _demo(args)
        elif args.command == "summary":
            print(_summary(args.use_case))
        elif args.command == "rollback":
            return _change_champion(args.use_case, "rollback", {"to_version": str(args.to or ""), "reason": args.reason})
        elif args.command == "promote":
            return _change_champion(args.use_case, "promote", {"version": str(args.version), "reason": args.reason})
        elif args.command == "metrics":
            from ml_platform.metrics_exporter import serve

            _instance()  # DAGSTER_HOME defaults to ./.dagster_home, as for the demo
            serve(args.port, args.host)
        elif args.command == "new-use-case":
            from ml_platform.scaffold import write_scaffold

            path = write_scaffold(args.name, args.dir or Path(os.environ.get(settings.SPECS_DIR_ENV, "specs")))
            print(f"wrote {path}; edit it, then: export {settings.SPECS_DIR_ENV}={path.parent.resolve()} && make validate")
    except (ValueError, FileNotFoundError) as error:
        print(f"ml-platform {args.command}: {error}", file=sys.stderr)
        return 2
    return 0


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--use-case", default="churn", help="a shipped use case: churn, fraud or prices (default churn)")
    parser.add_argument("--days", type=_positive_int, default=60, help="number of days (default 60)")
    parser.add_argument("--events-per-day", type=_positive_int, default=5_000,
                        help="events per day (for prices: the number of series)")
    parser.add_argument("--end", type=_iso_date, default=None, help="last day, YYYY-MM-DD (default: yesterday, UTC)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (default 0)")
    parser.add_argument("--format", choices=["parquet", "csv"], default=None, help="default: the spec's source format")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _iso_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got '{text}'") from None


def _spec(name: str):  # noqa: ANN202 - returns UseCaseSpec; import kept lazy for a fast --help
    from ml_platform.definitions import load_specs

    specs = {spec.name: spec for spec in load_specs()}
    if name not in specs:
        raise ValueError(f"unknown use case '{name}', expected one of {sorted(specs)}")
    return specs[name]


def _landing_dir(use_case: str) -> Path:
    from ml_platform.resources.sources import EventSource

    return EventSource(data_dir=str(settings.data_dir())).landing_dir(_spec(use_case).source)


def _days(args: argparse.Namespace) -> list[str]:
    end = args.end or (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1))
    start = end - dt.timedelta(days=args.days - 1)
    return [(start + dt.timedelta(days=i)).isoformat() for i in range(args.days)]


def _generate(args: argparse.Namespace) -> list[Path]:
    from ml_platform.use_cases.landing import generators, land_days

    spec = _spec(args.use_case)
    if spec.source.kind != "files":
        raise ValueError(f"use case '{spec.name}' reads from {spec.source.kind}; generate lands files only")
    generate = generators().get(spec.name)
    if generate is None:
        raise ValueError(f"no synthetic data generator for '{spec.name}'; land your own files in {_landing_dir(spec.name)}")
    days = _days(args)
    if dt.date.fromisoformat(days[0]) < spec.start_date:
        raise ValueError(f"first day {days[0]} is before the spec's start_date {spec.start_date}")
    frames = generate(dt.date.fromisoformat(days[0]), args.days, args.events_per_day, args.seed)
    return land_days(_landing_dir(spec.name), frames, args.format or spec.source.format)


def _instance():  # noqa: ANN202
    import dagster as dg

    os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster_home").resolve()))
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.get()


def _demo(args: argparse.Namespace) -> int:
    from ml_platform.definitions import defs
    from ml_platform.runner import DAILY_STAGES, MONITORING_STAGES, TRAINING_STAGES, materialize_stages

    spec = _spec(args.use_case)
    landed = _generate(args)
    days = _days(args)
    print(f"[1/4] data: {len(landed)} new day file(s) landed in {_landing_dir(spec.name)} ({days[0]}..{days[-1]})")
    instance = _instance()
    checks: Counter[tuple[str, bool]] = Counter()

    def run(label: str, stages: tuple[str, ...] | list[str], run_days: list[str] | None) -> bool:
        with StageProgress(instance, spec, label, stages, run_days or []):
            result = materialize_stages(defs, spec, stages, instance, run_days, log_level="ERROR")
        for evaluation in result.get_asset_check_evaluations():
            checks[(f"{evaluation.asset_key.path[-1]}:{evaluation.check_name}", evaluation.passed)] += 1
        print(f"{label}: {'ok' if result.success else 'FAILED'} (run {result.run_id[:8]})")
        return result.success

    ingested = run(f"[2/4] range backfill of {len(days)} days, raw_events -> features", list(DAILY_STAGES[:2]), days)
    trained = run("[3/4] training_set -> model (gated) -> champion", TRAINING_STAGES, None)
    predicted = run(f"[4/4] predictions and drift for {len(days)} days with the champion",
                    [DAILY_STAGES[2], *MONITORING_STAGES], days)
    print()
    print(_summary(spec.name, instance, checks))
    return 0 if ingested and trained and predicted else 1


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


def _summary(use_case: str, instance=None, checks: Counter | None = None) -> str:  # noqa: ANN001
    from ml_platform.assets import keys
    from ml_platform.resources import default_resources
    from ml_platform.resources.mlflow_resource import CHAMPION, PREVIOUS_CHAMPION

    spec = _spec(use_case)
    instance = instance or _instance()
    lines = [f"== {spec.name} summary (Dagster home {instance.root_directory}) =="]
    for stage in ("raw_events", "features", "predictions", "drift"):
        key = keys.of_stage(spec, stage)
        partitions = sorted(instance.get_materialized_partitions(key))
        span = f"{partitions[0]}..{partitions[-1]}" if partitions else "-"
        lines.append(f"  {key.to_user_string():<22} {len(partitions):>4} partitions materialized  {span}")
    if checks:
        passed = sum(n for (_, ok), n in checks.items() if ok)
        failed = sorted({name for (name, ok), n in checks.items() if not ok})
        lines.append(f"  checks: {passed} passed, {sum(checks.values()) - passed} failed" + (f" {failed}" if failed else ""))
    lines += _failing_gates(spec, instance) + _failed_runs(spec, instance)
    mlflow = default_resources()["mlflow"]
    champion = mlflow.version_by_alias(spec.name, CHAMPION)
    previous = mlflow.version_by_alias(spec.name, PREVIOUS_CHAMPION)
    if champion is None:
        lines.append("  champion: none yet")
    else:
        run = mlflow.client().get_run(champion.run_id)
        metrics = ", ".join(f"{k.removeprefix('holdout_')} {v:.3f}" for k, v in sorted(run.data.metrics.items()))
        lines.append(f"  champion: MLflow model '{spec.name}' version {champion.version} ({metrics})")
        if "champion_action" in champion.tags:
            tags = champion.tags
            lines.append(f"  since {tags['champion_since']}: {tags['champion_action']} by {tags['champion_by']}: {tags['champion_reason']}")
        lines.append(f"  previous champion: {previous.version if previous else 'none'}; tracking {mlflow.resolved_tracking_uri()}")
    return "\n".join(lines)


def _failing_gates(spec, instance) -> list[str]:  # noqa: ANN001
    """Each blocking gate's days whose latest evaluation failed, as the check Partitions tab counts them."""
    import dagster as dg
    from dagster._core.event_api import PartitionKeyFilter
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

    from ml_platform.assets import keys
    from ml_platform.checks.rules import FEATURE_CHECKS, PREDICTION_CHECKS, raw_checks

    gates = {keys.raw_events(spec): raw_checks(spec), keys.features(spec): FEATURE_CHECKS,
             keys.predictions(spec): PREDICTION_CHECKS}
    check_keys = [dg.AssetCheckKey(asset, name) for asset, names in gates.items() for name in names]
    failing: dict[dg.AssetCheckKey, list[str]] = {}
    for info in instance.event_log_storage.get_asset_check_partition_info(check_keys):
        if info.latest_execution_status == AssetCheckExecutionRecordStatus.FAILED and info.is_current:
            failing.setdefault(info.check_key, []).append(info.partition_key)
    if not failing:
        return ["  gates: no day's latest evaluation failed"]
    lines = ["  failing gates (latest evaluation per day):"]
    for check_key, days in sorted(failing.items(), key=lambda item: item[0].to_user_string()):
        days = sorted(days)
        [latest] = instance.event_log_storage.get_asset_check_execution_history(
            check_key, limit=1, partition_filter=PartitionKeyFilter(key=days[-1]))
        reason = latest.event.dagster_event.event_specific_data.description if latest.event else ""
        shown = ", ".join(days[:3]) + (f" and {len(days) - 3} more" if len(days) > 3 else "")
        lines.append(f"    {check_key.to_user_string()}: {len(days)} day(s) ({shown}); latest: {reason}")
    return lines


def _failed_runs(spec, instance, limit: int = 5) -> list[str]:  # noqa: ANN001
    import dagster as dg

    failed = [run for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]), limit=50)
              if run.tags.get("ml_platform/use_case") == spec.name
              or any(key.path[0] == spec.name for key in run.asset_selection or ())][:limit]
    if not failed:
        return []
    lines = [f"  failed runs (latest {len(failed)}):"]
    for run in failed:
        record = instance.get_run_record_by_id(run.run_id)
        when = record.create_timestamp.strftime("%Y-%m-%d %H:%M") if record else "?"
        what = run.tags.get("ml_platform/stage") or run.job_name
        lines.append(f"    {run.run_id[:8]} {when} {what}")
    return lines


def _change_champion(use_case: str, action: str, config: dict[str, str]) -> int:
    """Run the use case's rollback/promote job on the local instance: the same audited path as the UI."""
    import getpass

    from ml_platform.definitions import build_definitions, load_specs
    from ml_platform.models.registry import promotable_version, rollback_target
    from ml_platform.resources import default_resources

    spec = _spec(use_case)
    # what the job would refuse is refused here, in one line and before any run exists (ValueError: exit 2)
    mlflow = default_resources()["mlflow"]
    if action == "rollback":
        promotable_version(mlflow, spec.name, rollback_target(mlflow, spec.name, config["to_version"] or None))
    else:
        promotable_version(mlflow, spec.name, config["version"])
    op_name = f"{spec.name}__{action}_champion"
    run_config = {"ops": {op_name: {"config": {**config, "requested_by": f"{getpass.getuser()} (ml-platform {action})"}}}}
    # built now, not the module-level `defs`: resources read the environment (data dir, alert sinks) when built
    result = build_definitions(load_specs()).get_job_def(f"{spec.name}_{action}").execute_in_process(
        run_config=run_config, instance=_instance(), raise_on_error=False
    )
    if not result.success:
        failure = result.failure_data_for_node(op_name)
        print(f"ml-platform {action}: {failure.error.message.strip() if failure else 'run failed'}", file=sys.stderr)
        return 1
    [event] = result.asset_materializations_for_node(op_name)
    metadata = {name: value.value for name, value in event.metadata.items()}
    print(f"{spec.name}: champion is now version {metadata['champion_version']} (was {metadata['previous_champion']}); "
          f"the new-champion sensor rescores the last {spec.schedule.rescore_days} days (run {result.run_id[:8]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
