"""Monitoring assets: daily feature drift of each use case against its champion's training data."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import pandas as pd

from ml_platform.assets import keys
from ml_platform.checks.rules import CheckOutcome
from ml_platform.checks.gate import PartitionGate, partitioned_check_spec
from ml_platform.features.compute import DAY, first_complete_day
from ml_platform.features.drift import METHOD, SCORE, population_stability
from ml_platform.io.parquet_lake import DataLake
from ml_platform.resources.mlflow_resource import CHAMPION, MlflowResource
from ml_platform.spec import UseCaseSpec

DRIFT_CHECK = "psi_within_limit"
NO_ROWS = pd.DataFrame({DAY: pd.Series(dtype="string"), "feature": pd.Series(dtype="string"),
                        "psi": pd.Series(dtype="float64"), "champion_version": pd.Series(dtype="string")})


def build_monitoring_assets(spec: UseCaseSpec, partitions_def: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    key, features_key, predictions_key = keys.drift(spec), keys.features(spec), keys.predictions(spec)
    limit = spec.drift.psi_threshold

    @dg.multi_asset(
        name=f"{spec.name}__drift",
        specs=[
            dg.AssetSpec(
                key,
                description=f"{spec.name}: population stability index of every feature of the day against the "
                f"champion's training data, and of the day's scores ('{SCORE}') against the champion's holdout "
                f"scores. PSI above {limit} on {spec.drift.consecutive_days} consecutive days triggers retraining "
                "once per drift episode (the drift sensor).",
                kinds={"parquet", "pandas"},
                deps=[features_key, predictions_key, keys.champion(spec)],
                group_name=spec.name,
                owners=spec.owners,
                metadata={"dagster/column_schema": dg.TableSchema(columns=[
                    dg.TableColumn(DAY, "string"), dg.TableColumn("feature", "string", description=f"a feature, or {SCORE}"),
                    dg.TableColumn("psi", "float64"),
                    dg.TableColumn("champion_version", "string"),
                ])},
            )
        ],
        check_specs=[partitioned_check_spec(DRIFT_CHECK, key, partitions_def,
                                            f"Every feature's PSI is at most {limit} (warning, not blocking)", blocking=False)],
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        can_subset=True,
    )
    def drift(context: dg.AssetExecutionContext, lake: DataLake, mlflow: MlflowResource) -> Iterator[Any]:
        champion = mlflow.version_by_alias(spec.name, CHAMPION)
        if champion is None:
            raise dg.Failure(f"{spec.name}: no champion yet, so no training reference to measure drift against")
        reference = mlflow.load_reference(champion.run_id)
        feature_reference = {name: bins for name, bins in reference.items() if name != SCORE}
        available = set(lake.existing_partitions(features_key))
        scored_days = set(lake.existing_partitions(predictions_key))
        complete_from = first_complete_day(spec, lake.existing_partitions(keys.raw_events(spec)))
        gate = PartitionGate(context, key, severity=dg.AssetCheckSeverity.WARN)  # drift warns; the sensor retrains
        worst: dict[str, float] = {}
        for day in sorted(context.partition_keys):
            if day not in available:
                raise dg.Failure(f"{spec.name}: features for partition {day} are not materialized")
            if complete_from is None or day < complete_from:  # windows still filling up: nothing comparable yet
                lake.write_partition(key, day, NO_ROWS)
                gate.evaluate(day, [CheckOutcome(DRIFT_CHECK, True, f"partition {day}: warm-up day, its feature windows "
                                                 "reach before the first raw day; not measured", {"measured": False})])
                gate.record_written(day, 0)
                continue
            psi = population_stability(feature_reference, lake.read(features_key, [day]))
            if SCORE in reference and day in scored_days:
                psi.update(_score_psi(lake, predictions_key, day, reference[SCORE], str(champion.version)))
            lake.write_partition(key, day, pd.DataFrame(
                {DAY: day, "feature": list(psi), "psi": list(psi.values()), "champion_version": str(champion.version)}
            ))
            drifted = {name: round(value, 4) for name, value in psi.items() if value > limit}
            worst[day] = max(psi.values())
            gate.evaluate(day, [CheckOutcome(
                DRIFT_CHECK, not drifted,
                f"partition {day}: " + (f"PSI above {limit} for {drifted}" if drifted else f"max PSI {worst[day]:.3f}"),
                {"max_psi": worst[day], "limit": limit, "drifted": drifted, "method": METHOD},
            )])
            gate.record_written(day, len(psi), max_psi=worst[day])
        yield from gate.conclude(
            max_psi=max(worst.values(), default=0.0), champion_version=str(champion.version), method=METHOD,
        )

    return [drift]


def _score_psi(lake: DataLake, predictions_key: dg.AssetKey, day: str, bins: dict, version: str) -> dict[str, float]:
    """PSI of the day's scores if the champion itself scored that day (another model's scores say nothing)."""
    scored = lake.read(predictions_key, [day], columns=["score", "model_version"])
    if scored.empty or set(scored["model_version"]) != {version}:
        return {}
    return population_stability({SCORE: bins}, scored.rename(columns={"score": SCORE}))
