"""What one partitioned check evaluation costs to store: Dagster's event logs against the platform's.

A range run's gates record one `AssetCheckEvaluation` per day and check (13 a day for churn), each
stored through `DagsterInstance.handle_new_event` as the run worker stores it. This benchmark plans
the checks for `--partitions` days in one run, then stores every evaluation and times each store, then the
run's next event (a step's end), which writes what a storage held; `each` is the total over the evaluations.
Each storage twice: evaluations recorded outside a step (stored one by one everywhere), and by a step, as a
gate's are (the platform's Postgres log holds those until the run's next event), on:

- `sqlite-dagster`: Dagster's `SqliteEventLogStorage` (what dagster.yaml used before ml_platform/storage);
- `sqlite-platform`: `ml_platform.storage.sqlite.PooledSqliteEventLogStorage` as the repo's dagster.yaml ships it;
- `postgres-dagster` / `postgres-platform`: Dagster's `PostgresEventLogStorage` and the platform's pooled one,
  each on a fresh database of the server at ML_PLATFORM_TEST_POSTGRES_URL (default 127.0.0.1:5432, durable
  commits), dropped afterwards.

    .venv/bin/python benchmarks/event_log.py --partitions 60 --json benchmarks/results/event_log.json

Prints a table (median / p90 per store, the next event, total and per evaluation, per storage) and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

CHECKS_PER_DAY = 13  # churn: eight raw gates, four feature gates, one predictions gate
STORAGES = ("sqlite-dagster", "sqlite-platform", "postgres-dagster", "postgres-platform")
DAGSTER_CLASSES = {
    "sqlite": (
        "dagster.core.storage.event_log",
        "SqliteEventLogStorage",
    ),  # as Dagster's dagster.yaml reference names it
    "postgres": ("dagster_postgres.event_log", "PostgresEventLogStorage"),
}


@contextmanager
def event_log_config(storage: str, home: Path) -> Iterator[dict[str, Any]]:
    """The `event_log_storage` block for one storage (a fresh Postgres database for the Postgres ones)."""
    import yaml

    kind, flavour = storage.split("-")
    if kind == "sqlite":
        shipped = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())["event_log_storage"]
        module, cls = DAGSTER_CLASSES["sqlite"] if flavour == "dagster" else (shipped["module"], shipped["class"])
        yield {"module": module, "class": cls, "config": {"base_dir": str(home / "history" / "runs")}}
        return
    from ml_platform_tests.support import postgres

    with postgres.scratch_database("ml_platform_event_log_bench") as url:
        block = postgres.postgres_instance_storage(url, durable_commits=True)["event_log_storage"]
        if flavour == "dagster":
            block = {**block, "module": DAGSTER_CLASSES["postgres"][0], "class": DAGSTER_CLASSES["postgres"][1]}
        yield block


def store_evaluations(instance: Any, partitions: list[str], step_key: str | None) -> tuple[list[float], float]:
    """Plan the checks for every partition in one run, then store each evaluation, then the run's next event (as
    a step's end follows its gate); seconds per store, and the seconds of that next event, which writes the
    evaluations a storage held (the platform's Postgres one holds a run's evaluations until then)."""
    import dagster as dg
    from dagster import DagsterEvent, DagsterEventType

    from ml_platform.dagster_internals import AssetCheckEvaluationPlanned

    run = instance.create_run_for_job(dg.GraphDefinition("gates").to_job())
    asset_key = dg.AssetKey(["churn", "raw_events"])
    subset = dg.StaticPartitionsDefinition(partitions).empty_subset().with_partition_keys(partitions)

    def store(event_type: DagsterEventType, data: Any) -> None:
        event = DagsterEvent(event_type.value, run.job_name, event_specific_data=data, step_key=step_key)
        instance.handle_new_event(
            dg.EventLogEntry(
                user_message="",
                level=10,
                job_name=run.job_name,
                run_id=run.run_id,
                step_key=step_key,
                error_info=None,
                timestamp=time.time(),
                dagster_event=event,
            )
        )

    checks = [f"check_{number}" for number in range(CHECKS_PER_DAY)]
    for check in checks:
        store(
            DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED,
            AssetCheckEvaluationPlanned(asset_key=asset_key, check_name=check, partitions_subset=subset),
        )
    seconds = []
    for partition in partitions:
        for check in checks:
            evaluation = dg.AssetCheckEvaluation(
                asset_key=asset_key,
                check_name=check,
                passed=True,
                partition=partition,
                metadata={"observed": dg.MetadataValue.int(1000), "limit": dg.MetadataValue.int(10)},
            )
            started = time.perf_counter()
            store(DagsterEventType.ASSET_CHECK_EVALUATION, evaluation)
            seconds.append(time.perf_counter() - started)
    started = time.perf_counter()
    instance.report_engine_event("the gate's step ends", run)
    return seconds, time.perf_counter() - started


def measure(storage: str, partitions: list[str], step_key: str | None) -> dict[str, Any]:
    import dagster as dg
    import yaml

    with tempfile.TemporaryDirectory() as tmp, event_log_config(storage, Path(tmp)) as block:
        home = Path(tmp)
        (home / "dagster.yaml").write_text(
            yaml.safe_dump({"event_log_storage": block, "telemetry": {"enabled": False}})
        )
        instance = dg.DagsterInstance.from_config(str(home))
        try:
            seconds, next_event = store_evaluations(instance, partitions, step_key)
        finally:
            instance.dispose()
    seconds.sort()
    total = sum(seconds) + next_event
    return {
        "storage": storage,
        "recorded": "by a step" if step_key else "outside a step",
        "evaluations": len(seconds),
        "median_ms": 1000 * statistics.median(seconds),
        "p90_ms": 1000 * seconds[int(0.9 * (len(seconds) - 1))],
        "next_event_ms": 1000 * next_event,  # the run's next event, which writes what a storage held
        "total_s": total,  # every store and that next event
        "per_evaluation_ms": 1000 * total / len(seconds),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partitions", type=int, default=60, help="days of evaluations in the run (default 60)")
    parser.add_argument("--storage", choices=STORAGES, nargs="+", default=list(STORAGES))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.partitions < 1:
        parser.error("--partitions must be positive")
    partitions = [f"day-{number:04d}" for number in range(args.partitions)]
    rows = []
    print(
        f"{'storage':<18} {'recorded':<15} {'evaluations':>11} {'median':>9} {'p90':>9} {'next event':>11} "
        f"{'total':>8} {'each':>9}"
    )
    for storage, step_key in [(storage, key) for storage in args.storage for key in (None, "gate")]:
        row = measure(storage, partitions, step_key)
        rows.append(row)
        print(
            f"{storage:<18} {row['recorded']:<15} {row['evaluations']:>11} {row['median_ms']:>7.2f}ms "
            f"{row['p90_ms']:>7.2f}ms {row['next_event_ms']:>9.1f}ms {row['total_s']:>7.2f}s "
            f"{row['per_evaluation_ms']:>7.2f}ms",
            flush=True,
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "partitions": args.partitions,
                    "checks_per_day": CHECKS_PER_DAY,
                    "rows": rows,
                    "machine": {
                        "cpus": __import__("os").cpu_count(),
                        "python": platform.python_version(),
                        "platform": platform.platform(),
                    },
                    "date": time.strftime("%Y-%m-%d"),
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
