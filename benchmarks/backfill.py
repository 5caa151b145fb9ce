"""Backfill overhead: a UI-launched range backfill vs the same work without Dagster.

    python benchmarks/backfill.py --days 60 --events-per-day 100000 --json benchmarks/results/backfill.json

1. Lands `--days` days ending at the last daily partition (yesterday, UTC) plus
   `--train-days` days before them (default: what training_set needs + 7),
   and trains a champion in-process on the earlier days (throwaway ephemeral instance); then empties the lake so the
   benchmarked backfill computes every raw/features/predictions day afresh.
2. Pure compute: a fresh Python process runs the same Dagster-free steps the
   daily assets run (`ml_platform/steps.py`: `ingest`, `build_features`,
   `score`, in the same chunks, with the same gates) and writes each passed
   day to a separate lake, with the champion loaded through the MLflow resource the run
   uses (its local model cache included, as the run's predictions step has it), and times it
   (imports of the platform modules excluded, as a run worker has them loaded
   before its first step; MLflow/sklearn imports included, as the predictions
   step pays them too).
3. Starts a real `dagster-webserver` + `dagster-daemon` on a fresh
   DAGSTER_HOME, waits until the daemons are healthy, then launches the
   backfill of raw_events, features and predictions for the range with the
   UI's `launchPartitionBackfill` mutation and times it from the launch call
   until the last predictions partition's materialization is recorded.

With several `--instance` values and `--compute-before-each`, the pure compute is measured again
right before each instance's backfill, and each backfill is set against the measurement next to it
(the machine's speed drifts by a few percent over an hour; `compute_measurements_s` records them all).

in_run_overhead_s is that window minus the separate pure compute; in_run_dagster_s is the same window
minus the run's own compute phases (each stage of the daily step from the end of the previous stage's
recording, or STEP_START, to its first materialization or evaluation: a stage computes its whole range
before it records anything), i.e. Dagster's own time in the run, free of the difference between two
processes computing the same year.

overhead_per_partition_s = (wall_s - compute_s) / partitions. Peak RSS is
sampled (psutil) over every process of the webserver and daemon process
groups, run worker included.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

SEED = 5
TERMINAL_RUN_STATUSES = {"SUCCESS", "FAILURE", "CANCELED"}


# --------------------------------------------------------------------------- pure compute


@dataclass
class PureComputeRun:
    """The daily assets' steps for one range, minus Dagster: each passed day written to its own lake."""

    spec: Any
    days: list[str]
    source: Any
    lake: Any
    mlflow: Any
    chunk_days: int
    failures: list[str] = field(default_factory=list)
    model_load_s: float = 0.0

    def store(self, key: Any, result: Any) -> bool:
        """What the gate does with a day: write it if every outcome passed, else note the failures."""
        self.failures.extend(o.message for o in result.outcomes if not o.passed)
        from ml_platform import steps

        if result.passed and result.has_data:
            steps.store_day(self.lake, key, result)
            return True
        return False

    def raw_events(self) -> None:
        from ml_platform import steps
        from ml_platform.assets import keys

        for result in steps.ingest(self.source, self.spec, self.days):
            self.store(keys.raw_events(self.spec), result)

    def features(self) -> None:
        from ml_platform import steps
        from ml_platform.assets import keys

        raw_key = keys.raw_events(self.spec)
        for result in steps.build_features(self.lake, raw_key, self.spec, self.days, self.chunk_days):
            self.store(keys.features(self.spec), result)

    def predictions(self) -> None:
        """The champion's load included, as the predictions step pays it."""
        from ml_platform import steps
        from ml_platform.assets import keys
        from ml_platform.assets.daily import _top_risk_table
        from ml_platform.resources.mlflow_resource import CHAMPION

        mark = time.perf_counter()
        champion = self.mlflow.version_by_alias(self.spec.name, CHAMPION)
        if champion is None:
            raise SystemExit("no champion to score with")
        model = self.mlflow.load_model(self.spec.name, champion.version)
        self.model_load_s = time.perf_counter() - mark
        features_key = keys.features(self.spec)
        for result in steps.score(model, champion.version, self.lake, features_key, self.spec, self.days):
            if self.store(keys.predictions(self.spec), result):
                _top_risk_table(result.frame, self.spec)


def pure_compute(days: list[str], data_dir: str, lake_path: str, chunk_days: int) -> dict[str, Any]:
    """Times each stage of a `PureComputeRun` and the process's peak RSS after it."""
    from ml_platform import steps  # noqa: F401  (the platform's imports stay out of the timings)
    from ml_platform.assets.range_step import ChunkConfig
    from ml_platform.definitions import load_specs
    from ml_platform.io.parquet_lake import DataLake
    from ml_platform.resources import default_resources
    from ml_platform.resources.sources import EventSource
    from ml_platform.settings import Settings
    from ml_platform_tests.support.servers import process_peak_rss_mb

    run = PureComputeRun(
        spec=next(s for s in load_specs() if s.name == "churn"),
        days=days,
        source=EventSource(data_dir=data_dir),
        lake=DataLake(base_path=lake_path),
        mlflow=default_resources(Settings.from_env())["mlflow"],  # as the run has it: the local model cache included
        chunk_days=chunk_days or ChunkConfig().chunk_days,
    )
    timings: dict[str, float] = {}
    peak_rss_mb: dict[str, float] = {}  # the process's peak so far, at the end of each stage
    for stage in ("raw_events", "features", "predictions"):
        mark = time.perf_counter()
        getattr(run, stage)()
        timings[stage] = time.perf_counter() - mark
        peak_rss_mb[stage] = process_peak_rss_mb()
    timings["predictions_model_load"] = run.model_load_s
    timings["total"] = timings["raw_events"] + timings["features"] + timings["predictions"]
    return {
        "timings_s": timings,
        "failures": run.failures,
        "peak_rss_mb": peak_rss_mb["predictions"],
        "peak_rss_mb_after_stage": peak_rss_mb,
    }


def run_pure_compute_subprocess(days: list[str], data_dir: Path, lake_path: Path, chunk_days: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("ML_PLATFORM_LAKE", "MLFLOW_TRACKING_URI")}
    env["ML_PLATFORM_DATA_DIR"] = str(data_dir)
    payload = json.dumps(
        {"days": days, "data_dir": str(data_dir), "lake_path": str(lake_path), "chunk_days": chunk_days}
    )
    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--compute-only", payload],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"pure compute failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- setup


def land_and_train(data_dir: Path, days: list[str], train_days: list[str], events_per_day: int) -> dict[str, Any]:
    """Land every day, then train and promote a champion on `train_days`."""
    import dagster as dg

    from demo.generators.churn import write_landing_files
    from ml_platform.definitions import build_definitions, load_specs
    from ml_platform.runner import DAILY_STAGES, TRAINING_STAGES, materialize_stages

    os.environ["ML_PLATFORM_DATA_DIR"] = str(data_dir)
    spec = next(s for s in load_specs() if s.name == "churn")
    every_day = sorted(set(train_days) | set(days))
    first = dt.date.fromisoformat(every_day[0])
    started = time.perf_counter()
    write_landing_files(data_dir / "landing" / spec.name, first, len(every_day), events_per_day, SEED)
    landed_s = time.perf_counter() - started

    defs = build_definitions(load_specs())
    with dg.DagsterInstance.ephemeral() as instance:
        for stages, stage_days in ((DAILY_STAGES[:2], train_days), (TRAINING_STAGES, None)):
            result = materialize_stages(defs, spec, stages, instance, stage_days, log_level="ERROR")
            if not result.success:
                raise SystemExit(f"training setup failed at {stages}: {result.all_events[-1].message}")
    trained_s = time.perf_counter() - started - landed_s
    return {"landing_s": round(landed_s, 2), "training_setup_s": round(trained_s, 2)}


def empty_daily_assets(data_dir: Path) -> None:
    """Remove the lake's raw_events/features/predictions, so the next backfill computes every day afresh."""
    from ml_platform.assets import keys
    from ml_platform.definitions import load_specs

    spec = next(s for s in load_specs() if s.name == "churn")
    for key in (keys.raw_events(spec), keys.features(spec), keys.predictions(spec)):
        shutil.rmtree(data_dir / "lake" / Path(*key.path), ignore_errors=True)


def champion_version(data_dir: Path) -> str | None:
    from ml_platform.resources.mlflow_resource import CHAMPION, MlflowResource

    version = MlflowResource(data_dir=str(data_dir)).version_by_alias("churn", CHAMPION)
    return str(version.version) if version is not None else None


# --------------------------------------------------------------------------- backfill


def run_ui_backfill(
    data_dir: Path,
    home: Path,
    days: list[str],
    timeout: float,
    instance_yaml: Path = REPO_ROOT / "dagster.yaml",
) -> dict[str, Any]:
    from ml_platform.assets import keys
    from ml_platform.definitions import load_specs
    from ml_platform_tests.support.graphql import launch_partition_backfill, wait_for_backfill
    from ml_platform_tests.support.servers import RssSampler, dagster_servers, open_instance, prepare_dagster_home

    spec = next(s for s in load_specs() if s.name == "churn")
    asset_keys = [keys.raw_events(spec), keys.features(spec), keys.predictions(spec)]
    predictions_key = keys.predictions(spec)
    prepare_dagster_home(home, instance_yaml)
    out: dict[str, Any] = {}
    load_before = os.getloadavg()
    environment = {
        "ML_PLATFORM_DATA_DIR": str(data_dir),
        **{k: v for k, v in os.environ.items() if k.startswith("DAGSTER_PG_")},
    }
    with dagster_servers(home, environment, wait_for_daemon=True) as servers:
        time.sleep(2.0)  # let the daemons finish their first iterations: measure a steady-state launch
        import psutil

        me = psutil.Process()
        with RssSampler(servers.process_groups, interval=0.25) as rss, open_instance(home) as instance:
            my_cpu_start, busy_start = sum(me.cpu_times()[:2]), _busy_cpu_seconds()
            launched_at = time.time()
            backfill_id = launch_partition_backfill(servers.url, asset_keys, days)
            launch_call_s = time.time() - launched_at
            runs = _wait_for_runs(servers, instance, backfill_id, days, predictions_key, timeout)
            runs_done_at = time.time()
            rss.sample()
            busy = _busy_cpu_seconds() - busy_start
            ours = sum(rss.cpu_seconds_by_role.values()) + sum(me.cpu_times()[:2]) - my_cpu_start
            out["cpu_s_by_role"] = {k: round(v, 1) for k, v in sorted(rss.cpu_seconds_by_role.items())}
            out["foreign_busy_cores"] = round(max(0.0, busy - ours) / (runs_done_at - launched_at), 2)
            backfill = wait_for_backfill(servers.url, backfill_id, timeout=120, alive=servers.assert_alive)
            backfill_done_at = time.time()
            out.update(_run_timeline(instance, runs, predictions_key, launched_at))
            out["materialized_partitions"] = {
                key.to_user_string(): len(instance.get_materialized_partitions(key)) for key in asset_keys
            }
        out.update(
            backfill_id=backfill_id,
            backfill_status=backfill["status"],
            launch_call_s=round(launch_call_s, 3),
            runs_finished_s=round(runs_done_at - launched_at, 2),
            backfill_completed_s=round(backfill_done_at - launched_at, 2),
            peak_rss_by_role_mb={k: round(v, 1) for k, v in sorted(rss.peak_by_role_mb.items())},
            peak_rss_tree_mb=round(rss.peak_total_mb, 1),
            rss_samples=rss.samples,
            loadavg_before=[round(x, 2) for x in load_before],
            loadavg_after=[round(x, 2) for x in os.getloadavg()],
        )
    return out


def _wait_for_runs(
    servers: Any,
    instance: Any,
    backfill_id: str,
    days: list[str],
    predictions_key: Any,
    timeout: float,
) -> list[Any]:
    """The backfill's runs, once every one is finished (cheap instance reads, 1 s apart) and either the
    backfill says it is done or every day's predictions are recorded."""
    import dagster as dg

    from ml_platform_tests.support.graphql import get_backfill

    deadline = time.monotonic() + timeout
    while True:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        finished = bool(runs) and all(r.status.value in TERMINAL_RUN_STATUSES for r in runs)
        # The backfill itself only when it matters: polling GraphQL costs the webserver CPU.
        backfill = get_backfill(servers.url, backfill_id) if finished or not runs else {"status": "REQUESTED"}
        if finished and (
            backfill["status"] != "REQUESTED" or set(days) <= instance.get_materialized_partitions(predictions_key)
        ):
            return runs
        if backfill["status"] != "REQUESTED" and not runs:
            raise SystemExit(f"backfill ended without runs: {backfill}")
        if time.monotonic() > deadline:
            raise SystemExit(f"backfill not done after {timeout:.0f}s: {backfill}\n{servers.logs()}")
        servers.assert_alive()
        time.sleep(1.0)


@contextlib.contextmanager
def instance_storage(kind: str) -> Iterator[Path]:
    """The dagster.yaml to run on: the repo's (SQLite), or production's on a fresh Postgres database whose
    credentials reach the servers as DAGSTER_PG_* variables, as the Helm chart passes them."""
    if kind == "sqlite":
        yield REPO_ROOT / "dagster.yaml"
        return
    from ml_platform_tests.support import postgres

    with postgres.scratch_database("ml_platform_bench") as url:
        variables = {
            "DAGSTER_PG_HOST": url.host or "127.0.0.1",
            "DAGSTER_PG_PORT": str(url.port or 5432),
            "DAGSTER_PG_DB": url.database or "",
            "DAGSTER_PG_USERNAME": url.username or "postgres",
            "DAGSTER_PG_PASSWORD": url.password or "",
        }
        os.environ.update(variables)
        try:
            yield REPO_ROOT / "deploy" / "dagster-postgres.yaml"
        finally:
            for variable in variables:
                os.environ.pop(variable, None)


RUN_PHASES = {"PIPELINE_ENQUEUED": "run_enqueued", "PIPELINE_STARTING": "run_starting", "PIPELINE_START": "run_start"}
RUN_ENDS = ("PIPELINE_SUCCESS", "PIPELINE_FAILURE")
STEP_PHASES = ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE")
# Each stage of the daily step (range_step.py) computes its whole range, then hands Dagster its
# materializations and evaluations (PartitionGate.conclude): a stage's compute runs from the end of the
# previous stage's recording (or the step's start) to its own first recorded event.
RECORDING_EVENTS = ("ASSET_MATERIALIZATION", "ASSET_CHECK_EVALUATION")


@dataclass
class RunEvents:
    """What one backfill's runs recorded in the event log: phase timestamps, event counts, check-store gaps."""

    predictions_key: Any
    first: dict[str, float] = field(default_factory=dict)  # run_created / run_enqueued / ...: earliest
    steps: dict[str, dict[str, float]] = field(default_factory=dict)
    recordings: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # step -> asset -> [first, last]
    counts: Counter = field(default_factory=Counter)
    check_gaps: list[float] = field(default_factory=list)
    run_end: float | None = None
    last_prediction: float | None = None

    def add_run(self, instance: Any, run: Any) -> None:
        self._earliest("run_created", instance.get_run_record_by_id(run.run_id).create_timestamp.timestamp())
        previous = None
        for entry in instance.all_logs(run.run_id):
            event = entry.dagster_event
            self.counts[event.event_type_value if event else "(log message)"] += 1
            if event is not None:
                self._note(entry, previous)
            previous = entry if event is not None else None

    def _note(self, entry: Any, previous: Any) -> None:
        event, kind, ts = entry.dagster_event, entry.dagster_event.event_type_value, entry.timestamp
        # Consecutive evaluations of one partition are yielded back to back (the gate computes all of
        # a day's outcomes first), so the gap between them is what storing one event costs.
        if (
            kind == "ASSET_CHECK_EVALUATION"
            and previous is not None
            and (
                previous.dagster_event.event_type_value == kind
                and previous.dagster_event.event_specific_data.partition == event.event_specific_data.partition
            )
        ):
            self.check_gaps.append(ts - previous.timestamp)
        if kind in RUN_PHASES:
            self._earliest(RUN_PHASES[kind], ts)
        elif kind in RUN_ENDS:
            self.run_end = max(self.run_end or ts, ts)
        if kind in RECORDING_EVENTS and event.step_key:
            asset = event.event_specific_data.asset_key if kind == "ASSET_CHECK_EVALUATION" else event.asset_key
            span = self.recordings.setdefault(event.step_key, {}).setdefault(asset.to_user_string(), [ts, ts])
            span[1] = ts
        if kind in STEP_PHASES and event.step_key:
            self.steps.setdefault(event.step_key, {})[kind] = ts
        if kind == "ASSET_MATERIALIZATION" and event.asset_key == self.predictions_key:
            self.last_prediction = max(self.last_prediction or ts, ts)

    def stage_phases(self) -> dict[str, dict[str, float]]:
        """'step:asset' -> {"compute": from the previous stage's last recorded event (or the step's start) to the
        stage's own first, "stage": to its own last}: the stage's compute, and its whole share of the step."""
        phases = {}
        for step, spans in self.recordings.items():
            previous_end = self.steps.get(step, {}).get("STEP_START")
            for asset, (first, last) in sorted(spans.items(), key=lambda item: item[1][0]):
                if previous_end is not None:
                    phases[f"{step}:{asset}"] = {
                        "compute": round(first - previous_end, 2),
                        "stage": round(last - previous_end, 2),
                    }
                previous_end = last
        return phases

    def _earliest(self, name: str, ts: float) -> None:
        self.first[name] = min(self.first.get(name, ts), ts)

    def check_store_ms(self) -> dict[str, float] | None:
        if not self.check_gaps:
            return None
        ordered = sorted(self.check_gaps)
        return {
            "median": round(1000 * ordered[len(ordered) // 2], 1),
            "p90": round(1000 * ordered[int(len(ordered) * 0.9)], 1),
            "samples": len(ordered),
        }


def _run_timeline(instance: Any, runs: list[Any], predictions_key: Any, launched_at: float) -> dict[str, Any]:
    """Timestamps of one backfill's runs, from the event log, relative to the launch call."""
    events = RunEvents(predictions_key)
    for run in runs:
        events.add_run(instance, run)
    rel = lambda ts: round(ts - launched_at, 2) if ts is not None else None  # noqa: E731
    ordered_steps = sorted(events.steps.items(), key=lambda item: item[1].get("STEP_START", 0))
    return {
        "runs": len(runs),
        "run_ids": [r.run_id for r in runs],
        "run_statuses": [r.status.value for r in runs],
        "run_ranges": [
            [r.tags.get("dagster/asset_partition_range_start"), r.tags.get("dagster/asset_partition_range_end")]
            for r in runs
        ],
        "timeline_s": {
            **{name: rel(events.first.get(name)) for name in ("run_created", *RUN_PHASES.values())},
            **{f"{step}:{phase}": rel(ts) for step, phases in ordered_steps for phase, ts in phases.items()},
            "last_predictions_materialization": rel(events.last_prediction),
            "run_end": rel(events.run_end),
        },
        "step_s": {
            step: round(phases.get("STEP_SUCCESS", phases.get("STEP_FAILURE", 0)) - phases["STEP_START"], 2)
            for step, phases in events.steps.items()
            if "STEP_START" in phases
        },
        "stage_phase_s": events.stage_phases(),
        "check_event_store_ms": events.check_store_ms(),
        "event_counts": dict(events.counts.most_common()),
        "events_total": sum(events.counts.values()),
        "_last_prediction_ts": events.last_prediction,
        "_run_start_ts": events.first.get("run_start"),
        "_run_created_ts": events.first.get("run_created"),
    }


# --------------------------------------------------------------------------- report


def _busy_cpu_seconds() -> float:
    import psutil

    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)


class CpuMeter:
    """System-wide busy CPU over a phase: how loaded the 2-core box was (other users' jobs included)."""

    def __enter__(self) -> CpuMeter:
        import psutil

        self._start, self._wall = psutil.cpu_times(), time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        import psutil

        end, wall = psutil.cpu_times(), time.monotonic() - self._wall
        busy = lambda t: t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)  # noqa: E731
        self.busy_cores = round((busy(end) - busy(self._start)) / wall, 2) if wall else 0.0


def machine_info() -> dict[str, Any]:
    import dagster
    import psutil

    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "dagster_version": dagster.__version__,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **_git_state(),
    }


def _git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
        return result.stdout.strip() if result.returncode == 0 else ""

    modified = [line for line in git("status", "--short", "--untracked-files=no").splitlines() if line.strip()]
    return {"git_commit": git("rev-parse", "--short", "HEAD") or None, "git_modified_tracked_files": len(modified)}


def table(result: dict[str, Any]) -> str:
    rows = [
        ("instance storage", result["instance_storage"]),
        ("partitions (days)", result["partitions"]),
        ("events per day", f"{result['events_per_day']:,}"),
        ("runs launched by the backfill", result["runs"]),
        ("wall: launch -> last predictions materialization", f"{result['wall_s']:.1f} s"),
        ("pure compute, same work, no Dagster", f"{result['compute_s']:.1f} s"),
        ("wall / pure compute", f"{result['wall_over_compute']:.2f}x"),
        ("overhead per partition", f"{result['overhead_per_partition_s']:.3f} s"),
        ("  of which daemon pickup (launch -> RUN_START)", f"{result['daemon_pickup_s']:.1f} s"),
        ("  overhead per partition excluding pickup", f"{result['overhead_per_partition_excl_pickup_s']:.3f} s"),
        ("  in-run overhead (RUN_START -> last materialization - compute)", f"{result['in_run_overhead_s']:.1f} s"),
        (
            "  the same minus the run's own compute phases (Dagster's time)",
            f"{result['in_run_dagster_s']:.1f} s = {result['in_run_dagster_ms_per_partition']:.0f} ms a partition",
        ),
        ("backfill COMPLETED (daemon's next loop)", f"{result['backfill_completed_s']:.1f} s"),
        ("peak RSS run worker", f"{result['peak_rss_mb']:.0f} MB"),
        ("peak RSS all server processes", f"{result['peak_rss_tree_mb']:.0f} MB"),
        (
            "peak RSS pure compute (process peak after raw / features / predictions)",
            " / ".join(f"{mb:.0f}" for mb in result["compute_peak_rss_mb_after_stage"].values()) + " MB",
        ),
        ("other users' CPU load during the backfill", f"{result['foreign_busy_cores_during_backfill']:.2f} cores"),
        ("events written by the run", result["events_total"]),
        (
            "  storing one check evaluation (median)",
            f"{(result['check_event_store_ms'] or {}).get('median', float('nan'))} ms",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    lines.append("")
    lines.append(f"{'stage':<14}{'in the run':>16}{'pure compute':>14}{'difference':>12}")
    for stage, step_s in result["stages"].items():
        overhead = step_s["step_s"] - step_s["compute_s"]
        lines.append(f"{stage:<14}{step_s['step_s']:>15.1f}s{step_s['compute_s']:>13.1f}s{overhead:>11.1f}s")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--events-per-day", type=int, default=100_000)
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="write the result here (with several --instance values: one file each, <stem>_<instance>.json)",
    )
    parser.add_argument(
        "--train-days",
        type=int,
        default=0,
        help="days before the range to train the champion on (default: the spec's minimum + 7)",
    )
    parser.add_argument(
        "--chunk-days", type=int, default=0, help="features/predictions chunking (default: the assets')"
    )
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep data and DAGSTER_HOME here (default: temp, removed)"
    )
    parser.add_argument(
        "--instance",
        choices=["sqlite", "postgres"],
        nargs="+",
        default=["sqlite"],
        help="Dagster instance storage: the embedded SQLite default, and/or Postgres as in production "
        "(deploy/dagster-postgres.yaml on a fresh database of the server at ML_PLATFORM_TEST_POSTGRES_URL, "
        "default 127.0.0.1:5432, dropped afterwards); several run one after another on the same landed data, "
        "champion and pure-compute measurement",
    )
    parser.add_argument(
        "--compute-before-each",
        action="store_true",
        help="with several --instance values, measure the pure compute again before each backfill and set each "
        "against the measurement next to it (default: one measurement for all)",
    )
    parser.add_argument("--compute-only", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def plan_days(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The benchmarked range (ending at the last daily partition) and the training days before it."""
    from ml_platform.definitions import load_specs
    from ml_platform.factory import daily_partitions

    spec = next(s for s in load_specs() if s.name == "churn")
    # training_set: feature days after the window warm-up, label-complete, holdout + purge gap + 1 train day
    lookback = getattr(spec, "lookback_days", None) or getattr(spec, "max_window_days", 1)
    minimum = lookback - 1 + spec.training.holdout_days + 2 * spec.label.horizon_days + 1
    if args.train_days == 0:
        args.train_days = minimum + 7
    elif args.train_days < minimum:
        raise SystemExit(f"--train-days must be >= {minimum} for this spec (warm-up + holdout + purge + labels + 1)")
    last = dt.date.fromisoformat(daily_partitions(spec).get_last_partition_key())
    first = last - dt.timedelta(days=args.days - 1)
    days = [(first + dt.timedelta(days=i)).isoformat() for i in range(args.days)]
    train_first = first - dt.timedelta(days=args.train_days)
    train_days = [(train_first + dt.timedelta(days=i)).isoformat() for i in range(args.train_days)]
    return days, train_days


def summarize(
    args: argparse.Namespace,
    instance: str,
    days: list[str],
    compute: dict[str, Any],
    backfill: dict[str, Any],
    cpu: dict[str, float],
) -> dict[str, Any]:
    """One instance's result: the backfill's timeline set against the pure compute of the same days."""
    launched_at = backfill["_last_prediction_ts"] - backfill["timeline_s"]["last_predictions_materialization"]
    wall = backfill["_last_prediction_ts"] - launched_at
    compute_s = compute["timings_s"]["total"]
    pickup = backfill["_run_start_ts"] - launched_at
    stages = {}
    for stage in ("raw_events", "features", "predictions"):
        phase = next((p for name, p in backfill["stage_phase_s"].items() if name.endswith(f"/{stage}")), {})
        stages[stage] = {"step_s": phase.get("stage", float("nan")), "compute_s": round(compute["timings_s"][stage], 2)}
    in_run = wall - pickup - compute_s
    # the same window minus the run's own compute phases: what Dagster spent, free of the few percent
    # by which two processes' compute of a year differs
    dagster_s = wall - pickup - sum(phase["compute"] for phase in backfill["stage_phase_s"].values())
    return {
        "benchmark": "ui_backfill_raw_features_predictions",
        "instance_storage": instance,
        "partitions": len(days),
        "days": args.days,
        "events_per_day": args.events_per_day,
        "range": [days[0], days[-1]],
        "wall_s": round(wall, 2),
        "compute_s": round(compute_s, 2),
        "wall_over_compute": round(wall / compute_s, 3),
        "overhead_s": round(wall - compute_s, 2),
        "overhead_per_partition_s": round((wall - compute_s) / len(days), 3),
        "daemon_pickup_s": round(pickup, 2),
        "overhead_per_partition_excl_pickup_s": round(in_run / len(days), 3),
        "in_run_overhead_s": round(in_run, 2),
        "in_run_dagster_s": round(dagster_s, 2),
        "in_run_dagster_ms_per_partition": round(1000 * dagster_s / len(days), 1),
        "stage_phase_s": backfill["stage_phase_s"],
        "target_overhead_per_partition_s": 1.0,
        "meets_target": (wall - compute_s) / len(days) <= 1.0,
        "peak_rss_mb": backfill["peak_rss_by_role_mb"].get("run_worker", float("nan")),
        "peak_rss_tree_mb": backfill["peak_rss_tree_mb"],
        "peak_rss_by_role_mb": backfill["peak_rss_by_role_mb"],
        "compute_peak_rss_mb": round(compute["peak_rss_mb"], 1),
        "compute_peak_rss_mb_after_stage": {k: round(v, 1) for k, v in compute["peak_rss_mb_after_stage"].items()},
        "compute_timings_s": {k: round(v, 2) for k, v in compute["timings_s"].items()},
        "stages": stages,
        **{
            key: backfill[key]
            for key in (
                "runs",
                "run_statuses",
                "run_ranges",
                "backfill_status",
                "backfill_completed_s",
                "launch_call_s",
                "timeline_s",
                "events_total",
                "event_counts",
                "materialized_partitions",
                "cpu_s_by_role",
                "loadavg_before",
                "loadavg_after",
            )
        },
        "check_event_store_ms": backfill.get("check_event_store_ms"),
        "foreign_busy_cores_during_backfill": backfill["foreign_busy_cores"],
        **cpu,
    }


def json_path(requested: Path | None, instance: str, instances: list[str]) -> Path | None:
    if requested is None or len(instances) == 1:
        return requested
    return requested.with_name(f"{requested.stem}_{instance}{requested.suffix}")


def prepare(
    args: argparse.Namespace, days: list[str], train_days: list[str], workdir: Path, steps: int
) -> dict[str, Any]:
    """Land, train the champion, and measure the pure compute once for every instance storage to come."""
    data_dir = workdir / "data"
    print(
        f"[1/{steps}] landing {len(train_days)} + {len(days)} days x {args.events_per_day:,} events, training a "
        f"champion on {train_days[0]}..{train_days[-1]} (in-process) ...",
        flush=True,
    )
    setup = land_and_train(data_dir, days, train_days, args.events_per_day)
    version = champion_version(data_dir)
    if version is None:
        raise SystemExit("setup trained no champion (gates failed?)")
    setup.update(champion_version=version, train_days=[train_days[0], train_days[-1]])
    print(
        f"      landed in {setup['landing_s']} s, trained champion v{version} in {setup['training_setup_s']} s",
        flush=True,
    )
    print(f"[2/{steps}] pure compute of {days[0]}..{days[-1]} in a fresh process ...", flush=True)
    return {"setup": setup, **measure_compute(args, days, workdir)}


def measure_compute(args: argparse.Namespace, days: list[str], workdir: Path) -> dict[str, Any]:
    """The pure compute of the range in a fresh process, into an emptied lake of its own."""
    shutil.rmtree(workdir / "compute_lake", ignore_errors=True)
    with CpuMeter() as compute_cpu:
        compute = run_pure_compute_subprocess(days, workdir / "data", workdir / "compute_lake", args.chunk_days)
    if compute["failures"]:
        raise SystemExit(f"pure compute gates failed: {compute['failures'][:5]}")
    print(f"      {compute['timings_s']['total']:.1f} s", flush=True)
    return {"compute": compute, "compute_busy_cores": compute_cpu.busy_cores}


def measure_instance(
    args: argparse.Namespace,
    instance: str,
    days: list[str],
    workdir: Path,
    prepared: dict[str, Any],
    machine: dict[str, Any],
) -> dict[str, Any]:
    """The UI backfill on one instance storage, on an emptied lake, set against the pure compute."""
    data_dir = workdir / "data"
    empty_daily_assets(data_dir)  # every run computes every day afresh
    with CpuMeter() as backfill_cpu, instance_storage(instance) as instance_yaml:
        backfill = run_ui_backfill(data_dir, workdir / f"dagster_home_{instance}", days, args.timeout, instance_yaml)
    if backfill["_last_prediction_ts"] is None:
        raise SystemExit(f"the backfill materialized no predictions: {json.dumps(backfill, default=str)[:3000]}")
    cpu = {
        "busy_cores_during_compute": prepared["compute_busy_cores"],
        "busy_cores_during_backfill_phase": backfill_cpu.busy_cores,
    }
    summary = summarize(args, instance, days, prepared["compute"], backfill, cpu)
    return {**summary, "setup": prepared["setup"], "machine": machine}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.compute_only:
        spec = json.loads(args.compute_only)
        print(json.dumps(pure_compute(spec["days"], spec["data_dir"], spec["lake_path"], spec["chunk_days"])))
        return 0

    for variable in (
        "ML_PLATFORM_LAKE",
        "MLFLOW_TRACKING_URI",
        "ML_PLATFORM_AUTOMATION",
        "ML_PLATFORM_SPECS_DIR",
        "ML_PLATFORM_ENV",
        "ML_PLATFORM_ALERT_WEBHOOK",
        "ML_PLATFORM_SOURCE_DSN",
        "ML_PLATFORM_MODEL_CACHE",
    ):
        os.environ.pop(variable, None)
    days, train_days = plan_days(args)
    machine = machine_info()  # the commit measured is the one checked out at launch, whatever is committed later
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ml-platform-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    steps = 2 + 2 * len(args.instance)
    ok = True
    try:
        prepared = prepare(args, days, train_days, workdir, steps)
        compute_totals = [prepared["compute"]["timings_s"]["total"]]
        for number, instance in enumerate(args.instance):
            if number and args.compute_before_each:
                print(f"      pure compute again, before the {instance} backfill ...", flush=True)
                prepared.update(measure_compute(args, days, workdir))
                compute_totals.append(prepared["compute"]["timings_s"]["total"])
            print(
                f"[{3 + 2 * number}/{steps}] webserver + daemon on {instance} instance storage, launching the "
                "backfill as the UI does ...",
                flush=True,
            )
            result = measure_instance(args, instance, days, workdir, prepared, machine)
            result["compute_measurements_s"] = [round(total, 2) for total in compute_totals]
            print(f"[{4 + 2 * number}/{steps}] result\n")
            print(table(result))
            path = json_path(args.json, instance, args.instance)
            if path:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(result, indent=2) + "\n")
                print(f"\nwrote {path}")
            ok = (
                ok
                and result["backfill_status"] == "COMPLETED_SUCCESS"
                and all(n == len(days) for n in result["materialized_partitions"].values())
            )
        return 0 if ok else 1
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
