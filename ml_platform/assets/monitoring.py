"""Monitoring assets: daily feature drift of each use case against its champion's training data."""

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import dagster as dg

from ml_platform import steps
from ml_platform.assets import keys
from ml_platform.assets.conventions import daily_conventions
from ml_platform.assets.range_step import DailyStage, RangeStep
from ml_platform.checks.gate import partitioned_check_spec
from ml_platform.checks.rules import DRIFT_CHECK
from ml_platform.features.compute import DAY
from ml_platform.features.drift import METHOD, SCORE
from ml_platform.resources.mlflow_resource import CHAMPION, MlflowResource
from ml_platform.spec import UseCaseSpec

SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn(DAY, "string"),
        dg.TableColumn("feature", "string", description=f"a feature, or {SCORE}"),
        dg.TableColumn("psi", "float64"),
        dg.TableColumn("champion_version", "string"),
    ]
)


def drift_stage(spec: UseCaseSpec, partitions_def: dg.PartitionsDefinition) -> DailyStage:
    key, limit = keys.drift(spec), spec.drift.psi_threshold
    inputs = steps.DriftInputs(keys.raw_events(spec), keys.features(spec), keys.predictions(spec))

    def drift(step: RangeStep) -> Iterator[Any]:
        context, lake = step.context, step.context.resources.lake
        mlflow: MlflowResource = context.resources.mlflow
        champion = mlflow.version_by_alias(spec.name, CHAMPION)
        if champion is None:
            raise dg.Failure(f"{spec.name}: no champion yet, so no training reference to measure drift against")
        gate, blocked = step.gate(key), step.failed_days(inputs.features, inputs.predictions)
        available = set(lake.existing_partitions(inputs.features))
        for day in context.partition_keys:
            if day not in blocked and day not in available:
                blocked[day] = f"{inputs.features.to_user_string()} {day} is not materialized"
        for day, reason in sorted(blocked.items()):
            gate.block(day, DRIFT_CHECK, f"not measured: {reason}")
        version, worst = str(champion.version), 0.0
        reference = mlflow.load_reference(champion.run_id)
        days = [day for day in context.partition_keys if day not in blocked]
        for result in steps.measure_drift(lake, inputs, spec, reference, version, days):
            # written whatever the PSI: drift is a measurement, its check warns and the sensor retrains
            gate.evaluate(result.day, [replace(outcome, severity="warn") for outcome in result.outcomes])
            if result.frame is None:  # measure_drift yields a frame for every day it measures
                raise ValueError(f"{spec.name}: drift of {result.day} came without its measurements")
            lake.write_partition(key, result.day, result.frame)
            day_worst = float(result.frame["psi"].max()) if len(result.frame) else None
            gate.record_written(
                result.day,
                len(result.frame),
                **({"max_psi": day_worst} if day_worst is not None else {}),
                **result.note_metadata,
            )
            worst = max(worst, day_worst or 0.0)
        yield from gate.conclude(max_psi=worst, champion_version=version, method=METHOD)

    return DailyStage(
        dg.AssetSpec(
            key,
            description=f"{spec.name}: population stability index of every feature of the day against the "
            f"champion's training data, and of the day's scores ('{SCORE}') against the champion's holdout "
            f"scores. PSI above {limit} on {spec.drift.consecutive_days} consecutive days triggers retraining "
            "once per drift episode (the drift sensor).",
            kinds={"parquet", "pandas"},
            deps=[inputs.features, inputs.predictions, keys.champion(spec)],
            group_name=spec.name,
            owners=spec.owners,
            metadata={"dagster/column_schema": SCHEMA},
            **daily_conventions(spec, "drift"),
        ),
        [
            partitioned_check_spec(
                DRIFT_CHECK,
                key,
                partitions_def,
                f"Every feature's PSI is at most {limit} (warning, not blocking)",
                blocking=False,
            )
        ],
        drift,
        resource_keys=frozenset({"mlflow"}),
    )
