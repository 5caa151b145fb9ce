"""Decades of daily partitions: the code location's load time, and a whole history backfilled in one run.

    python benchmarks/code_location.py --json benchmarks/results/code_location.json

1. Load time. Every run worker, code server and `dagster definitions validate` starts a fresh Python
   process that imports `ml_platform.definitions`; the code server then sends the repository's snapshot
   to the webserver. Each measurement is such a fresh process, timed from its start to its exit, with its
   phases measured inside it (import dagster; import the definitions: read the specs and build every
   asset, check, job and trigger; the repository and its snapshot). Configurations, interleaved round by
   round so a busy machine slows each alike: the shipped use cases alone, and with one more use case
   (the `ml-platform new-use-case` scaffold) of `--partitions` daily partitions (10,000: 27 years, from
   before 2000) and of partitions from 1900-01-01 (46,000+). `dagster definitions validate` is timed the
   same way for the first two.
2. Whole-history backfill. That use case with a few events a day for each of its `--partitions` days
   (generated CSV files), raw_events -> features for every day in one single run, in process on a
   DAGSTER_HOME with the repository's dagster.yaml (the platform's SQLite event log): wall time, time per
   partition, partitions materialized, peak RSS.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

NAME = "history"
EVENTS_PER_DAY = 4
EARLIEST = dt.date(1900, 1, 1)
# the phases inside the process (CPU; load: import dagster + the definitions), then the whole process and
# `dagster definitions validate` (wall, CPU); the JSON has each phase's wall time too
COLUMNS = (
    "import_dagster_cpu_s",
    "definitions_cpu_s",
    "load_cpu_s",
    "snapshot_cpu_s",
    "process_s",
    "process_cpu_s",
    "validate_s",
    "validate_cpu_s",
)
PHASES = ("import_dagster_s", "definitions_s", "snapshot_s")

# Runs in each fresh process: the phases of loading the code location, as JSON on the last line.
LOAD = """
import json, time
marks = [(time.perf_counter(), time.process_time())]
import dagster
marks.append((time.perf_counter(), time.process_time()))
from ml_platform.definitions import defs
marks.append((time.perf_counter(), time.process_time()))
from ml_platform.dagster_internals import RepositorySnap
snapshot = RepositorySnap.from_def(defs.get_repository_def())
marks.append((time.perf_counter(), time.process_time()))
phases = {}
for name, (start, end) in zip(("import_dagster", "definitions", "snapshot"), zip(marks, marks[1:])):
    phases[name + "_s"], phases[name + "_cpu_s"] = end[0] - start[0], end[1] - start[1]
print(json.dumps({**phases, "load_cpu_s": marks[2][1] - marks[0][1], "assets": len(snapshot.asset_nodes)}))
"""


def yesterday() -> dt.date:
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def history_specs(directory: Path, start: dt.date) -> Path:
    """`directory`, holding the scaffold use case with partitions from `start`."""
    from ml_platform_tests.support.long_history import write_history_spec

    write_history_spec(directory, NAME, start)
    return directory


def timed_process(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall and CPU seconds (user + system) of a fresh process, and its output. CPU time hardly depends on
    what else the machine runs; wall time does."""
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    done = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), done.stdout


def measure_loads(root: Path, partitions: int, rounds: int) -> dict[str, dict[str, Any]]:
    base = {k: v for k, v in os.environ.items() if k not in ("ML_PLATFORM_SPECS_DIR", "DAGSTER_HOME")}
    home = root / "home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    base.update(DAGSTER_HOME=str(home), ML_PLATFORM_DATA_DIR=str(root / "data"))
    configurations = {
        "shipped use cases": {},
        f"+ {partitions:,} daily partitions": {
            "ML_PLATFORM_SPECS_DIR": str(
                history_specs(root / "specs-long", yesterday() - dt.timedelta(days=partitions - 1))
            )
        },
        f"+ partitions from {EARLIEST}": {"ML_PLATFORM_SPECS_DIR": str(history_specs(root / "specs-1900", EARLIEST))},
    }
    validated = list(configurations)[:2]
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in configurations}
    for _ in range(rounds):
        for name, extra in configurations.items():
            env = {**base, **extra}
            wall, cpu, out = timed_process([sys.executable, "-c", LOAD], env)
            sample = {**json.loads(out.strip().splitlines()[-1]), "process_s": wall, "process_cpu_s": cpu}
            if name in validated:
                sample["validate_s"], sample["validate_cpu_s"], _ = timed_process(
                    [
                        str(REPO_ROOT / ".venv" / "bin" / "dagster"),
                        "definitions",
                        "validate",
                        "-w",
                        str(REPO_ROOT / "workspace.yaml"),
                    ],
                    env,
                )
            samples[name].append(sample)
    return {name: summarise(rows) for name, rows in samples.items()}


def summarise(rows: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {"assets": int(rows[0]["assets"]), "rounds": len(rows)}
    for key in (*COLUMNS, *PHASES):
        values = [row[key] for row in rows if key in row]
        if values:
            out[key] = {"median": round(statistics.median(values), 3), "min": round(min(values), 3)}
    return out


def backfill(root: Path, partitions: int) -> dict[str, Any]:
    """The whole history of a `partitions`-day use case, raw_events -> features, in one run."""
    from ml_platform_tests.support.long_history import days_from, land_history
    from ml_platform_tests.support.servers import open_instance, prepare_dagster_home

    start = yesterday() - dt.timedelta(days=partitions - 1)
    data = root / "backfill-data"
    os.environ.update(
        ML_PLATFORM_DATA_DIR=str(data), ML_PLATFORM_SPECS_DIR=str(history_specs(root / "specs-backfill", start))
    )
    land_history(data / "landing" / NAME, days_from(start, partitions), EVENTS_PER_DAY)

    from ml_platform.assets import keys
    from ml_platform.definitions import build_definitions, load_specs
    from ml_platform.runner import materialize_stages

    spec = next(spec for spec in load_specs() if spec.name == NAME)
    defs = build_definitions([spec])
    days = [(start + dt.timedelta(days=offset)).isoformat() for offset in range(partitions)]
    home = prepare_dagster_home(root / "backfill-home")
    with open_instance(home) as instance:
        started, epoch, cpu = time.perf_counter(), time.time(), time.process_time()
        result = materialize_stages(defs, spec, ["raw_events", "features"], instance, days, log_level="ERROR")
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        record = instance.get_run_record_by_id(result.run_id)
        runs = instance.get_runs_count()
        materialized = {
            stage: len(instance.get_materialized_partitions(keys.of_stage(spec, stage)))
            for stage in ("raw_events", "features")
        }
    return {
        "partitions": partitions,
        "first_day": days[0],
        "last_day": days[-1],
        "events_per_day": EVENTS_PER_DAY,
        "runs": runs,
        "success": result.success,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        # creating the run (one planned materialization per asset and day, the checks' planned rows) until RUN_START
        "until_run_start_s": round(record.start_time - epoch, 1),
        "run_s": round(record.end_time - record.start_time, 1),
        "per_partition_ms": round(1000 * wall / partitions, 1),
        "cpu_per_partition_ms": round(1000 * cpu / partitions, 1),
        "materialized": materialized,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def print_loads(loads: dict[str, dict[str, Any]]) -> None:
    print(f"{'configuration':<34}{'assets':>7}" + "".join(f"{c.removesuffix('_s'):>20}" for c in COLUMNS))
    for name, row in loads.items():
        cells = "".join(
            f"{row[c]['median']:>13.2f} ({row[c]['min']:.2f})" if c in row else f"{'-':>20}" for c in COLUMNS
        )
        print(f"{name:<34}{row['assets']:>7}{cells}")
    print(
        "seconds, median (min) of the rounds; process: a fresh interpreter from start to exit; cpu: user + system;\n"
        "load: import dagster + import the definitions (specs read, every asset, check, job and trigger built)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partitions", type=int, default=10_000, help="daily partitions of the long use case")
    parser.add_argument("--rounds", type=int, default=5, help="fresh processes per load configuration")
    parser.add_argument("--no-backfill", action="store_true", help="measure the load time only")
    parser.add_argument("--no-load", action="store_true", help="measure the backfill only")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="code_location_") as tmp:
        root = Path(tmp)
        result: dict[str, Any] = {}
        if not args.no_load:
            result["load"] = measure_loads(root, args.partitions, args.rounds)
            print_loads(result["load"])
        if not args.no_backfill:
            result["backfill"] = backfill(root, args.partitions)
            print(json.dumps(result["backfill"], indent=2))
    result.update(
        date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        commit=subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip(),
        machine={
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result.get("backfill", {}).get("success", True) else 1


if __name__ == "__main__":
    sys.exit(main())
