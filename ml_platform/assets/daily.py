"""The daily stages of a use case: raw events, features, predictions.

Each runs over whatever partition range its run holds (one day from the
schedule or sensor, a year from a single-run backfill), as a stage of the use
case's one daily step (`range_step.py`): the Dagster-free steps
(`ml_platform/steps.py`) compute and validate day after day in bounded chunks,
each day passes its `PartitionGate` before its file is written, and a day
that depends on a day an earlier stage failed fails too.
"""

from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg
import pandas as pd

from ml_platform import steps
from ml_platform.assets import keys
from ml_platform.assets.conventions import daily_conventions
from ml_platform.assets.lookback import feature_inputs
from ml_platform.assets.range_step import DailyStage, RangeStep
from ml_platform.automation.conditions import FEATURES_FOLLOW_RAW
from ml_platform.automation.high_scores import alert_high_scores
from ml_platform.checks.gate import PartitionGate, gate_check_specs
from ml_platform.checks.rules import FEATURE_CHECKS, PREDICTION_CHECKS, raw_checks
from ml_platform.features.compute import DAY, feature_input_days
from ml_platform.io.parquet_lake import DataLake
from ml_platform.resources.alerts import AlertResource
from ml_platform.resources.mlflow_resource import CHAMPION, MlflowResource
from ml_platform.resources.sources import EventSource, source_resource_key
from ml_platform.spec import FeatureSpec, UseCaseSpec

TOP_RISK_ROWS = 10


def daily_stages(spec: UseCaseSpec, partitions_def: dg.PartitionsDefinition) -> list[DailyStage]:
    return [
        _raw_events(spec, partitions_def),
        _features(spec, partitions_def),
        _predictions(spec, partitions_def),
    ]


def _common(spec: UseCaseSpec, stage: str) -> dict[str, Any]:
    """What every daily asset's spec says besides its own: group, owners, code version, freshness."""
    return {"group_name": spec.name, "owners": spec.owners, **daily_conventions(spec, stage)}


def _raw_events(spec: UseCaseSpec, partitions_def: dg.PartitionsDefinition) -> DailyStage:
    key, source_key = keys.raw_events(spec), source_resource_key(spec)
    schema = dg.TableSchema(
        columns=[dg.TableColumn(c.name, c.dtype, description=c.description or None) for c in spec.columns]
    )

    def raw_events(step: RangeStep) -> Iterator[Any]:
        gate, resources = step.gate(key), step.context.resources
        source: EventSource = getattr(resources, source_key)
        for result in steps.ingest(source, spec, step.context.partition_keys):
            _store(gate, resources.lake, result)
        yield from gate.conclude()

    return DailyStage(
        dg.AssetSpec(
            key,
            description=f"{spec.name}: the day's landed events ({spec.source.kind}), validated and stored as Parquet. "
            "Blocking gates: " + ", ".join(raw_checks(spec)) + ".",
            kinds={"parquet", "pandas"},
            metadata={"dagster/column_schema": schema, "source": spec.source.model_dump()},
            **_common(spec, "raw_events"),
        ),
        gate_check_specs(key, raw_checks(spec), partitions_def),
        raw_events,
        resource_keys=frozenset({source_key}),  # the source's key is the use case's own
    )


def _features(spec: UseCaseSpec, partitions_def: dg.PartitionsDefinition) -> DailyStage:
    key, raw_key, source_key = keys.features(spec), keys.raw_events(spec), source_resource_key(spec)
    first_day = partitions_def.get_first_partition_key() or spec.start_date.isoformat()  # where the history starts
    schema = dg.TableSchema(
        columns=[
            *[dg.TableColumn(name, spec.column(name).dtype) for name in spec.key_columns],
            dg.TableColumn(DAY, "string", description="Partition day (features use events up to and including it)"),
            *[
                dg.TableColumn(f.name, "string" if f.agg == "category" else "float64", description=describe_feature(f))
                for f in spec.expanded_features
            ],
        ]
    )

    def features(step: RangeStep) -> Iterator[Any]:
        gate, lake, days = step.gate(key), step.context.resources.lake, step.context.partition_keys
        failed_raw = step.failed_days(raw_key)

        def source() -> EventSource:
            found: EventSource = getattr(step.context.resources, source_key)
            return found

        # under backfill.max_days_per_run, window days another run has not stored yet come from the source
        with feature_inputs(lake, source, spec, raw_key, days, failed_raw, first_day) as (inputs, unusable):
            failed_raw |= unusable
            for result in steps.build_features(inputs, raw_key, spec, days, step.config.chunk_days):
                culprit = next((failed_raw[d] for d in feature_input_days(spec, [result.day]) if d in failed_raw), None)
                if culprit:
                    gate.block(result.day, "inputs_complete", f"its window holds a failed raw day: {culprit}")
                else:
                    _store(gate, lake, result)
        yield from gate.conclude(window_days=spec.lookback_days)

    return DailyStage(
        dg.AssetSpec(
            key,
            description=f"{spec.name}: point-in-time features per {spec.subject} and day; day D uses raw "
            f"events of D-{spec.lookback_days - 1}..D only (gate inputs_complete: no gap in that window).",
            kinds={"parquet", "pandas"},
            # Day D reads raw days D-{lookback-1}..D from the lake, but is declared to depend on raw day D
            # alone: a backfill of raw_events + features selected in the UI then targets exactly the
            # chosen days of both, in one run, instead of also the later feature days whose windows
            # reach into the range (which Dagster would target, and run separately).
            deps=[raw_key],
            automation_condition=FEATURES_FOLLOW_RAW,
            metadata={"dagster/column_schema": schema},
            **_common(spec, "features"),
        ),
        gate_check_specs(key, FEATURE_CHECKS, partitions_def),
        features,
        resource_keys=frozenset({source_key}),  # window days another run has not stored yet (lookback.py)
    )


def _predictions(spec: UseCaseSpec, partitions_def: dg.PartitionsDefinition) -> DailyStage:
    key, features_key = keys.predictions(spec), keys.features(spec)

    def predictions(step: RangeStep) -> Iterator[Any]:
        context, lake = step.context, step.context.resources.lake
        mlflow: MlflowResource = context.resources.mlflow
        champion = mlflow.version_by_alias(spec.name, CHAMPION)
        if champion is None:
            raise dg.Failure(
                f"{spec.name}: no model has alias '{CHAMPION}' yet; materialize {spec.name}/champion first",
                allow_retries=False,
            )  # a definite answer: retrying cannot change it
        model = mlflow.load_model(spec.name, champion.version)
        gate, failed_features = step.gate(key), step.failed_days(features_key)
        days = [day for day in context.partition_keys if day not in failed_features]
        for day in sorted(failed_features):
            gate.block(day, "scores_valid", f"not scored: {failed_features[day]}")
        newest: steps.DayResult | None = None
        for result in steps.score(model, champion.version, lake, features_key, spec, days):
            if _store(gate, lake, result, describe=lambda frame: _describe_predictions(frame, spec)):
                newest = result
        alerted = {}
        if newest and newest.frame is not None and not gate.failures:  # the newest day only: no paging for history
            alerts: AlertResource = context.resources.alerts
            alerted = alert_high_scores(alerts, spec, newest.day, newest.frame, alerts.run_url(context.run.run_id))
            if "high_score_alert_error" in alerted:  # `send` never raises: an outage cannot undo good predictions
                context.log.warning(f"{spec.name}: high-score alert for {newest.day} not delivered")
        yield from gate.conclude(model_version=str(champion.version), **alerted)

    return DailyStage(
        dg.AssetSpec(
            key,
            description=f"{spec.name}: every {spec.subject} of the day scored by the MLflow model at alias "
            f"'{CHAMPION}', loaded once per run.",
            kinds={"parquet", "mlflow"},
            deps=[features_key, keys.champion(spec)],
            metadata={"dagster/column_schema": _predictions_schema(spec)},
            **_common(spec, "predictions"),
        ),
        gate_check_specs(key, PREDICTION_CHECKS, partitions_def),
        predictions,
        resource_keys=frozenset({"mlflow", "alerts"}),
    )


def _predictions_schema(spec: UseCaseSpec) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            *[dg.TableColumn(name, spec.column(name).dtype) for name in spec.key_columns],
            dg.TableColumn(DAY, "string"),
            *(
                [dg.TableColumn(steps.PREDICTED_CLASS, "string", description="The most probable class")]
                if spec.label.task == "multiclass"
                else []
            ),
            dg.TableColumn(
                "score",
                "float64",
                description="Predicted probability of the label (of the predicted class), or the forecast value",
            ),
            dg.TableColumn("model_version", "string", description="Registered MLflow version that scored the row"),
        ]
    )


def _store(
    gate: PartitionGate,
    lake: DataLake,
    result: steps.DayResult,
    describe: Callable[[pd.DataFrame], dict[str, Any]] = lambda frame: {},
) -> bool:
    """Write a step's day to the lake if its gate admits it and note it as written, with the day's
    metadata from `describe`; whether it was written."""
    if not gate.admit(result):
        return False
    rows = steps.store_day(lake, gate.asset_key, result)  # a day larger than a row group: written batch by batch
    described = describe(result.frame) if result.frame is not None else {}
    gate.record_written(result.day, rows, **described, **result.note_metadata)
    return True


def describe_feature(feature: FeatureSpec) -> str:
    subject = feature.column or "events"
    where = f" where {feature.where.column} == {feature.where.equals}" if feature.where else ""
    if feature.agg == "last":
        return f"last {subject} {feature.lag_days} day(s) before the row's day"
    if feature.agg == "category":
        return f"the event's {subject} ({feature.encoding} encoding by the model, fitted on training days)"
    if feature.agg in ("value", "flag", "hour"):
        return f"{feature.agg} of the event's {subject}{where}"
    return f"{feature.agg} of {subject}{where} over {feature.window_days} day(s)"


def _describe_predictions(scored: pd.DataFrame, spec: UseCaseSpec) -> dict[str, Any]:
    """A day's predictions at a glance: how many of each class, or the highest scores."""
    if spec.label.task == "multiclass":
        counts = scored[steps.PREDICTED_CLASS].value_counts()
        return {"class_counts": dg.MetadataValue.json({str(name): int(count) for name, count in counts.items()})}
    return {"top_risk": _top_risk_table(scored, spec)}


def _top_risk_table(scored: pd.DataFrame, spec: UseCaseSpec) -> dg.MetadataValue:
    top = scored.nlargest(TOP_RISK_ROWS, "score")
    lines = [f"| {spec.subject} | score |", "|---|---|"]
    lines += [f"| {entity} | {score:.4f} |" for entity, score in zip(top[spec.subject], top["score"], strict=True)]
    return dg.MetadataValue.md("\n".join(lines) if len(top) else "no rows")
