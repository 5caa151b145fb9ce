"""Per-partition blocking gates, recorded the way Dagster's own views read them.

A run holds one day (schedule, sensor) or a range (a single-run backfill of a
year). `PartitionGate` collects each day's check outcomes, writes only the
days that pass, and then records, in this order:

1. the materializations: every day of the range when all passed, else the
   good days alone;
2. one partitioned `AssetCheckEvaluation` per day and check, each pointing at
   that day's latest materialization. Dagster's check partition status (the
   *Partitions* tab, the asset node's check summary) counts an evaluation only
   if it targets the partition's latest materialization, so a passed day shows
   Passed, and a failed day's evaluation stands against its last good file;
3. one output per check when every day passed, so Dagster knows every
   blocking check reported (without it, it logs that downstream steps proceed
   ungated).

A failed day keeps its previous good file. The gates of one step share what
failed (`ml_platform/assets/range_step.py`): a later stage fails the days that
depend on a failed day (`block`), and the step fails at its end naming them all
(`gate_failure`), which is what makes Dagster show exactly those days Failed.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import dagster as dg

from ml_platform.checks.rules import CheckOutcome, failed

# how an evaluation names the partition's materialization it judged (what the UI's per-partition check status counts)
from ml_platform.dagster_internals import AssetCheckEvaluationTargetMaterializationData

if TYPE_CHECKING:
    from ml_platform.steps import DayResult

LISTED_PARTITIONS = 5  # a failure message names this many bad days and counts the rest
FETCH_LIMIT = 10_000  # the most event records Dagster returns from one fetch
PROGRESS_EVERY = 31  # days between progress lines in a range run's log


def partitioned_check_spec(
    name: str, asset_key: dg.AssetKey, partitions_def: dg.PartitionsDefinition, description: str, blocking: bool
) -> dg.AssetCheckSpec:
    with warnings.catch_warnings():  # partitioned check specs are a Dagster preview; we rely on them knowingly
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(
            name, asset=asset_key, description=description, blocking=blocking, partitions_def=partitions_def
        )


def gate_check_specs(
    asset_key: dg.AssetKey, checks: Mapping[str, str], partitions_def: dg.PartitionsDefinition
) -> list[dg.AssetCheckSpec]:
    return [
        partitioned_check_spec(name, asset_key, partitions_def, text, blocking=True) for name, text in checks.items()
    ]


class PartitionGate:
    """Collects each partition's check outcomes and decides what gets recorded."""

    def __init__(self, context: dg.AssetExecutionContext, asset_key: dg.AssetKey) -> None:
        self.context = context
        self.asset_key = asset_key
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
        """Evaluate a step's day; True if its rows may be written (no outcome blocks it; warnings let it through)."""
        self.evaluate(result.day, result.outcomes)
        return self.passed(result.day) and result.has_data

    def block(self, partition: str, check: str, reason: str) -> None:
        """Fail a day that depends on a day an earlier stage failed: it is not computed, and `check` says why."""
        self.evaluate(partition, [failed(check, partition, reason, upstream_failed=True)])

    def passed(self, partition: str) -> bool:
        return not any(outcome.blocks for outcome in self.outcomes.get(partition, []))

    @property
    def failures(self) -> dict[str, list[CheckOutcome]]:
        """Each failed partition's blocking outcomes (warnings fail no partition)."""
        failed_days = {day: [o for o in outcomes if o.blocks] for day, outcomes in sorted(self.outcomes.items())}
        return {day: bad for day, bad in failed_days.items() if bad}

    def record_written(self, partition: str, rows: int, **metadata: Any) -> None:
        """Note a day's file as written; `metadata` is that day's own, shown on its partition (with the row count
        under Dagster's standard key too, which the UI shows as "Row count")."""
        self.rows[partition] = rows
        self.partition_metadata[partition] = {"rows": rows, "dagster/row_count": dg.MetadataValue.int(rows), **metadata}
        self.context.add_asset_metadata(
            self.partition_metadata[partition], asset_key=self.asset_key, partition_key=partition
        )

    def conclude(self, **range_metadata: Any) -> Iterator[Any]:
        """Materializations of the good days, then check evaluations, then (all passed) check outputs."""
        if not self.failures:
            yield dg.MaterializeResult(asset_key=self.asset_key, metadata=range_metadata)
        else:
            for partition in sorted(self.rows):
                yield dg.AssetMaterialization(
                    self.asset_key,
                    partition=partition,
                    metadata={**range_metadata, **self.partition_metadata[partition]},
                )
        yield from self._evaluations()  # thousands in a year's range: the event log decides how to write them
        if self.failures:
            return
        for output_name, spec in self.context.assets_def.check_specs_by_output_name.items():
            if spec.key in self.context.selected_asset_check_keys and spec.asset_key == self.asset_key:
                yield dg.Output(None, output_name=output_name)

    def _evaluations(self) -> Iterator[dg.AssetCheckEvaluation]:
        targets = latest_materializations(self.context.instance, self.asset_key, self.outcomes)
        for partition, outcomes in sorted(self.outcomes.items()):
            for outcome in outcomes:
                metadata = {k: _metadata_value(v) for k, v in outcome.metadata.items()}
                blocking = outcome.severity == "block"
                yield dg.AssetCheckEvaluation(
                    asset_key=self.asset_key,
                    check_name=outcome.check,
                    passed=outcome.passed,
                    metadata=metadata,
                    description=outcome.message,
                    partition=partition,
                    blocking=blocking,
                    severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
                    target_materialization_data=targets.get(partition),
                )


def latest_materializations(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partitions: Iterable[str]
) -> dict[str, AssetCheckEvaluationTargetMaterializationData]:
    """Each partition's latest materialization, as the target an evaluation of it judges (a query, then one a
    10,000 partitions)."""
    storage_ids = instance.event_log_storage.get_latest_storage_id_by_partition(
        asset_key, dg.DagsterEventType.ASSET_MATERIALIZATION, partitions=set(partitions)
    )
    ids = list(storage_ids.values())
    records = [
        record
        for start in range(0, len(ids), FETCH_LIMIT)  # Dagster fetches at most 10,000 records a call
        for record in instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key, storage_ids=ids[start : start + FETCH_LIMIT]), limit=FETCH_LIMIT
        ).records
    ]
    return {
        record.partition_key: AssetCheckEvaluationTargetMaterializationData(
            storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
        )
        for record in records
        if record.partition_key is not None
    }


def gate_failure(
    failures: Mapping[dg.AssetKey, Mapping[str, list[CheckOutcome]]], materialized: Mapping[dg.AssetKey, int]
) -> dg.Failure:
    """One readable failure for a step's failed days: per asset the first few with their reasons and a count,
    the full lists in metadata."""
    summaries, lines = [], []
    for key, failed_days in failures.items():
        days = sorted(failed_days)
        shown = days[:LISTED_PARTITIONS]
        more = f" and {len(days) - len(shown)} more" if len(days) > len(shown) else ""
        summaries.append(f"{key.to_user_string()}: {len(days)} partition(s) failed ({', '.join(shown)}{more})")
        lines += [
            f"{key.to_user_string()}: {outcome.message} [check {outcome.check}]"
            for day in shown
            for outcome in failed_days[day]
        ]
    return dg.Failure(
        description=(
            "; ".join(summaries) + ". Every other day went through; a failed day keeps its earlier good data and "
            "nothing that depends on it is computed.\n" + "\n".join(lines)
        ),
        metadata={
            "failed_partition_count": sum(len(days) for days in failures.values()),
            "failed_partitions": dg.MetadataValue.json({k.to_user_string(): sorted(v) for k, v in failures.items()}),
            "failures": dg.MetadataValue.json(
                {
                    key.to_user_string(): {day: [o.message for o in bad] for day, bad in failed_days.items()}
                    for key, failed_days in failures.items()
                }
            ),
            "materialized_partition_count": dg.MetadataValue.json(
                {key.to_user_string(): count for key, count in materialized.items()}
            ),
        },
        allow_retries=False,
    )


def _metadata_value(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return dg.MetadataValue.json(value)
    return value
