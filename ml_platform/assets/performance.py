"""`<use case>/performance`: how well the champion did on each scored day, and how well it is expected to.

Day D depends on its predictions and on the raw days that decide its labels (D+1..D+horizon, or D
itself for an event's own label). Each run estimates every day of its range from the scores alone and,
where those raw days have all landed, measures the realized metrics on the joined labels
(`ml_platform/monitoring/realized.py`); the automation condition runs D when its predictions land
(the estimate) and again when its last label day lands (the realized metrics). Each day's numbers are
its partition's metadata (`realized_<metric>`, `estimated_<metric>`, `estimation_error_<metric>`:
floats, so the asset's Plots tab draws them over the days) and one row in the lake, which the
degradation check and the performance sensor read. The blocking check `performance_within_holdout` fails
a day that ends `monitoring.consecutive_days` days below the champion's holdout interval: the run fails
naming those days, as every gate's does, but they are recorded all the same (a measurement, not an
input to refuse), and the sensor retrains once per such episode.
"""

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pandas as pd

from ml_platform.assets import keys
from ml_platform.assets.conventions import code_version
from ml_platform.assets.range_step import ranged
from ml_platform.automation.conditions import performance_condition
from ml_platform.checks.gate import PartitionGate, gate_failure, partitioned_check_spec
from ml_platform.features.compute import DAY, first_complete_day, label_input_days
from ml_platform.io.parquet_lake import DataLake
from ml_platform.models.challenger import CALIBRATION_TAG, THRESHOLD_TAG
from ml_platform.monitoring import realized as perf
from ml_platform.monitoring.degradation import BOUND, PERFORMANCE_CHECK, VERSION, WARM_UP, day_outcome, gate_column
from ml_platform.resources.mlflow_resource import MlflowResource
from ml_platform.spec import UseCaseSpec

HISTORY_DAYS = 60  # earlier days read for an episode that started before the run's range
DAY_RESAMPLES = 200  # a day's own interval: enough for its 1 - 2 * significance_level percentiles, cheap per day


@dataclass(frozen=True)
class ChampionRecord:
    """What a registered version brings to its scored days: its decision threshold, holdout metrics and bound."""

    version: str
    threshold: float | None
    calibration: dict[str, list[float]] | None  # holdout scores -> positive rates (None: registered before it was kept)
    holdout: dict[str, float]
    bound: float | None  # the compare metric's holdout interval end the gate holds live days against


def champion_record(mlflow: MlflowResource, spec: UseCaseSpec, version: str) -> ChampionRecord:
    client = mlflow.client()
    registered = client.get_model_version(spec.name, version)
    threshold = registered.tags.get(THRESHOLD_TAG)
    metrics = client.get_run(registered.run_id).data.metrics
    holdout = {name.removeprefix("holdout_"): value for name, value in metrics.items() if name.startswith("holdout_")}
    metric = spec.gates.compare_metric
    bound = holdout.get(f"{metric}_ci_high" if perf.lower_is_better(metric) else f"{metric}_ci_low")
    calibration = registered.tags.get(CALIBRATION_TAG)
    return ChampionRecord(
        version,
        float(threshold) if threshold else None,
        json.loads(calibration) if calibration else None,
        holdout,
        bound,
    )


def day_performance(
    spec: UseCaseSpec,
    lake: DataLake,
    day: str,
    champion: ChampionRecord,
    raw_days: set[str],
) -> dict[str, Any]:
    """One day's row: rows, coverage, the version, its bound, estimated and (labels complete) realized metrics."""
    predictions = lake.read(keys.predictions(spec), [day])
    estimated = perf.estimated_metrics(spec, predictions, champion.threshold, champion.holdout, champion.calibration)
    warm_from = first_complete_day(spec, sorted(raw_days))
    row: dict[str, Any] = {
        DAY: day,
        VERSION: champion.version,
        "rows": len(predictions),
        BOUND: champion.bound,
        WARM_UP: warm_from is None or day < warm_from,
        **{f"estimated_{name}": value for name, value in estimated.items()},
    }
    if not perf.labels_complete(spec, day, raw_days):
        return row
    events = perf.read_label_events(lake, spec, keys.raw_events(spec), [day])
    features = lake.read(keys.features(spec), [day]) if spec.label.naive_feature else None
    joined = perf.join_labels(spec, predictions, events, features)
    realized = perf.realized_metrics(spec, joined, champion.threshold)
    gates, metric = spec.gates, spec.gates.compare_metric
    interval = perf.realized_interval(
        spec, joined, metric, champion.threshold, DAY_RESAMPLES, 1 - 2 * gates.significance_level, spec.training.seed
    )
    if interval is not None:
        realized.update({f"{metric}_ci_low": interval[0], f"{metric}_ci_high": interval[1]})
    return {
        **row,
        "labelled_rows": int(joined[perf.LABEL].notna().sum()),
        "label_coverage": perf.coverage(joined),
        **{f"realized_{name}": value for name, value in realized.items()},
        **{f"estimation_error_{name}": value for name, value in perf.estimation_errors(realized, estimated).items()},
    }


def build_performance_asset(
    spec: UseCaseSpec, partitions_def: dg.TimeWindowPartitionsDefinition
) -> dg.AssetsDefinition:
    with warnings.catch_warnings():  # beta, knowingly: a single-run backfill policy on @asset, and label days
        warnings.simplefilter("ignore", dg.BetaWarning)  # that do not exist yet for the newest days
        return _performance_asset(spec, partitions_def)


def _performance_asset(spec: UseCaseSpec, partitions_def: dg.TimeWindowPartitionsDefinition) -> dg.AssetsDefinition:
    key, raw_key, predictions_key = keys.performance(spec), keys.raw_events(spec), keys.predictions(spec)
    horizon = spec.label.horizon_days
    label_days = dg.TimeWindowPartitionMapping(  # D+1..D+horizon, or D itself for an event's own label
        start_offset=1 if horizon else 0, end_offset=horizon, allow_nonexistent_upstream_partitions=True
    )
    metric, needed = spec.gates.compare_metric, spec.monitoring.consecutive_days

    @dg.multi_asset(  # one skippable spec: a run over a range records each day's materialization itself
        name=f"{spec.name}__performance",
        specs=[
            dg.AssetSpec(
                key,
                skippable=True,
                deps=[dg.AssetDep(predictions_key), dg.AssetDep(raw_key, partition_mapping=label_days)],
                automation_condition=performance_condition(predictions_key, raw_key),
                group_name=spec.name,
                owners=spec.owners,
                code_version=code_version(spec, "performance"),
                kinds={"parquet", "mlflow"},
                description=f"{spec.name}: realized metrics of each scored day once its labels matured (raw days up to "
                f"D+{horizon}), metrics estimated from the scores before that (confidence-based for classifiers), the "
                f"estimation error, rows, label coverage and the champion version that scored the day.",
            )
        ],
        **ranged(partitions_def),  # as the daily step: a range is one run, and its outputs are optional
        check_specs=[
            partitioned_check_spec(
                PERFORMANCE_CHECK,
                key,
                partitions_def,
                f"{gate_column(spec)} within the champion's holdout interval of {metric} on at least one of "
                f"{needed} consecutive scored days (the performance sensor retrains once per failing episode)",
                blocking=True,
            )
        ],
        required_resource_keys={"lake", "mlflow"},
    )
    def performance(context: dg.AssetExecutionContext) -> Iterator[Any]:
        lake: DataLake = context.resources.lake
        mlflow: MlflowResource = context.resources.mlflow
        gate, champions = PartitionGate(context, key), {}
        raw_days, scored = set(lake.existing_partitions(raw_key)), set(lake.existing_partitions(predictions_key))
        rows = []
        for day in context.partition_keys:
            if day not in scored:
                gate.block(day, PERFORMANCE_CHECK, f"{predictions_key.to_user_string()} {day} is not materialized")
                continue
            version = _scoring_version(lake, spec, day)
            if version not in champions:
                champions[version] = champion_record(mlflow, spec, version)
            rows.append(day_performance(spec, lake, day, champions[version], raw_days))
        table = _with_history(lake, key, pd.DataFrame(rows), context.partition_keys[0])
        for row in rows:
            day = row[DAY]
            lake.write_partition(key, day, pd.DataFrame([row]))  # written whatever the check says: a measurement
            gate.evaluate(day, [day_outcome(spec, day, table)])
            gate.record_written(day, row["rows"], **_metadata(spec, row))
        yield from gate.conclude()
        if gate.failures:  # as every gate: the run fails naming the days (degraded days are recorded all the same)
            raise gate_failure({key: gate.failures}, materialized={key: len(gate.rows)})

    return performance


def _scoring_version(lake: DataLake, spec: UseCaseSpec, day: str) -> str:
    """The registered version that scored the day (the most rows', should a day hold two)."""
    versions = lake.read(keys.predictions(spec), [day], columns=["model_version"])["model_version"]
    if versions.empty:
        raise dg.Failure(f"{keys.predictions(spec).to_user_string()} {day} holds no rows, so no version that scored it")
    return str(versions.mode().iloc[0])


def _with_history(lake: DataLake, key: dg.AssetKey, rows: pd.DataFrame, first: str) -> pd.DataFrame:
    """The run's rows after the stored rows of the days before its range (an episode may have started there)."""
    earlier = [day for day in lake.existing_partitions(key) if day < first][-HISTORY_DAYS:]
    return pd.concat([lake.read(key, earlier), rows], ignore_index=True) if earlier else rows


def _metadata(spec: UseCaseSpec, row: dict[str, Any]) -> dict[str, Any]:
    """The day's partition metadata: numbers as floats (plotted), the version as text, where labels stand."""
    numbers = {
        name: float(value)
        for name, value in row.items()
        if name.startswith(("realized_", "estimated_", "estimation_error_")) and pd.notna(value)
    }
    last_label_day = label_input_days(spec, [row[DAY]])[-1]
    labels = "complete" if "label_coverage" in row else f"pending until raw day {last_label_day} lands"
    extra = (
        {"label_coverage": float(row["label_coverage"]), "labelled_rows": int(row["labelled_rows"])}
        if "label_coverage" in row
        else {}
    )
    bound = {"holdout_bound": float(row[BOUND])} if row[BOUND] is not None else {}
    return {
        "champion_version": row[VERSION],
        "labels": labels,
        "warm_up": bool(row[WARM_UP]),
        **extra,
        **bound,
        **numbers,
    }


def newest_measured(lake: DataLake, spec: UseCaseSpec, lookback_days: int = HISTORY_DAYS) -> dict[str, pd.Series]:
    """The newest stored day with realized metrics and the newest with estimated ones (either may be absent)."""
    days = lake.existing_partitions(keys.performance(spec))[-lookback_days:]
    table = lake.read(keys.performance(spec), days) if days else pd.DataFrame()
    newest = {}
    for source in ("realized", "estimated"):
        columns = [column for column in table.columns if column.startswith(f"{source}_")]
        measured = table.dropna(subset=columns, how="all") if columns else pd.DataFrame()
        if not measured.empty:
            newest[source] = measured.sort_values(DAY).iloc[-1]
    return newest


def performance_summary(lake: DataLake, spec: UseCaseSpec) -> list[str]:
    """`ml-platform summary`'s lines: the champion's realized and estimated compare metric on the newest days."""
    newest, metric = newest_measured(lake, spec), spec.gates.compare_metric
    if not newest:
        return [f"  performance: none yet ({keys.performance(spec).to_user_string()} not materialized)"]
    lines = []
    for source, row in newest.items():
        value = row.get(f"{source}_{metric}")
        shown = f"{metric} {value:.4f}" if pd.notna(value) else f"no {metric}"
        coverage = (
            f", label coverage {row['label_coverage']:.0%}" if source == "realized" and "label_coverage" in row else ""
        )
        lines.append(f"  performance {source} on {row[DAY]}: {shown} (champion v{row[VERSION]}{coverage})")
    if "realized" not in newest:
        lines.append(
            f"  performance realized: no day's labels matured yet (label horizon {spec.label.horizon_days} day(s))"
        )
    return lines
