"""Per-partition blocking gates inside range runs.

Dagster's `AssetCheckResult` carries no partition, so a single-run backfill of
60 days could only pass or fail as a whole. `PartitionGate` instead emits one
partitioned `AssetCheckEvaluation` per day and check, writes only the days
that pass, and then either records the whole range as materialized (every day
passed: downstream steps in the run proceed) or records the good days alone
and fails the step, so nothing downstream of a bad day materializes and the
previous good file of that day stays in place.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluation

from ml_platform.checks.data_gates import CheckOutcome


def partitioned_check_spec(
    name: str, asset_key: dg.AssetKey, partitions_def: dg.PartitionsDefinition, description: str, blocking: bool
) -> dg.AssetCheckSpec:
    with warnings.catch_warnings():  # partitioned check specs are a Dagster preview; we rely on them knowingly
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(name, asset=asset_key, description=description, blocking=blocking, partitions_def=partitions_def)


def gate_check_specs(
    asset_key: dg.AssetKey, checks: Mapping[str, str], partitions_def: dg.PartitionsDefinition
) -> list[dg.AssetCheckSpec]:
    return [partitioned_check_spec(name, asset_key, partitions_def, text, blocking=True) for name, text in checks.items()]


class PartitionGate:
    """Collects each partition's check outcomes and decides what gets recorded."""

    def __init__(self, context: dg.AssetExecutionContext, asset_key: dg.AssetKey) -> None:
        # A single-partition run (schedule, sensor) can use Dagster's own check results, which it
        # attributes to the run's partition and gates on natively; a range run cannot.
        self.native_results = context.has_partition_key
        self.asset_key = asset_key
        self.outcomes: dict[str, list[CheckOutcome]] = {}
        self.rows: dict[str, int] = {}
        self.partition_metadata: dict[str, dict[str, Any]] = {}

    def evaluate(self, partition: str, outcomes: list[CheckOutcome]) -> None:
        self.outcomes.setdefault(partition, []).extend(outcomes)

    def passed(self, partition: str) -> bool:
        return all(outcome.passed for outcome in self.outcomes.get(partition, []))

    @property
    def failures(self) -> dict[str, list[CheckOutcome]]:
        """Each failed partition's failed outcomes."""
        failed = {day: [o for o in outcomes if not o.passed] for day, outcomes in self.outcomes.items()}
        return {day: bad for day, bad in failed.items() if bad}

    def record_written(self, partition: str, rows: int, **metadata: Any) -> None:
        self.rows[partition] = rows
        self.partition_metadata[partition] = metadata

    def conclude(self, **range_metadata: Any) -> Iterator[Any]:
        """Record the written days, then every check evaluation; raises `dg.Failure` naming every failed
        partition and check. Evaluations come after the materialization they judge, so Dagster counts them
        as current for it (declarative automation gates on current blocking checks only); a failed day gets
        no materialization, so its failed evaluations stand against its last good one."""
        failures = self.failures
        if not failures:
            per_day = dict(sorted(self.rows.items()))
            metadata: dict[str, Any] = {"rows": sum(per_day.values()), "partitions": len(per_day), **range_metadata}
            if len(per_day) == 1:
                metadata.update(next(iter(self.partition_metadata.values()), {}))
            else:
                metadata["rows_by_partition"] = dg.MetadataValue.json(per_day)
            yield dg.MaterializeResult(asset_key=self.asset_key, metadata=metadata)
            yield from self._evaluations()
            return
        for partition, rows in sorted(self.rows.items()):
            yield dg.AssetMaterialization(
                self.asset_key, partition=partition, metadata={"rows": rows, **self.partition_metadata[partition]}
            )
        yield from self._evaluations()
        lines = [outcome.message + f" [check {outcome.check}]" for bad in failures.values() for outcome in bad]
        raise dg.Failure(
            description=(
                f"{self.asset_key.to_user_string()}: blocking gate failed for {len(failures)} partition(s) "
                f"{sorted(failures)}; nothing downstream of them runs, earlier good data is kept.\n"
                + "\n".join(lines)
            ),
            metadata={
                "failed_partitions": dg.MetadataValue.json(sorted(failures)),
                "failures": dg.MetadataValue.json(
                    {p: [o.message for o in bad] for p, bad in sorted(failures.items())}
                ),
                "materialized_partitions": dg.MetadataValue.json(sorted(self.rows)),
            },
            allow_retries=False,
        )

    def _evaluations(self) -> Iterator[AssetCheckEvaluation | dg.AssetCheckResult]:
        for partition, outcomes in self.outcomes.items():
            for outcome in outcomes:
                metadata = {"message": outcome.message, **{k: _metadata_value(v) for k, v in outcome.metadata.items()}}
                if self.native_results:
                    yield dg.AssetCheckResult(asset_key=self.asset_key, check_name=outcome.check, passed=outcome.passed,
                                              metadata=metadata, description=outcome.message)
                else:
                    yield AssetCheckEvaluation(
                        asset_key=self.asset_key, check_name=outcome.check, passed=outcome.passed, metadata=metadata,
                        description=outcome.message, partition=partition, blocking=True,
                    )


def _metadata_value(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return dg.MetadataValue.json(value)
    return value
