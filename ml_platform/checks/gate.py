"""Per-partition blocking gates, recorded the way Dagster's own views read them.

A run holds one day (schedule, sensor) or a range (a single-run backfill of a
year). `PartitionGate` collects each day's check outcomes, writes only the
days that pass, and then records, in this order:

1. the materializations: every day of the range when all passed (downstream
   steps in the run proceed), else the good days alone;
2. one partitioned `AssetCheckEvaluation` per day and check, each pointing at
   that day's latest materialization. Dagster's check partition status (the
   *Partitions* tab, the asset node's check summary) counts an evaluation only
   if it targets the partition's latest materialization, so a passed day shows
   Passed, and a failed day's evaluation stands against its last good file;
3. one output per check, so Dagster knows every blocking check reported
   (without it, it logs that downstream steps proceed ungated);

and finally fails the step naming the bad partitions, if any, so nothing
downstream of them runs and their previous good files stay in place.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import dagster as dg
# not exported by dagster: how an evaluation names the partition's materialization it judged, which
# is what the UI's per-partition check status counts
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationTargetMaterializationData

from ml_platform.checks.rules import CheckOutcome
from ml_platform.storage.batches import evaluations_together

if TYPE_CHECKING:
    from ml_platform.steps import DayResult

LISTED_PARTITIONS = 5  # a failure message names this many bad days and counts the rest
PROGRESS_EVERY = 31  # days between progress lines in a range run's log


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

    def __init__(self, context: dg.AssetExecutionContext, asset_key: dg.AssetKey, measurement: bool = False) -> None:
        """`measurement`: the checks measure and warn (drift); no outcome keeps a day from being written."""
        self.context = context
        self.asset_key = asset_key
        self.measurement = measurement
        self.outcomes: dict[str, list[CheckOutcome]] = {}
        self.rows: dict[str, int] = {}
        self.partition_metadata: dict[str, dict[str, Any]] = {}

    def evaluate(self, partition: str, outcomes: Iterable[CheckOutcome]) -> None:
        if partition not in self.outcomes:
            self._log_progress(len(self.outcomes))
        self.outcomes.setdefault(partition, []).extend(outcomes)

    def _log_progress(self, done: int) -> None:
        """A line in the run's log every PROGRESS_EVERY days of a range, so a long run shows where it is."""
        if done and done % PROGRESS_EVERY == 0:
            self.context.log.info(
                f"{self.asset_key.to_user_string()}: {done}/{len(self.context.partition_keys)} days checked, "
                f"{len(self.rows)} written, "
                f"{len(self.failures)} failed so far"
            )

    def admit(self, result: DayResult) -> bool:
        """Evaluate a step's day; True if its frame may be written (no outcome blocks it; warnings let it through)."""
        self.evaluate(result.day, result.outcomes)
        return self.passed(result.day) and result.frame is not None

    def passed(self, partition: str) -> bool:
        return not any(self._blocks(outcome) for outcome in self.outcomes.get(partition, []))

    def _blocks(self, outcome: CheckOutcome) -> bool:
        return outcome.blocks and not self.measurement

    @property
    def failures(self) -> dict[str, list[CheckOutcome]]:
        """Each failed partition's blocking outcomes (warnings fail no partition)."""
        failed = {day: [o for o in outcomes if self._blocks(o)] for day, outcomes in sorted(self.outcomes.items())}
        return {day: bad for day, bad in failed.items() if bad}

    @property
    def warnings(self) -> dict[str, list[CheckOutcome]]:
        """Each partition's failed outcomes that only warn."""
        warned = {day: [o for o in outcomes if not o.passed and not self._blocks(o)] for day, outcomes in sorted(self.outcomes.items())}
        return {day: bad for day, bad in warned.items() if bad}

    def record_written(self, partition: str, rows: int, **metadata: Any) -> None:
        """Note a day's file as written; `metadata` is that day's own, shown on its partition."""
        self.rows[partition] = rows
        self.partition_metadata[partition] = {"rows": rows, **metadata}
        self.context.add_asset_metadata(self.partition_metadata[partition], asset_key=self.asset_key, partition_key=partition)

    def conclude(self, **range_metadata: Any) -> Iterator[Any]:
        """Materializations, then check evaluations and check outputs; raises `dg.Failure` naming the bad days."""
        failures = self.failures
        if not failures:
            yield dg.MaterializeResult(asset_key=self.asset_key, metadata=range_metadata)
        else:
            for partition in sorted(self.rows):
                yield dg.AssetMaterialization(
                    self.asset_key, partition=partition, metadata={**range_metadata, **self.partition_metadata[partition]}
                )
        with evaluations_together(self.context.instance):  # thousands in a year's range
            yield from self._evaluations()
        if failures:
            raise gate_failure(self.asset_key, failures, materialized=sorted(self.rows))
        for output_name, spec in self.context.assets_def.check_specs_by_output_name.items():
            if spec.key in self.context.selected_asset_check_keys:
                yield dg.Output(None, output_name=output_name)

    def _evaluations(self) -> Iterator[dg.AssetCheckEvaluation]:
        targets = latest_materializations(self.context.instance, self.asset_key, self.outcomes)
        for partition, outcomes in sorted(self.outcomes.items()):
            for outcome in outcomes:
                metadata = {k: _metadata_value(v) for k, v in outcome.metadata.items()}
                blocking = outcome.severity == "block" and not self.measurement
                yield dg.AssetCheckEvaluation(
                    asset_key=self.asset_key, check_name=outcome.check, passed=outcome.passed, metadata=metadata,
                    description=outcome.message, partition=partition, blocking=blocking,
                    severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
                    target_materialization_data=targets.get(partition),
                )


def latest_materializations(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partitions: Iterable[str]
) -> dict[str, AssetCheckEvaluationTargetMaterializationData]:
    """Each partition's latest materialization, as the target an evaluation of it judges (two queries)."""
    storage_ids = instance.event_log_storage.get_latest_storage_id_by_partition(
        asset_key, dg.DagsterEventType.ASSET_MATERIALIZATION, partitions=set(partitions)
    )
    if not storage_ids:
        return {}
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, storage_ids=list(storage_ids.values())), limit=len(storage_ids)
    ).records
    return {
        record.partition_key: AssetCheckEvaluationTargetMaterializationData(
            storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
        )
        for record in records
        if record.partition_key is not None
    }


def gate_failure(asset_key: dg.AssetKey, failures: Mapping[str, list[CheckOutcome]], materialized: list[str]) -> dg.Failure:
    """One readable failure: the first few bad days with their reasons and a count, full lists in metadata."""
    days = sorted(failures)
    shown = days[:LISTED_PARTITIONS]
    more = f" and {len(days) - len(shown)} more" if len(days) > len(shown) else ""
    lines = [f"{outcome.message} [check {outcome.check}]" for day in shown for outcome in failures[day]]
    return dg.Failure(
        description=(
            f"{asset_key.to_user_string()}: blocking gate failed for {len(days)} partition(s) "
            f"({', '.join(shown)}{more}); nothing downstream of them runs, earlier good data is kept.\n"
            + "\n".join(lines)
        ),
        metadata={
            "failed_partition_count": len(days),
            "failed_partitions": dg.MetadataValue.json(days),
            "failures": dg.MetadataValue.json({day: [o.message for o in bad] for day, bad in failures.items()}),
            "materialized_partitions": dg.MetadataValue.json(materialized),
        },
        allow_retries=False,
    )


def _metadata_value(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return dg.MetadataValue.json(value)
    return value
