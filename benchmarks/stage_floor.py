"""Each daily stage's pure compute against its floor, with outputs checked equal and peak RSS per stage.

    .venv/bin/python benchmarks/stage_floor.py --days 10 --events-per-day 1000000 \\
        --json benchmarks/results/stage_floor.json

The floor is a straightforward DuckDB implementation of the same churn stage on the same files:
- raw: read the landed day, the same eight raw gates (one aggregate query), write the spec's columns;
- features: daily aggregates per customer, then each feature's window over them for the active
  customers (an event in the lookback, no cancellation yet), for the `--days` range and for one day
  (what every daily sensor or schedule run does: a 28-day window read for one day of output);
- predictions: the same fitted estimator (joblib, not MLflow) scoring the range's features.
Ours is `ml_platform/steps.py` (`ingest`, `build_features`, `score`), what the assets run; its MLflow
model load is timed apart. Every measurement runs in a fresh process: its time excludes imports, its
peak RSS (the process's VmHWM) includes them. Outputs must agree (features and scores to 1e-6), or it exits 1.

The model is a random forest with the churn spec's params fitted on the range's features against a
stand-in label (no login in 7 days): the cost of scoring does not depend on what was learned.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
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
FEATURES_PER_RANGE_READ = 31  # steps.DEFAULT_CHUNK_DAYS


def churn() -> Any:
    from ml_platform.definitions import load_specs

    return next(spec for spec in load_specs() if spec.name == "churn")


def day_range(last: dt.date, count: int) -> list[str]:
    return [(last - dt.timedelta(days=offset)).isoformat() for offset in range(count)][::-1]


# --------------------------------------------------------------------------- ours: the platform's steps


def ours_raw(work: Path, days: list[str]) -> dict[str, Any]:
    from ml_platform.assets import keys
    from ml_platform.io.parquet_lake import DataLake
    from ml_platform.resources.sources import EventSource
    from ml_platform.steps import ingest, store_day

    spec, lake = churn(), DataLake(base_path=str(work / "ours"))
    source = EventSource(data_dir=str(work / "data"))
    started, failed = time.perf_counter(), []
    for result in ingest(source, spec, days):
        failed += [f"{result.day} {o.name}" for o in result.outcomes if not o.passed]
        if result.passed:
            store_day(lake, keys.raw_events(spec), result)
    return {"seconds": time.perf_counter() - started, "failed_gates": failed}


def ours_features(work: Path, days: list[str], name: str) -> dict[str, Any]:
    from ml_platform.assets import keys
    from ml_platform.io.parquet_lake import DataLake
    from ml_platform.steps import build_features, store_day

    spec, lake = churn(), DataLake(base_path=str(work / "ours"))
    started, failed = time.perf_counter(), []
    for result in build_features(lake, keys.raw_events(spec), spec, days):
        failed += [f"{result.day} {o.name}" for o in result.outcomes if not o.passed]
        if result.passed:
            store_day(lake, keys.features(spec).with_prefix(name), result)
    return {"seconds": time.perf_counter() - started, "failed_gates": failed}


def ours_predictions(work: Path, days: list[str]) -> dict[str, Any]:
    from ml_platform.assets import keys
    from ml_platform.io.parquet_lake import DataLake
    from ml_platform.resources.mlflow_resource import MlflowResource
    from ml_platform.steps import score, store_day

    spec, lake = churn(), DataLake(base_path=str(work / "ours"))
    started = time.perf_counter()
    model = MlflowResource(data_dir=str(work / "data"), model_cache_dir="").load_model(spec.name, "1")
    loaded = time.perf_counter()
    failed = []
    for result in score(model, "1", lake, keys.features(spec).with_prefix("range"), spec, days):
        failed += [f"{result.day} {o.name}" for o in result.outcomes if not o.passed]
        if result.passed:
            store_day(lake, keys.predictions(spec), result)
    return {"seconds": time.perf_counter() - loaded, "model_load_seconds": loaded - started, "failed_gates": failed}


# --------------------------------------------------------------------------- the floor: DuckDB


def floor_raw(work: Path, days: list[str]) -> dict[str, Any]:
    import duckdb

    spec = churn()
    connection = duckdb.connect()
    out = work / "floor" / "raw"
    out.mkdir(parents=True, exist_ok=True)
    columns = ", ".join(c.name for c in spec.columns)
    started, failed = time.perf_counter(), []
    for day in days:
        source = work / "data" / spec.source.directory / f"{day}.parquet"
        connection.execute(f"CREATE OR REPLACE TEMP TABLE day AS SELECT {columns} FROM read_parquet('{source}')")
        checks = connection.execute(_raw_gate_query(spec, day)).fetchone()
        names = ["min_rows", "unique_event_ids", "nulls", "value_ranges", "binary_label", "timestamps_in_partition"]
        failed += [f"{day} {name}" for name, ok in zip(names, checks, strict=True) if not ok]
        connection.execute(f"COPY day TO '{out / f'{day}.parquet'}' (FORMAT parquet)")
    return {"seconds": time.perf_counter() - started, "failed_gates": failed}


def _raw_gate_query(spec: Any, day: str) -> str:
    """The raw gates as one pass of aggregates: each column's nulls, ranges and allowed values, unique ids,
    a 0/1 label and timestamps inside the day (the schema gate is the read itself: DuckDB types columns)."""
    nulls, ranges = [], []
    for column in spec.columns:
        nulls.append(f"count(*) - count({column.name}) <= {column.max_null_fraction} * count(*)")
        if column.min_value is not None:
            ranges.append(f"coalesce(min({column.name}) >= {column.min_value}, true)")
        if column.max_value is not None:
            ranges.append(f"coalesce(max({column.name}) <= {column.max_value}, true)")
        if column.allowed_values:
            allowed = ", ".join(f"'{value}'" for value in column.allowed_values)
            ranges.append(f"count(*) FILTER (WHERE {column.name} NOT IN ({allowed})) = 0")
    label, stamp = spec.label.column, spec.timestamp_column
    return f"""SELECT count(*) >= {spec.gates.min_rows_per_day},
        count(DISTINCT {spec.event_id_column}) = count(*),
        {" AND ".join(nulls)},
        {" AND ".join(ranges)},
        count(*) FILTER (WHERE {label} NOT IN (0, 1)) = 0,
        count(*) FILTER (WHERE {stamp} < TIMESTAMPTZ '{day} 00:00:00+00'
                          OR {stamp} >= TIMESTAMPTZ '{day} 00:00:00+00' + INTERVAL 1 DAY) = 0
        FROM day"""


def floor_features(work: Path, days: list[str], name: str) -> dict[str, Any]:
    import duckdb

    spec = churn()
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    out = work / "floor" / name
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for chunk in [days[i : i + FEATURES_PER_RANGE_READ] for i in range(0, len(days), FEATURES_PER_RANGE_READ)]:
        first = dt.date.fromisoformat(chunk[0]) - dt.timedelta(days=LOOKBACK_DAYS - 1)
        inputs = [
            work / "ours" / "churn" / "raw_events" / f"{day}.parquet"
            for day in day_range(dt.date.fromisoformat(chunk[-1]), (dt.date.fromisoformat(chunk[-1]) - first).days + 1)
        ]
        files = ", ".join(f"'{path}'" for path in inputs if path.exists())
        frame = connection.execute(_features_query(spec, files, chunk, first)).df()
        for day, rows in frame.groupby("day", sort=False):
            rows.reset_index(drop=True).to_parquet(out / f"{day}.parquet", index=False)
    return {"seconds": time.perf_counter() - started, "failed_gates": []}


def _features_query(spec: Any, files: str, days: list[str], first: dt.date) -> str:
    """Daily aggregates per (customer, day), then per target day each feature over its window; customers
    with an event in the lookback and no cancellation from `first` up to the day (terminal label)."""
    daily, features = [], []
    for index, feature in enumerate(spec.features):
        where = f"{feature.where.column} = '{feature.where.equals}'" if feature.where else "true"
        in_window = f"d > t - {feature.window_days}"
        if feature.agg == "count":
            daily.append(f"count(*) FILTER (WHERE {where}) AS a{index}")
            features.append(f"coalesce(sum(a{index}) FILTER (WHERE {in_window}), 0)::DOUBLE AS {feature.name}")
        elif feature.agg == "sum":
            daily.append(f"sum({feature.column}) FILTER (WHERE {where}) AS a{index}")
            features.append(
                f"round(coalesce(sum(a{index}) FILTER (WHERE {in_window}), 0), 6)::DOUBLE AS {feature.name}"
            )
        elif feature.agg == "days_since_last":
            daily.append(f"count(*) FILTER (WHERE {where}) AS a{index}")
            features.append(
                f"coalesce(t - max(d) FILTER (WHERE a{index} > 0 AND {in_window}), "
                f"{feature.window_days})::DOUBLE AS {feature.name}"
            )
        else:
            raise SystemExit(f"the floor implements count/sum/days_since_last, not {feature.agg}")
    targets = ", ".join(f"DATE '{day}'" for day in days)
    entity, stamp, label = spec.entity_column, spec.timestamp_column, spec.label.column
    return f"""
    WITH daily AS (
        SELECT {entity} AS k, CAST({stamp} AS DATE) AS d, max({label}) AS fired, {", ".join(daily)}
        FROM read_parquet([{files}]) GROUP BY ALL),
    targets AS (SELECT unnest([{targets}]) AS t),
    active AS (SELECT DISTINCT k, t FROM daily JOIN targets ON d BETWEEN t - {LOOKBACK_DAYS - 1} AND t)
    SELECT active.k AS {entity}, strftime(active.t, '%Y-%m-%d') AS day, {", ".join(features)}
    FROM active JOIN daily ON daily.k = active.k AND d BETWEEN DATE '{first}' AND active.t
    GROUP BY active.k, active.t
    HAVING coalesce(max(fired), 0) = 0
    ORDER BY day, {entity}"""


def floor_predictions(work: Path, days: list[str]) -> dict[str, Any]:
    import joblib
    import pandas as pd
    import pyarrow.parquet as pq

    spec = churn()
    started = time.perf_counter()
    model = joblib.load(work / "model.joblib")
    loaded = time.perf_counter()
    out = work / "floor" / "predictions"
    out.mkdir(parents=True, exist_ok=True)
    names = [*spec.feature_names]
    for day in days:
        features = pq.read_table(work / "ours" / "range" / "churn" / "features" / f"{day}.parquet").to_pandas()
        scores = model.predict_proba(features[names])[:, 1]
        pd.DataFrame(
            {
                spec.entity_column: features[spec.entity_column],
                "day": features["day"],
                "score": scores,
                "model_version": "1",
            }
        ).to_parquet(out / f"{day}.parquet", index=False)
    return {"seconds": time.perf_counter() - loaded, "model_load_seconds": loaded - started, "failed_gates": []}


MEASUREMENTS = {
    ("raw", "ours"): lambda work, plan: ours_raw(work, plan["all_days"]),
    ("raw", "floor"): lambda work, plan: floor_raw(work, plan["all_days"]),
    ("features_range", "ours"): lambda work, plan: ours_features(work, plan["range"], "range"),
    ("features_range", "floor"): lambda work, plan: floor_features(work, plan["range"], "range"),
    ("features_one_day", "ours"): lambda work, plan: ours_features(work, plan["range"][-1:], "one_day"),
    ("features_one_day", "floor"): lambda work, plan: floor_features(work, plan["range"][-1:], "one_day"),
    ("predictions", "ours"): lambda work, plan: ours_predictions(work, plan["range"]),
    ("predictions", "floor"): lambda work, plan: floor_predictions(work, plan["range"]),
}


# --------------------------------------------------------------------------- the parent: setup, runs, checks


def measure(work: Path, stage: str, implementation: str) -> dict[str, Any]:
    """One stage by one implementation in a fresh process: its result and the process's peak RSS."""
    completed = subprocess.run(
        [sys.executable, __file__, "--child", stage, implementation, "--work", str(work)],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"{stage}/{implementation} failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def measure_stage(work: Path, plan: dict[str, Any], stage: str) -> dict[str, Any]:
    """Both implementations of one stage, as one printed and recorded row."""
    if stage == "predictions":
        fit_and_register_model(work, plan["range"])
    measured = {implementation: measure(work, stage, implementation) for implementation in ("ours", "floor")}
    days = len(plan["all_days"]) if stage == "raw" else 1 if stage == "features_one_day" else len(plan["range"])
    row = {
        "stage": stage,
        "days": days,
        **{f"{impl}_{key}": value for impl, result in measured.items() for key, value in result.items()},
    }
    row["ratio"] = row["ours_seconds"] / row["floor_seconds"]
    print(
        f"  {stage:<17} {days:>3} d  ours {row['ours_seconds']:7.2f} s ({row['ours_peak_rss_mb']:6.0f} MB)"
        f"  floor {row['floor_seconds']:7.2f} s ({row['floor_peak_rss_mb']:6.0f} MB)  {row['ratio']:.2f}x",
        flush=True,
    )
    if row["ours_failed_gates"] or row["floor_failed_gates"]:
        print(f"    failed gates: ours {row['ours_failed_gates'][:5]}, floor {row['floor_failed_gates'][:5]}")
    return row


def child(stage: str, implementation: str, work: Path) -> None:
    from ml_platform_tests.support.servers import process_peak_rss_mb

    plan = json.loads((work / "plan.json").read_text())
    result = MEASUREMENTS[(stage, implementation)](work, plan)
    result["peak_rss_mb"] = process_peak_rss_mb()
    print(json.dumps(result))


def fit_and_register_model(work: Path, days: list[str]) -> None:
    """The churn spec's random forest on the range's features, registered in MLflow as churn v1 (ours loads
    it from there) and dumped with joblib (the floor loads that)."""
    import joblib
    import pandas as pd

    from ml_platform.models.trainers import build_trainer
    from ml_platform.resources.mlflow_resource import MlflowResource

    spec = churn()
    frame = pd.concat(
        pd.read_parquet(work / "ours" / "range" / "churn" / "features" / f"{day}.parquet") for day in days
    )
    sample = frame.sample(min(len(frame), 100_000), random_state=SEED)
    trainer = build_trainer(spec.model.type, spec.model.params)
    trainer.fit(sample[spec.feature_names], (sample["logins_7d"] == 0).astype(int), sample["day"])
    mlflow = MlflowResource(data_dir=str(work / "data")).configure()
    with mlflow.start_run():
        trainer.log_model("model", sample[spec.feature_names].head(5), registered_model_name=spec.name)
    joblib.dump(trainer.model, work / "model.joblib")


def compare(work: Path, plan: dict[str, Any]) -> list[str]:
    """Where the floor's outputs differ from ours (an empty list: equal)."""
    import numpy as np
    import pandas as pd

    spec, problems = churn(), []
    pairs = [("raw", plan["all_days"], "ours/churn/raw_events", "floor/raw", [spec.event_id_column])]
    pairs += [
        (name, days, f"ours/{name}/churn/features", f"floor/{name}", ["day", spec.entity_column])
        for name, days in (("range", plan["range"]), ("one_day", plan["range"][-1:]))
    ]
    pairs.append(
        ("predictions", plan["range"], "ours/churn/predictions", "floor/predictions", ["day", spec.entity_column])
    )
    for name, days, ours_dir, floor_dir, order in pairs:
        for day in days:
            ours = pd.read_parquet(work / ours_dir / f"{day}.parquet").sort_values(order).reset_index(drop=True)
            floor = pd.read_parquet(work / floor_dir / f"{day}.parquet").sort_values(order).reset_index(drop=True)
            if list(ours.columns) != list(floor.columns) or len(ours) != len(floor):
                problems.append(
                    f"{name} {day}: columns/rows {list(ours.columns)}/{len(ours)} vs {list(floor.columns)}/{len(floor)}"
                )
                continue
            for column in ours.columns:
                left, right = ours[column], floor[column]
                if pd.api.types.is_float_dtype(left):
                    same = np.allclose(
                        left.to_numpy(), right.to_numpy(dtype=float), rtol=1e-9, atol=1e-6, equal_nan=True
                    )
                elif pd.api.types.is_datetime64_any_dtype(left):  # DuckDB writes microseconds, pandas nanoseconds
                    same = bool(
                        (
                            left.dt.tz_convert("UTC").dt.as_unit("us") == right.dt.tz_convert("UTC").dt.as_unit("us")
                        ).all()
                    )
                else:
                    same = left.astype(object).equals(right.astype(object))
                if not same:
                    problems.append(f"{name} {day}: column {column} differs")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=10, help="days of output per range run (default 10)")
    parser.add_argument("--events-per-day", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--child", nargs=2, metavar=("STAGE", "IMPLEMENTATION"), help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child, args.work)
        return 0
    if args.days < 1 or args.events_per_day < 1:
        parser.error("--days and --events-per-day must be positive")

    from demo.generators.churn import write_landing_files

    work = Path(tempfile.mkdtemp(prefix="ml-platform-floor-"))
    spec = churn()
    all_days = day_range(dt.date(2025, 6, 30), args.days + LOOKBACK_DAYS - 1)
    plan = {"all_days": all_days, "range": all_days[-args.days :]}
    (work / "plan.json").write_text(json.dumps(plan))
    print(f"landing {len(all_days)} days x {args.events_per_day:,} events in {work}", flush=True)
    write_landing_files(
        work / "data" / spec.source.directory,
        dt.date.fromisoformat(all_days[0]),
        len(all_days),
        args.events_per_day,
        SEED,
    )
    rows = [measure_stage(work, plan, stage) for stage in ("raw", "features_range", "features_one_day", "predictions")]
    problems = compare(work, plan)
    print("outputs equal" if not problems else "OUTPUTS DIFFER:\n  " + "\n  ".join(problems[:20]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "events_per_day": args.events_per_day,
                    "range_days": args.days,
                    "stages": rows,
                    "outputs_equal": not problems,
                    "machine": {
                        "cpus": __import__("os").cpu_count(),
                        "python": platform.python_version(),
                        "platform": platform.platform(),
                    },
                    "date": dt.date.today().isoformat(),
                },
                indent=2,
            )
        )
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
