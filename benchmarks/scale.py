"""How the daily stages scale: concurrent range runs, cores per run, and the memory of one large day.

    .venv/bin/python benchmarks/scale.py --days 30 --events-per-day 1000000 --json benchmarks/results/scale.json

Churn days of generated events are landed as Parquet, and the platform's steps (`ml_platform/steps.py`:
`ingest`, `build_features`, `score`, what the assets run) process them, each stage in a fresh process (its
time excludes imports; its peak RSS, VmHWM, includes them). Three measurements:

- `cores_speedup`: each stage over the range held to one core (`taskset -c 0`, ML_PLATFORM_THREADS=1) vs
  given both (`taskset -c 0,1`, ML_PLATFORM_THREADS=2); per stage and overall (the sum of the stages);
- `parallel_runs_speedup`: the range as one run on one core vs split into two runs of half the days that
  run at once, each held to its own core (as each Kubernetes pod has its own). A range backfill's runs
  materialize a stage's partitions before the next stage's (a features day reads the raw days of its
  lookback, some in the other run's half), so the two runs do each stage side by side; a stage lasts as
  long as its slower run. The one-run side is the one-core run of `cores_speedup`, measured just before;
- `day_rss_mb`: the run worker's peak RSS for one churn day (raw, then features, then predictions, in one
  process as one daily run does) at each of `--day-sizes` events. That day is the first of its history,
  so its features window holds one raw day (landing 28 days at 16M events takes longer than the benchmark).

The predictions model is a random forest with the churn spec's parameters fitted on a small landing
against a stand-in label (no login in 7 days), called directly (no MLflow load): the cost of scoring does
not depend on what was learned. It predicts with n_jobs=1 (the spec says -1): scikit-learn adds the trees'
probabilities in the order its threads finish, so with more than one core the scores change in the last
bits from run to run whatever the platform does; the stage's own threads (one day each) keep them exact.
The machine's load average is recorded before and after: other users' work on the cores shows up in every
ratio.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
SEED = 11
LOOKBACK_DAYS = 28
LAST_DAY = dt.date(2025, 6, 30)
STAGES = ("raw", "features", "predictions")
DAY_SIZES = (1_000_000, 4_000_000, 16_000_000)


def churn() -> Any:
    from ml_platform.definitions import load_specs

    return next(spec for spec in load_specs() if spec.name == "churn")


def day_range(last: dt.date, count: int) -> list[str]:
    return [(last - dt.timedelta(days=offset)).isoformat() for offset in range(count)][::-1]


class ProbabilityModel:
    """A fitted classifier answering probabilities, as the registered MLflow model does."""

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def predict(self, features: Any) -> Any:
        return self.estimator.predict_proba(features)


# --------------------------------------------------------------------------- children: one stage in a fresh process


def run_stage(stage: str, work: Path, lake_dir: Path, days: list[str]) -> dict[str, Any]:
    """One stage of the platform's steps over `days`, storing each day that passes its gates (as the assets do)."""
    import joblib

    from ml_platform import steps
    from ml_platform.assets import keys
    from ml_platform.io.parquet_lake import DataLake
    from ml_platform.resources.sources import EventSource

    spec, lake = churn(), DataLake(base_path=str(lake_dir))
    model = ProbabilityModel(joblib.load(work / "model.joblib")) if stage in ("predictions", "day") else None
    started, failed, rows = time.perf_counter(), [], 0
    phases = {
        "raw": lambda: (keys.raw_events(spec), steps.ingest(EventSource(data_dir=str(work / "data")), spec, days)),
        "features": lambda: (keys.features(spec), steps.build_features(lake, keys.raw_events(spec), spec, days)),
        "predictions": lambda: (keys.predictions(spec), steps.score(model, "1", lake, keys.features(spec), spec, days)),
    }
    for name in STAGES if stage == "day" else (stage,):
        key, results = phases[name]()
        for result in results:
            failed += [f"{name} {result.day} {o.name}" for o in result.outcomes if not o.passed]
            if result.passed:
                rows += steps.store_day(lake, key, result)
        del result, results  # as a run's step ends: its last day is not held through the next stage
    return {"seconds": time.perf_counter() - started, "rows": rows, "failed_gates": failed[:10]}


def child(stage: str, work: Path, lake_dir: Path, days: list[str]) -> None:
    from ml_platform_tests.support.servers import process_peak_rss_mb

    started = os.times()
    result = run_stage(stage, work, lake_dir, days)
    result["peak_rss_mb"] = process_peak_rss_mb()
    ended = os.times()  # the CPU its threads got: under other users' load, less than its cores' worth
    result["cpu_s"] = round(ended.user + ended.system - started.user - started.system, 2)
    result["load_average"] = load_average()
    print(json.dumps(result))


def launch(stage: str, work: Path, lake_dir: Path, days: list[str], cpus: str, threads: int) -> subprocess.Popen:
    """A child held to `cpus` (a pod's CPU limit), with the platform's thread setting."""
    env = {**os.environ, "ML_PLATFORM_THREADS": str(threads), "ML_PLATFORM_DATA_DIR": str(work / "data")}
    env.pop("ML_PLATFORM_LAKE", None)
    command = [sys.executable, __file__, "--child", stage, str(work), str(lake_dir), json.dumps(days)]
    return subprocess.Popen(
        ["taskset", "-c", cpus, *command], env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def collect(process: subprocess.Popen, what: str) -> dict[str, Any]:
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"{what} failed (exit {process.returncode}):\n{stderr.decode()[-4000:]}")
    return json.loads(stdout.decode().strip().splitlines()[-1])


# --------------------------------------------------------------------------- the parent


def land(directory: Path, days: list[str], events_per_day: int, seed: int = SEED) -> None:
    from demo.generators.churn import write_landing_files

    if all((Path(directory) / f"{day}.parquet").exists() for day in days):  # kept from an earlier run (--data)
        return
    write_landing_files(directory, dt.date.fromisoformat(days[0]), len(days), events_per_day, seed)


def fit_model(work: Path) -> None:
    """The churn spec's random forest, fitted on the features of a small landing (not the measured one)."""
    import joblib
    import pandas as pd

    from ml_platform import steps
    from ml_platform.assets import keys
    from ml_platform.io.parquet_lake import DataLake
    from ml_platform.models.trainers import build_trainer
    from ml_platform.resources.sources import EventSource

    spec, small = churn(), work / "model_data"
    days = day_range(LAST_DAY, LOOKBACK_DAYS + 7)
    land(small / spec.source.directory, days, 20_000, SEED + 1)
    lake = DataLake(base_path=str(small / "lake"))
    for result in steps.ingest(EventSource(data_dir=str(small)), spec, days):
        steps.store_day(lake, keys.raw_events(spec), result)
    frame = pd.concat(result.frame for result in steps.build_features(lake, keys.raw_events(spec), spec, days[-7:], 31))
    trainer = build_trainer(spec.model.type, spec.model.params)
    trainer.fit(frame[spec.feature_names], (frame["logins_7d"] == 0).astype(int), frame["day"])
    trainer.model.set_params(n_jobs=1)  # the spec's n_jobs=-1 sums trees in completion order: not bit-reproducible
    joblib.dump(trainer.model, work / "model.joblib")
    shutil.rmtree(small)


def stage_days(stage: str, plan: dict[str, Any]) -> list[str]:
    return plan["all_days"] if stage == "raw" else plan["range"]


def measure_cores(work: Path, plan: dict[str, Any], threads: int) -> dict[str, Any]:
    """Every stage over the range in one run, given `threads` cores (0 .. threads-1) and as many threads."""
    lake_dir = work / f"lake_cores_{threads}"
    cpus = ",".join(str(cpu) for cpu in range(threads))
    stages = {}
    for stage in STAGES:
        stages[stage] = collect(launch(stage, work, lake_dir, stage_days(stage, plan), cpus, threads), stage)
        print(
            f"    {threads} core(s) {stage:<12} {stages[stage]['seconds']:7.2f} s"
            f" (CPU {stages[stage]['cpu_s']:.1f} s, load {stages[stage]['load_average'][0]})",
            flush=True,
        )
    return stages


def halves(days: list[str]) -> list[list[str]]:
    middle = (len(days) + 1) // 2
    return [days[:middle], days[middle:]]


def measure_two_runs(work: Path, plan: dict[str, Any]) -> dict[str, Any]:
    """The range as two runs of half its days, side by side, each on its own core with one thread."""
    lake_dir = work / "lake_two_runs"
    stages = {}
    for stage in STAGES:
        started = time.perf_counter()
        runs = [
            launch(stage, work, lake_dir, days, str(cpu), 1) for cpu, days in enumerate(halves(stage_days(stage, plan)))
        ]
        results = [collect(process, f"{stage} run {number}") for number, process in enumerate(runs)]
        stages[stage] = {
            "seconds": max(result["seconds"] for result in results),
            "runs_seconds": [result["seconds"] for result in results],
            "wall_with_process_start_s": time.perf_counter() - started,
            "peak_rss_mb": max(result["peak_rss_mb"] for result in results),
        }
        print(
            f"    2 runs    {stage:<12} {stages[stage]['seconds']:7.2f} s {stages[stage]['runs_seconds']}", flush=True
        )
    return stages


def compare_lakes(left: Path, right: Path) -> list[str]:
    """Files that differ between two lakes, byte for byte (the thread count and the split change no output)."""
    names = sorted(
        {p.relative_to(left) for p in left.rglob("*.parquet")}
        | {p.relative_to(right) for p in right.rglob("*.parquet")}
    )
    return [
        str(name)
        for name in names
        if not (left / name).exists()
        or not (right / name).exists()
        or (left / name).read_bytes() != (right / name).read_bytes()
    ]


def measure_day_rss(work: Path, landings: Path, size: int, cpus: str, threads: int) -> dict[str, Any]:
    """One daily run of one churn day of `size` events: raw, features, predictions in one process."""
    spec, day, run = churn(), [LAST_DAY.isoformat()], work / f"day_{size}"
    land(landings / f"day_{size}" / spec.source.directory, day, size)
    (run / "data" / spec.source.directory).parent.mkdir(parents=True)
    (run / "data" / spec.source.directory).symlink_to((landings / f"day_{size}" / spec.source.directory).resolve())
    (run / "model.joblib").symlink_to(work / "model.joblib")
    result = collect(launch("day", run, run / "lake", day, cpus, threads), f"one day of {size:,} events")
    shutil.rmtree(run)
    print(
        f"    one day of {size:>11,} events: {result['seconds']:7.2f} s, peak RSS {result['peak_rss_mb']:7.0f} MB",
        flush=True,
    )
    return result


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def ratio(slow: float, fast: float) -> float:
    return round(slow / fast, 3) if fast else 0.0


def table(result: dict[str, Any]) -> str:
    one, two, runs = result["cores"]["1"], result["cores"]["2"], result["two_runs"]
    lines = [
        f"| {result['range_days']} days x {result['events_per_day']:,} events | 1 core, 1 thread | 2 cores, 2 threads"
        " | cores speedup | 2 runs x 1 core | runs speedup |",
        "|---|---|---|---|---|---|",
    ]
    for stage in STAGES:
        lines.append(
            f"| {stage} | {one[stage]['seconds']:.2f} s | {two[stage]['seconds']:.2f} s"
            f" | {result['cores_speedup'][stage]:.2f}x"
            f" | {runs[stage]['seconds']:.2f} s | {ratio(one[stage]['seconds'], runs[stage]['seconds']):.2f}x |"
        )
    total = lambda stages: sum(stages[stage]["seconds"] for stage in STAGES)  # noqa: E731
    lines.append(
        f"| **all stages** | {total(one):.2f} s | {total(two):.2f} s | **{result['cores_speedup']['overall']:.2f}x**"
        f" | {total(runs):.2f} s | **{result['parallel_runs_speedup']:.2f}x** |"
    )
    lines.append("")
    lines.append("| events in the day | one daily run: seconds | run worker peak RSS |")
    lines.append("|---|---|---|")
    for size, measured in result["day"].items():
        lines.append(f"| {int(size):,} | {measured['seconds']:.2f} s | {result['day_rss_mb'][size]:,.0f} MB |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=30, help="days of output in the range (default 30: ~10 min here)")
    parser.add_argument("--events-per-day", type=int, default=1_000_000)
    parser.add_argument("--day-sizes", type=int, nargs="*", default=list(DAY_SIZES), help="events in the one-day runs")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=None, help="keep the landed range here for the next run")
    parser.add_argument("--child", nargs=4, metavar=("STAGE", "WORK", "LAKE", "DAYS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        stage, work, lake_dir, days = args.child
        child(stage, Path(work), Path(lake_dir), json.loads(days))
        return 0
    if args.days < 2 or args.events_per_day < 1 or any(size < 1 for size in args.day_sizes):
        parser.error("--days must be at least 2 (two runs split it), --events-per-day and --day-sizes positive")
    if (os.cpu_count() or 1) < 2 or shutil.which("taskset") is None:
        parser.error("needs 2 cores and taskset (util-linux)")

    started_at, load_before = dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), load_average()
    work = Path(tempfile.mkdtemp(prefix="ml-platform-scale-"))
    try:
        spec = churn()
        all_days = day_range(LAST_DAY, args.days + LOOKBACK_DAYS - 1)
        plan = {"all_days": all_days, "range": all_days[-args.days :]}
        print(
            f"landing {len(all_days)} days x {args.events_per_day:,} events in {work} (load {load_before})", flush=True
        )
        landing = (args.data or work / "data") / f"{args.events_per_day}" / spec.source.directory
        land(landing, all_days, args.events_per_day)  # days already there are kept
        (work / "data" / spec.source.directory).parent.mkdir(parents=True)
        (work / "data" / spec.source.directory).symlink_to(landing.resolve(), target_is_directory=True)
        fit_model(work)
        print("one run, one core vs two cores:", flush=True)
        cores = {str(threads): measure_cores(work, plan, threads) for threads in (1, 2)}
        print("two runs of half the range, one core each:", flush=True)
        two_runs = measure_two_runs(work, plan)
        differ = compare_lakes(work / "lake_cores_1", work / "lake_cores_2")
        differ += compare_lakes(work / "lake_cores_1", work / "lake_two_runs")
        print(f"lakes byte-identical: {not differ}" + (f" (differ: {differ[:5]})" if differ else ""), flush=True)
        for name in ("lake_cores_1", "lake_cores_2", "lake_two_runs"):
            shutil.rmtree(work / name)
        print("one daily run per day size (both cores):", flush=True)
        day = {str(size): measure_day_rss(work, args.data or work, size, "0,1", 2) for size in args.day_sizes}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    seconds = lambda stages: sum(stages[stage]["seconds"] for stage in STAGES)  # noqa: E731
    result = {
        "events_per_day": args.events_per_day,
        "range_days": args.days,
        "landed_days": len(all_days),
        "parallel_runs_speedup": ratio(seconds(cores["1"]), seconds(two_runs)),
        "cores_speedup": {
            **{stage: ratio(cores["1"][stage]["seconds"], cores["2"][stage]["seconds"]) for stage in STAGES},
            "overall": ratio(seconds(cores["1"]), seconds(cores["2"])),
        },
        "day_rss_mb": {size: round(measured["peak_rss_mb"]) for size, measured in day.items()},
        "outputs_byte_identical": not differ,
        "cores": cores,
        "two_runs": two_runs,
        "day": day,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "git_commit": subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
            ).stdout.strip(),
        },
        "started_at": started_at,
    }
    print(table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if not differ else 1


if __name__ == "__main__":
    sys.exit(main())
