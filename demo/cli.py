"""`python -m demo` (from the repository root): land synthetic data of a shipped use case, run the whole demo on
it, or serve the Dagster and MLflow UIs (`make ui`)."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections import Counter
from pathlib import Path

from ml_platform.cli import local_instance, positive_int, summary, use_case_spec
from ml_platform.settings import Settings

PROG = "python -m demo"  # run from the repository root: the demo is not in the platform's wheel


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="land synthetic daily event files of a shipped use case")
    _add_data_arguments(generate)

    run = commands.add_parser("run", help="generate data, backfill, train, gate, promote, predict, summarise")
    _add_data_arguments(run)

    ui = commands.add_parser("ui", help="`make ui`: the Dagster UI (dg dev) and the MLflow UI beside it, until Ctrl-C")
    ui.add_argument("--host", default="127.0.0.1", help="the Dagster UI's host (default 127.0.0.1)")
    ui.add_argument("--port", type=positive_int, default=3000, help="the Dagster UI's port (default 3000)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # MLflow's INFO lines (store creation) are noise here
    try:
        if args.command == "generate":
            paths = _generate(args)
            print(f"landed {len(paths)} new file(s) in {_landing_dir(args.use_case)}")
        elif args.command == "run":
            return _demo(args)
        elif args.command == "ui":
            from demo import ui

            return ui.serve(args.host, args.port)
    except (ValueError, FileNotFoundError) as error:
        print(f"{PROG} {args.command}: {error}", file=sys.stderr)
        return 2
    return 0


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--use-case", default="churn", help="a shipped use case: churn, fraud or prices (default churn)"
    )
    parser.add_argument("--days", type=positive_int, default=60, help="number of days (default 60)")
    parser.add_argument(
        "--events-per-day", type=positive_int, default=5_000, help="events per day (for prices: the number of series)"
    )
    parser.add_argument("--end", type=_iso_date, default=None, help="last day, YYYY-MM-DD (default: yesterday, UTC)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (default 0)")
    parser.add_argument("--format", choices=["parquet", "csv"], default=None, help="default: the spec's source format")


def _iso_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got '{text}'") from None


def _landing_dir(use_case: str) -> Path:
    from ml_platform.resources.sources import EventSource

    return EventSource(data_dir=str(Settings.from_env().data_dir)).landing_dir(use_case_spec(use_case).source)


def _days(args: argparse.Namespace) -> list[str]:
    end = args.end or (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1))
    start = end - dt.timedelta(days=args.days - 1)
    return [(start + dt.timedelta(days=i)).isoformat() for i in range(args.days)]


def _generate(args: argparse.Namespace) -> list[Path]:
    from demo.generators import generators
    from demo.landing import land_days

    spec = use_case_spec(args.use_case)
    if spec.source.kind != "files":
        raise ValueError(f"use case '{spec.name}' reads from {spec.source.kind}; generate lands files only")
    generate = generators().get(spec.name)
    if generate is None:
        raise ValueError(
            f"no synthetic data generator for '{spec.name}'; land your own files in {_landing_dir(spec.name)}"
        )
    days = _days(args)
    if dt.date.fromisoformat(days[0]) < spec.start_date:
        raise ValueError(f"first day {days[0]} is before the spec's start_date {spec.start_date}")
    frames = generate(dt.date.fromisoformat(days[0]), args.days, args.events_per_day, args.seed)
    return land_days(_landing_dir(spec.name), frames, args.format or spec.source.format)


def _demo(args: argparse.Namespace) -> int:
    from ml_platform.definitions import defs
    from ml_platform.runner import DAILY_STAGES, MONITORING_STAGES, TRAINING_STAGES
    from ml_platform.stage_runs import run_stages

    spec = use_case_spec(args.use_case)
    landed = _generate(args)
    days = _days(args)
    print(f"[1/4] data: {len(landed)} new day file(s) landed in {_landing_dir(spec.name)} ({days[0]}..{days[-1]})")
    instance = local_instance()
    checks: Counter[tuple[str, bool]] = Counter()

    def run(label: str, stages: tuple[str, ...] | list[str], run_days: list[str] | None) -> bool:
        result = run_stages(defs, spec, label, stages, instance, run_days)
        checks.update(result.checks)
        print(f"{label}: {'ok' if result.success else 'FAILED'} (run {result.run_id[:8]})")
        return result.success

    ingested = run(f"[2/4] range backfill of {len(days)} days, raw_events -> features", list(DAILY_STAGES[:2]), days)
    trained = run("[3/4] training_set -> model (gated) -> champion", TRAINING_STAGES, None)
    predicted = run(
        f"[4/4] predictions and drift for {len(days)} days with the champion",
        [DAILY_STAGES[2], *MONITORING_STAGES],
        days,
    )
    # one registered version after one training: every day is stored empty, noting there is no version to shadow
    shadowed = run(
        f"[4/4] shadow predictions for {len(days)} days (non-champion versions)", ["shadow_predictions"], days
    )
    measured = run(
        f"[4/4] performance for {len(days)} days: estimated from the scores, realized where labels matured",
        ["performance"],
        days,
    )
    print()
    print(summary(spec.name, instance, checks))
    return 0 if ingested and trained and predicted and shadowed and measured else 1


if __name__ == "__main__":
    sys.exit(main())
