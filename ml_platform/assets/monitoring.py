"""Monitoring assets: daily feature drift of each use case against its champion's training data."""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from ml_platform import steps
from ml_platform.assets import keys
from ml_platform.assets.daily import ranged
from ml_platform.checks.gate import PartitionGate, partitioned_check_spec
from ml_platform.checks.rules import DRIFT_CHECK
from ml_platform.features.compute import DAY
from ml_platform.features.drift import METHOD, SCORE
from ml_platform.io.parquet_lake import DataLake
from ml_platform.resources.mlflow_resource import CHAMPION, MlflowResource
from ml_platform.spec import UseCaseSpec

SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn(DAY, "string"), dg.TableColumn("feature", "string", description=f"a feature, or {SCORE}"),
    dg.TableColumn("psi", "float64"), dg.TableColumn("champion_version", "string"),
])


def build_monitoring_assets(spec: UseCaseSpec, partitions_def: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    key, limit = keys.drift(spec), spec.drift.psi_threshold
    inputs = steps.DriftInputs(keys.raw_events(spec), keys.features(spec), keys.predictions(spec))

    @dg.multi_asset(
        name=f"{spec.name}__drift",
        specs=[dg.AssetSpec(
            key,
            description=f"{spec.name}: population stability index of every feature of the day against the "
            f"champion's training data, and of the day's scores ('{SCORE}') against the champion's holdout "
            f"scores. PSI above {limit} on {spec.drift.consecutive_days} consecutive days triggers retraining "
            "once per drift episode (the drift sensor).",
            kinds={"parquet", "pandas"}, deps=[inputs.features, inputs.predictions, keys.champion(spec)],
            group_name=spec.name, owners=spec.owners, metadata={"dagster/column_schema": SCHEMA},
        )],
        check_specs=[partitioned_check_spec(DRIFT_CHECK, key, partitions_def,
                                            f"Every feature's PSI is at most {limit} (warning, not blocking)", blocking=False)],
        **ranged(partitions_def),
    )
    def drift(context: dg.AssetExecutionContext, lake: DataLake, mlflow: MlflowResource) -> Iterator[Any]:
        champion = mlflow.version_by_alias(spec.name, CHAMPION)
        if champion is None:
            raise dg.Failure(f"{spec.name}: no champion yet, so no training reference to measure drift against")
        missing = sorted(set(context.partition_keys) - set(lake.existing_partitions(inputs.features)))
        if missing:
            raise dg.Failure(f"{spec.name}: features for partition(s) {missing[:5]} are not materialized")
        gate = PartitionGate(context, key, measurement=True)  # drift warns; the sensor retrains
        version, worst = str(champion.version), 0.0
        reference = mlflow.load_reference(champion.run_id)
        for result in steps.measure_drift(lake, inputs, spec, reference, version, context.partition_keys):
            gate.evaluate(result.day, result.outcomes)  # written whatever the PSI: drift is a measurement
            lake.write_partition(key, result.day, result.frame)
            day_worst = float(result.frame["psi"].max()) if len(result.frame) else None
            gate.record_written(result.day, len(result.frame), **({"max_psi": day_worst} if day_worst is not None else {}))
            worst = max(worst, day_worst or 0.0)
        yield from gate.conclude(max_psi=worst, champion_version=version, method=METHOD)

    return [drift]
