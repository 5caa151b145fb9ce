"""Landed file -> that day's predictions recorded, through the shipped sensor settings.

A churn champion is trained in-process on history that is already in the lake; then a real
`dagster-daemon` + `dagster-webserver` (automation running, no interval override: what `make ui`
ships) watch the landing directory while the benchmark lands the newest days one at a time, each
with an atomic rename as a real feed does, and waits for that day's predictions materialization.
Latency = the materialization's event-log timestamp minus the rename. Prints a table and writes JSON.

    .venv/bin/python benchmarks/sensor_latency.py --days 5 --events-per-day 100000 \\
        --json benchmarks/results/sensor_latency.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
SEED = 7


def prepare(data_dir: Path, history: list[str], events_per_day: int) -> None:
    """History landed, ingested, featurized, and a champion trained on it (throwaway instance)."""
    import dagster as dg

    from demo.generators.churn import write_landing_files
    from ml_platform.definitions import build_definitions, load_specs
    from ml_platform.runner import DAILY_STAGES, TRAINING_STAGES, materialize_stages

    spec = next(s for s in load_specs() if s.name == "churn")
    write_landing_files(
        data_dir / "landing" / "churn", dt.date.fromisoformat(history[0]), len(history), events_per_day, SEED
    )
    defs = build_definitions(load_specs())
    with dg.DagsterInstance.ephemeral() as instance:
        for stages, days in ((DAILY_STAGES[:2], history), (TRAINING_STAGES, None)):
            if not materialize_stages(defs, spec, stages, instance, days, log_level="ERROR").success:
                raise SystemExit(f"setup failed at {stages}")


def measure(
    data_dir: Path, home: Path, new_days: list[str], events_per_day: int, timeout: float
) -> list[dict[str, Any]]:
    import dagster as dg

    from demo.generators.churn import write_landing_files
    from ml_platform.assets import keys
    from ml_platform.definitions import load_specs
    from ml_platform_tests.support.servers import dagster_servers, open_instance, prepare_dagster_home

    spec = next(s for s in load_specs() if s.name == "churn")
    staging, landing = data_dir / "staging", data_dir / "landing" / "churn"
    files = write_landing_files(staging, dt.date.fromisoformat(new_days[0]), len(new_days), events_per_day, SEED + 1)
    prepare_dagster_home(home)
    results = []
    environment = {"ML_PLATFORM_DATA_DIR": str(data_dir), "ML_PLATFORM_AUTOMATION": "running"}
    with dagster_servers(home, environment, wait_for_daemon=True) as servers, open_instance(home) as instance:
        time.sleep(15)  # the sensor's first tick adopts the history already in the lake
        for path in sorted(files):
            day = path.stem
            landed_at = time.time()
            os.replace(path, landing / path.name)
            deadline = time.monotonic() + timeout
            while True:
                records = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=keys.predictions(spec), asset_partitions=[day]), limit=1
                ).records
                if records:
                    break
                servers.assert_alive()
                if time.monotonic() > deadline:
                    raise SystemExit(f"{day}: no predictions after {timeout} s\n{servers.logs(60)}")
                time.sleep(0.2)
            latency = records[0].timestamp - landed_at
            phases = _phases(instance, records[0].event_log_entry.run_id, landed_at, records[0].timestamp)
            results.append({"day": day, "latency_s": round(latency, 2), **phases})
            print(
                f"      {day}: predictions recorded {latency:.1f} s after the file landed "
                f"({', '.join(f'{name} {seconds:.1f} s' for name, seconds in phases.items())})",
                flush=True,
            )
            time.sleep(3)  # let the run finish its drift step before the next day lands
    return results


def _phases(instance: Any, run_id: str, landed_at: float, recorded_at: float) -> dict[str, float]:
    """Where the latency went: until the sensor's tick created the run, in the queue, starting the run
    worker (process + code-location import), and the steps up to the predictions materialization."""
    import dagster as dg

    record = instance.get_run_record_by_id(run_id)
    starting = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_STARTING)
    started = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_START)
    moments = [landed_at, record.create_timestamp.timestamp(), starting[0].timestamp, started[0].timestamp, recorded_at]
    names = ["until_run_created_s", "queued_s", "worker_start_s", "steps_s"]
    return {name: round(end - begin, 2) for name, (begin, end) in zip(names, itertools.pairwise(moments), strict=True)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=5, help="newest days landed one at a time (default 5)")
    parser.add_argument("--events-per-day", type=int, default=100_000)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    for variable in (
        "ML_PLATFORM_LAKE",
        "MLFLOW_TRACKING_URI",
        "ML_PLATFORM_SPECS_DIR",
        "ML_PLATFORM_ENV",
        "ML_PLATFORM_SENSOR_INTERVAL",
        "ML_PLATFORM_MODEL_CACHE",
        "ML_PLATFORM_ALERT_WEBHOOK",
    ):
        os.environ.pop(variable, None)

    from ml_platform.definitions import load_specs
    from ml_platform.factory import daily_partitions

    spec = next(s for s in load_specs() if s.name == "churn")
    last = dt.date.fromisoformat(daily_partitions(spec).get_last_partition_key())
    every = [(last - dt.timedelta(days=i)).isoformat() for i in range(56 + args.days)][::-1]
    history, new_days = every[: -args.days], every[-args.days :]
    workdir = Path(tempfile.mkdtemp(prefix="ml-platform-latency-"))
    os.environ["ML_PLATFORM_DATA_DIR"] = str(workdir / "data")
    print(
        f"[1/2] history {history[0]}..{history[-1]} x {args.events_per_day:,} events, champion trained in-process",
        flush=True,
    )
    prepare(workdir / "data", history, args.events_per_day)
    print(
        f"[2/2] landing {new_days[0]}..{new_days[-1]} one at a time, daemon + webserver with the shipped settings",
        flush=True,
    )
    results = measure(workdir / "data", workdir / "dagster_home", new_days, args.events_per_day, args.timeout)
    latencies = [r["latency_s"] for r in results]
    summary = {
        "days": results,
        "p50_s": round(statistics.median(latencies), 2),
        "max_s": max(latencies),
        "events_per_day": args.events_per_day,
    }
    print(
        f"\nlanded file -> predictions recorded over {len(latencies)} days: p50 {summary['p50_s']} s, max "
        f"{summary['max_s']} s"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
