"""`ml-platform`: run a use case's stages, summarise, roll back or promote a champion, serve metrics,
start a new use case. Every command works on $DAGSTER_HOME's instance (default ./.dagster_home), as the UI.

The demo and its synthetic data are not part of the platform: `python -m demo` from the checkout (package `demo`,
not in the wheel)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from ml_platform import settings

if TYPE_CHECKING:  # imported where used: --help stays fast
    import dagster as dg

    from ml_platform.spec import UseCaseSpec


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ml-platform", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    _add_run_commands(commands)
    summarise = commands.add_parser("summary", help="what is materialized, checked and promoted")
    summarise.add_argument("--use-case", default="churn", help="which use case (default churn)")

    rollback = commands.add_parser("rollback", help="make the previous champion (or --to VERSION) the champion again")
    rollback.add_argument("use_case", help="the use case whose champion goes back, e.g. churn")
    rollback.add_argument(
        "--to", type=positive_int, default=None, help="a registered version that passed its gates or was champion"
    )
    rollback.add_argument("--reason", default="manual rollback from the command line", help="recorded on the version")

    promote = commands.add_parser("promote", help="force a registered version to champion past its gates (audited)")
    promote.add_argument("use_case", help="the use case whose champion changes, e.g. churn")
    promote.add_argument("version", type=positive_int, help="the registered MLflow version to make champion")
    promote.add_argument("--reason", required=True, help="why the gates are overridden; recorded on the version")

    metrics = commands.add_parser(
        "metrics", help="serve Prometheus metrics of runs, partitions, gates, champions, drift"
    )
    metrics.add_argument("--port", type=positive_int, default=9108, help="port to serve /metrics on (default 9108)")
    metrics.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 for all)")

    scaffold = commands.add_parser("new-use-case", help="write a commented spec to start your own use case from")
    scaffold.add_argument("name", help="lower_snake_case name, also the asset-key prefix")
    scaffold.add_argument(
        "--dir", type=Path, default=None, help="where to write NAME.yaml (default: $ML_PLATFORM_SPECS_DIR or ./specs)"
    )
    scaffold.add_argument(
        "--from-data",
        type=Path,
        default=None,
        metavar="DIR",
        help="draft the spec from the day files in DIR (inside $ML_PLATFORM_DATA_DIR) instead of a template",
    )
    scaffold.add_argument(
        "--label",
        default=None,
        help="with --from-data: the outcome column, 0/1 or two strings (default: the only such column)",
    )
    scaffold.add_argument(
        "--positive",
        default=None,
        help="with --from-data and a string label: the value that means 1 (default: the yes-like one)",
    )
    scaffold.add_argument(
        "--timestamp", default=None, help="with --from-data: the event time column (default: the only one)"
    )
    scaffold.add_argument(
        "--entity", default=None, help="with --from-data: whose history becomes features (default: guessed)"
    )

    return parser


def _add_run_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The commands that run a use case: its stages from a shell, and the online scoring service."""
    materialize = commands.add_parser(
        "materialize", help="ingest, compute features, score: daily stages over a day range"
    )
    materialize.add_argument("use_case", help="the use case, e.g. churn")
    materialize.add_argument(
        "--stages",
        type=stage_list,
        default=["raw_events", "features"],
        help=f"comma-separated, in order, from {','.join(RANGE_STAGES)} (default raw_events,features)",
    )
    materialize.add_argument(
        "--from", dest="first", type=iso_day, default=None, help="first day YYYY-MM-DD (default: the source's first)"
    )
    materialize.add_argument(
        "--to", dest="last", type=iso_day, default=None, help="last day YYYY-MM-DD (default: the source's last)"
    )

    train = commands.add_parser("train", help="training set -> challenger (gated) -> champion if it passes")
    train.add_argument("use_case", help="the use case, e.g. churn")

    predict = commands.add_parser("predict", help="score the newest feature days with the champion and measure drift")
    predict.add_argument("use_case", help="the use case, e.g. churn")
    predict.add_argument("--days", type=positive_int, default=1, help="how many of the newest feature days (default 1)")
    for command in (materialize, train, predict):
        _add_where_options(command)

    serve = commands.add_parser(
        "serve", help="score rows online with the current champion (HTTP: /score, /health, /ready, /metrics)"
    )
    serve.add_argument("use_case", help="the use case, e.g. churn")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 for all)")
    serve.add_argument("--port", type=positive_int, default=8080, help="port (default 8080)")
    serve.add_argument(
        "--refresh-seconds",
        type=positive_int,
        default=5,
        help="how often to ask the registry who is champion (default 5): promotions need no restart",
    )
    serve.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help=f"gunicorn worker processes, each with the champion loaded (default {settings.SERVE_WORKERS_ENV} or 2)",
    )
    serve.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help=f"threads per worker: its concurrent requests, batched (default {settings.SERVE_THREADS_ENV} or 16)",
    )


def _add_where_options(command: argparse.ArgumentParser) -> None:
    """Where a run executes (ml_platform/stage_commands.py): by default submitted when the instance's daemon serves
    its run queue, else in this process."""
    where = command.add_mutually_exclusive_group()
    where.add_argument("--in-process", action="store_true", help="execute in this process even if a daemon is running")
    where.add_argument(
        "--submit",
        action="store_true",
        help="submit to the instance's run queue (its daemon launches the run); fail if no daemon serves it",
    )
    where.add_argument(
        "--url",
        default=None,
        metavar="URL",
        help="submit to the deployment whose dagster-webserver answers at URL (e.g. http://localhost:3000) "
        "and follow the run through its GraphQL",
    )
    command.add_argument(
        "--workspace",
        default="workspace.yaml",
        metavar="PATH",
        help="the workspace.yaml a run submitted to the instance is created from (default ./workspace.yaml)",
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # MLflow's INFO lines (store creation) are noise here
    try:
        if args.command in ("materialize", "train", "predict"):
            from ml_platform.stage_commands import run_command

            return run_command(args, use_case_spec(args.use_case), local_instance())
        if args.command == "serve":
            from ml_platform.resources import default_resources
            from ml_platform.serving import serve

            served = settings.Settings.from_env().serve
            served = dataclasses.replace(
                served, workers=args.workers or served.workers, threads=args.threads or served.threads
            )
            serve(
                use_case_spec(args.use_case),
                default_resources()["mlflow"],
                args.host,
                args.port,
                args.refresh_seconds,
                served,
            )
        elif args.command == "summary":
            print(summary(args.use_case))
        elif args.command == "rollback":
            return _change_champion(
                args.use_case, "rollback", {"to_version": str(args.to or ""), "reason": args.reason}
            )
        elif args.command == "promote":
            return _change_champion(args.use_case, "promote", {"version": str(args.version), "reason": args.reason})
        elif args.command == "metrics":
            from ml_platform.metrics_exporter import serve as serve_metrics

            local_instance()  # DAGSTER_HOME defaults to ./.dagster_home, as for the demo
            serve_metrics(args.port, args.host)
        elif args.command == "new-use-case":
            from ml_platform.scaffold import write_scaffold
            from ml_platform.spec_draft import write_drafted_spec

            config = settings.Settings.from_env()
            target = args.dir or config.user_specs_dir or Path("specs")
            if args.from_data is not None:
                path = write_drafted_spec(
                    args.name,
                    args.from_data,
                    config.data_dir,
                    target,
                    label=args.label,
                    timestamp=args.timestamp,
                    entity=args.entity,
                    positive=args.positive,
                )
            else:
                path = write_scaffold(args.name, target)
            print(
                f"wrote {path}; edit it, then: export {settings.SPECS_DIR_ENV}={path.parent.resolve()} && make validate"
            )
    except (ValueError, FileNotFoundError) as error:
        print(f"ml-platform {args.command}: {error}", file=sys.stderr)
        return 2
    return 0


RANGE_STAGES = ("raw_events", "features", "predictions", "drift")


def stage_list(text: str) -> list[str]:
    stages = [stage.strip() for stage in text.split(",") if stage.strip()]
    unknown = [stage for stage in stages if stage not in RANGE_STAGES]
    if not stages or unknown:
        raise argparse.ArgumentTypeError(f"expected stages from {','.join(RANGE_STAGES)}, got '{text}'")
    return sorted(stages, key=RANGE_STAGES.index)


def iso_day(text: str) -> str:
    import datetime as dt

    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a day as YYYY-MM-DD, got '{text}'") from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def use_case_spec(name: str) -> UseCaseSpec:
    from ml_platform.definitions import load_specs

    specs = {spec.name: spec for spec in load_specs()}
    if name not in specs:
        raise ValueError(f"unknown use case '{name}', expected one of {sorted(specs)}")
    return specs[name]


def local_instance() -> dg.DagsterInstance:
    """The Dagster instance of $DAGSTER_HOME (default ./.dagster_home, created if missing)."""
    import dagster as dg

    os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster_home").resolve()))
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.get()


def summary(
    use_case: str, instance: dg.DagsterInstance | None = None, checks: Counter[tuple[str, str]] | None = None
) -> str:
    """What is materialized, checked (the given check counts, as the demo collects them) and promoted; a gate's
    days that failed are listed apart from the days it only warned about."""
    from ml_platform.assets import keys
    from ml_platform.assets.performance import performance_summary
    from ml_platform.assets.shadow import shadow_summary
    from ml_platform.resources import default_resources
    from ml_platform.resources.mlflow_resource import CHAMPION, PREVIOUS_CHAMPION

    spec = use_case_spec(use_case)
    instance = instance or local_instance()
    lines = [f"== {spec.name} summary (Dagster home {instance.root_directory}) =="]
    stage_keys = [keys.of_stage(spec, stage) for stage in ("raw_events", "features", "predictions", "drift")]
    width = max(len(key.to_user_string()) for key in stage_keys)
    for key in stage_keys:
        partitions = sorted(instance.get_materialized_partitions(key))
        span = f"{partitions[0]}..{partitions[-1]}" if partitions else "-"
        lines.append(f"  {key.to_user_string():<{width}} {len(partitions):>4} partitions materialized  {span}")
    if checks:  # (asset:check, passed | warned | failed) -> evaluations
        counts = []
        for outcome in ("passed", "warned", "failed"):
            names = sorted({name for name, o in checks if o == outcome}) if outcome != "passed" else []
            counts.append(
                f"{sum(n for (_, o), n in checks.items() if o == outcome)} {outcome}" + (f" {names}" if names else "")
            )
        lines.append(f"  checks: {', '.join(counts)}")
    lines += _gate_days(spec, instance) + _failed_runs(spec, instance)
    resources = default_resources()
    mlflow = resources["mlflow"]
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
            lines.append(
                f"  since {tags['champion_since']}: {tags['champion_action']} by {tags['champion_by']}: "
                f"{tags['champion_reason']}"
            )
        lines.append(
            f"  previous champion: {previous.version if previous else 'none'}; "
            f"tracking {mlflow.resolved_tracking_uri()}"
        )
    return "\n".join(lines + performance_summary(resources["lake"], spec) + shadow_summary(instance, spec))


def _gate_days(spec: UseCaseSpec, instance: dg.DagsterInstance) -> list[str]:
    """Each gate's days whose latest evaluation failed, as the check Partitions tab counts them: failures
    (severity ERROR: the day was blocked) apart from warnings (WARN: the day went through)."""
    import dagster as dg

    from ml_platform.assets import keys
    from ml_platform.checks.rules import DRIFT_CHECK, FEATURE_CHECKS, PREDICTION_CHECKS, raw_checks
    from ml_platform.dagster_internals import AssetCheckExecutionRecordStatus

    gates = {
        keys.raw_events(spec): raw_checks(spec),
        keys.features(spec): FEATURE_CHECKS,
        keys.predictions(spec): PREDICTION_CHECKS,
        keys.drift(spec): [DRIFT_CHECK],
    }
    check_keys = [dg.AssetCheckKey(asset, name) for asset, names in gates.items() for name in names]
    failing: dict[dg.AssetCheckKey, set[str]] = {}
    for info in instance.event_log_storage.get_asset_check_partition_info(check_keys):
        failed_now = info.latest_execution_status == AssetCheckExecutionRecordStatus.FAILED and info.is_current
        if failed_now and info.partition_key is not None:
            failing.setdefault(info.check_key, set()).add(info.partition_key)
    failed: dict[dg.AssetCheckKey, dict[str, str]] = {}  # check -> {day: its latest reason}
    warned: dict[dg.AssetCheckKey, dict[str, str]] = {}
    for check_key, days in failing.items():
        for day, evaluation in _latest_failed_evaluations(instance, check_key, days).items():
            into = warned if evaluation.severity == dg.AssetCheckSeverity.WARN else failed
            into.setdefault(check_key, {})[day] = evaluation.description or ""
    lines = _gate_lines("failing gates (latest evaluation per day):", "", failed) or [
        "  gates: no day's latest evaluation failed"
    ]
    return lines + _gate_lines("warnings (latest evaluation per day; these days went through):", " warned", warned)


def _latest_failed_evaluations(
    instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, days: set[str]
) -> dict[str, dg.AssetCheckEvaluation]:
    """Each of `days`' latest failed evaluation of `check_key` (whose severity says whether it blocked or warned);
    the check's failed records are read newest first, a page at a time, until every day is found."""
    from ml_platform.dagster_internals import AssetCheckExecutionRecordStatus

    found: dict[str, dg.AssetCheckEvaluation] = {}
    cursor, page = None, 1_000
    while len(found) < len(days):
        records = instance.event_log_storage.get_asset_check_execution_history(
            check_key, limit=page, cursor=cursor, status={AssetCheckExecutionRecordStatus.FAILED}
        )
        for record in records:
            event = record.event.dagster_event if record.event else None
            if record.partition in days and record.partition not in found and event is not None:
                found[record.partition] = event.asset_check_evaluation_data
        if len(records) < page:
            break
        cursor = records[-1].id
    return found


def _gate_lines(title: str, verb: str, days_by_check: dict[dg.AssetCheckKey, dict[str, str]]) -> list[str]:
    """A titled line per check: how many days, the first three, and the latest day's reason."""
    if not days_by_check:
        return []
    lines = [f"  {title}"]
    for check_key, reasons in sorted(days_by_check.items(), key=lambda item: item[0].to_user_string()):
        days = sorted(reasons)
        shown = ", ".join(days[:3]) + (f" and {len(days) - 3} more" if len(days) > 3 else "")
        lines.append(
            f"    {check_key.to_user_string()}: {len(days)} day(s){verb} ({shown}); latest: {reasons[days[-1]]}"
        )
    return lines


def _failed_runs(spec: UseCaseSpec, instance: dg.DagsterInstance, limit: int = 5) -> list[str]:
    import dagster as dg

    failed = [
        run
        for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]), limit=50)
        if run.tags.get("ml_platform/use_case") == spec.name
        or any(key.path[0] == spec.name for key in run.asset_selection or ())
    ][:limit]
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

    spec = use_case_spec(use_case)
    # what the job would refuse is refused here, in one line and before any run exists (ValueError: exit 2)
    mlflow = default_resources()["mlflow"]
    if action == "rollback":
        promotable_version(mlflow, spec.name, rollback_target(mlflow, spec.name, config["to_version"] or None))
    else:
        promotable_version(mlflow, spec.name, config["version"])
    op_name = f"{spec.name}__{action}_champion"
    run_config = {
        "ops": {op_name: {"config": {**config, "requested_by": f"{getpass.getuser()} (ml-platform {action})"}}}
    }
    # built now, not the module-level `defs`: resources read the environment (data dir, alert sinks) when built
    result = (
        build_definitions(load_specs())
        .get_job_def(f"{spec.name}_{action}")
        .execute_in_process(run_config=run_config, instance=local_instance(), raise_on_error=False)
    )
    if not result.success:
        failure = result.failure_data_for_node(op_name)
        reason = failure.error.message.strip() if failure and failure.error else "run failed"
        print(f"ml-platform {action}: {reason}", file=sys.stderr)
        return 1
    [event] = result.asset_materializations_for_node(op_name)
    metadata = {name: value.value for name, value in event.metadata.items()}
    print(
        f"{spec.name}: champion is now version {metadata['champion_version']} (was {metadata['previous_champion']}); "
        f"the new-champion sensor rescores the last {spec.schedule.rescore_days} days (run {result.run_id[:8]})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
