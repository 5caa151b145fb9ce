"""Dagster's own cost inside a range run, counted directly: a step against the same steps called bare.

The UI backfill benchmark (`backfill.py`) measures in-run orchestration as run time minus a pure-compute
process's time, which carries seconds of run-to-run noise at 1M events/day. This one runs, in ONE
process on the same landed files, each stage of churn twice for the same days:

1. as Dagster runs it: `materialize` of the stage's asset over the range (one run, the platform's
   event log on SQLite or on a fresh Postgres database, durable commits), timed from the step's
   STEP_START to STEP_SUCCESS in its event log;
2. bare: the same `ml_platform/steps.py` generator the asset calls, writing each passed day to a
   separate lake.

A bare pass over two of the days first pays the stage's first-use costs (lazy imports, the allocator
growing, the page cache) outside both timings; then the Dagster run, then the bare one. raw_events runs
over the lookback days too (the features' windows need them); features over `--days`.

    .venv/bin/python benchmarks/in_run.py --days 60 --events-per-day 1000000 --json benchmarks/results/in_run.json

Prints a table (per stage: step, bare, difference per partition, evaluations per partition) and writes JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

FIRST_DAY = dt.date(2026, 1, 1)
SEED = 5


@contextlib.contextmanager
def instance_for(kind: str, home: Path) -> Iterator[Any]:
    """A Dagster instance with the shipped event log: SQLite under `home`, or Postgres on a fresh database."""
    import dagster as dg
    import yaml

    from ml_platform_tests.support import postgres

    shipped = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    with postgres.scratch_database("ml_platform_in_run") if kind == "postgres" else contextlib.nullcontext() as url:
        storage = (
            postgres.postgres_instance_storage(url, durable_commits=True)
            if url is not None
            else {"event_log_storage": {**shipped["event_log_storage"], "config": {"base_dir": str(home / "runs")}}}
        )
        home.mkdir(parents=True, exist_ok=True)
        (home / "dagster.yaml").write_text(
            yaml.safe_dump({**storage, "python_logs": shipped["python_logs"], "telemetry": {"enabled": False}})
        )
        instance = dg.DagsterInstance.from_config(str(home))
        try:
            yield instance
        finally:
            instance.dispose()


def step_seconds(instance: Any, run_id: str) -> float:
    phases = {
        entry.dagster_event.event_type_value: entry.timestamp
        for entry in instance.all_logs(run_id)
        if entry.dagster_event and entry.dagster_event.event_type_value in ("STEP_START", "STEP_SUCCESS")
    }
    return phases["STEP_SUCCESS"] - phases["STEP_START"]


def bare_seconds(stage: str, spec: Any, days: list[str], data_dir: Path, lake_path: Path) -> float:
    """The stage's steps generator over `days`, writing passed days to `lake_path` (raw read from there too)."""
    from ml_platform import steps
    from ml_platform.assets import keys
    from ml_platform.io.parquet_lake import DataLake
    from ml_platform.resources.sources import EventSource

    lake = DataLake(base_path=str(lake_path))
    started = time.perf_counter()
    if stage == "raw_events":
        results, key = steps.ingest(EventSource(data_dir=str(data_dir)), spec, days), keys.raw_events(spec)
    else:
        results = steps.build_features(lake, keys.raw_events(spec), spec, days, steps.DEFAULT_CHUNK_DAYS)
        key = keys.features(spec)
    for result in results:
        if result.passed and result.has_data:
            steps.store_day(lake, key, result)
    return time.perf_counter() - started


def measure(kind: str, spec: Any, stage_days: dict[str, list[str]], workdir: Path) -> list[dict[str, Any]]:
    import dagster as dg

    from ml_platform.definitions import build_definitions, load_specs
    from ml_platform.runner import materialize_stages

    defs = build_definitions(load_specs())
    rows = []
    with instance_for(kind, workdir / f"home_{kind}") as instance:
        for stage, days in stage_days.items():
            # first use of the stage's code (imports, allocator, page cache) paid outside both timings
            bare_seconds(stage, spec, days[-2:], workdir / "data", workdir / f"warm_lake_{kind}")
            result = materialize_stages(defs, spec, [stage], instance, days, log_level="INFO")
            if not result.success:
                raise SystemExit(f"{kind} {stage}: the run failed")
            step = step_seconds(instance, result.run_id)
            bare = bare_seconds(stage, spec, days, workdir / "data", workdir / f"bare_lake_{kind}")
            evaluations = len(
                instance.get_records_for_run(
                    result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, limit=100_000
                ).records
            )
            rows.append(
                {
                    "instance": kind,
                    "stage": stage,
                    "partitions": len(days),
                    "step_s": round(step, 2),
                    "bare_s": round(bare, 2),
                    "per_partition_ms": round(1000 * (step - bare) / len(days), 1),
                    "evaluations_per_partition": evaluations / len(days),
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=30, help="feature days (raw_events also covers their lookback)")
    parser.add_argument("--events-per-day", type=int, default=1_000_000)
    parser.add_argument("--instance", choices=["sqlite", "postgres"], nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.days < 1 or args.events_per_day < 1:
        parser.error("--days and --events-per-day must be positive")

    workdir = Path(tempfile.mkdtemp(prefix="ml-platform-in-run-"))
    os.environ["ML_PLATFORM_DATA_DIR"] = str(workdir / "data")
    for variable in ("ML_PLATFORM_LAKE", "MLFLOW_TRACKING_URI", "ML_PLATFORM_SPECS_DIR", "ML_PLATFORM_SOURCE_DSN"):
        os.environ.pop(variable, None)
    try:
        from demo.generators.churn import write_landing_files
        from ml_platform.definitions import load_specs

        spec = next(s for s in load_specs() if s.name == "churn")
        landed = [(FIRST_DAY + dt.timedelta(days=i)).isoformat() for i in range(spec.lookback_days - 1 + args.days)]
        write_landing_files(workdir / "data" / "landing" / spec.name, FIRST_DAY, len(landed), args.events_per_day, SEED)
        stage_days = {"raw_events": landed, "features": landed[spec.lookback_days - 1 :]}
        rows: list[dict[str, Any]] = []
        print(f"{'instance':<9}{'stage':<12}{'days':>5}{'step':>9}{'bare':>9}{'per day':>10}{'evals/day':>10}")
        for kind in args.instance:
            shutil.rmtree(workdir / "data" / "lake", ignore_errors=True)  # each instance computes every day afresh
            for row in measure(kind, spec, stage_days, workdir):
                rows.append(row)
                print(
                    f"{row['instance']:<9}{row['stage']:<12}{row['partitions']:>5}{row['step_s']:>8.2f}s"
                    f"{row['bare_s']:>8.2f}s{row['per_partition_ms']:>8.1f}ms{row['evaluations_per_partition']:>10.0f}",
                    flush=True,
                )
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(
                json.dumps(
                    {
                        "days": args.days,
                        "events_per_day": args.events_per_day,
                        "rows": rows,
                        "machine": {
                            "cpus": os.cpu_count(),
                            "python": platform.python_version(),
                            "platform": platform.platform(),
                        },
                        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    },
                    indent=2,
                )
                + "\n"
            )
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
