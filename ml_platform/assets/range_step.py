"""One step for every daily asset of a use case, so a bad day costs that day only.

Dagster 1.13 shows a partition as Failed when the latest run that planned it failed without
materializing it (the asset status cache: planned, not materialized, run FAILURE), and a backfill
counts the same days as failed. It also skips every step downstream of a failed step, and a
partitioned step that succeeds materializes its whole range. So per-day outcomes cannot cross
step boundaries: a range of raw days with one bad day would either skip every later stage (the
step fails) or record the bad day as materialized (the step succeeds).

The daily assets of a use case (raw_events, features, predictions, drift, report) are therefore
one multi-asset, one step: each selected stage runs the range in lineage order, writes and
records its good days, and fails exactly the days it could not compute or that depend on a day an
earlier stage failed in this step (a feature day whose window holds a failed raw day, the
predictions and drift of a failed feature day). At the end the step fails naming every failed
day, so the run and the backfill read as failed, and only those days show Failed.
"""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from ml_platform import steps
from ml_platform.checks.gate import PartitionGate, gate_failure
from ml_platform.run_coordinator import MAX_RUNS_TAG
from ml_platform.spec import UseCaseSpec


class ChunkConfig(dg.Config):
    """How many days a range run's features are computed at once: bounds memory on year-long backfills
    (fewer when a day holds many events, see `steps.features_chunk_days`)."""

    chunk_days: int = steps.DEFAULT_CHUNK_DAYS


@dataclass
class RangeStep:
    """What each stage of the step shares: Dagster's context, the options, each stage's gate."""

    context: dg.AssetExecutionContext
    config: ChunkConfig
    gates: dict[dg.AssetKey, PartitionGate] = field(default_factory=dict)

    def gate(self, key: dg.AssetKey) -> PartitionGate:
        self.gates[key] = PartitionGate(self.context, key)
        return self.gates[key]

    def failed_days(self, *upstream: dg.AssetKey) -> dict[str, str]:
        """Days that `upstream` stages failed in this step, each saying which and why ('asset day failed (checks)')."""
        failed: dict[str, str] = {}
        for key in upstream:
            gate = self.gates.get(key)
            for day, outcomes in (gate.failures if gate else {}).items():
                checks = ", ".join(dict.fromkeys(outcome.check for outcome in outcomes))
                failed.setdefault(day, f"{key.to_user_string()} {day} failed in this run ({checks})")
        return failed

    def raise_if_failed(self) -> None:
        failures = {key: gate.failures for key, gate in self.gates.items() if gate.failures}
        if failures:
            raise gate_failure(failures, materialized={key: len(gate.rows) for key, gate in self.gates.items()})


@dataclass(frozen=True)
class DailyStage:
    """One daily asset of the step: its spec, its gate's checks, and how it runs the step's range."""

    spec: dg.AssetSpec
    check_specs: Sequence[dg.AssetCheckSpec]
    run: Callable[[RangeStep], Iterator[Any]]
    resource_keys: frozenset[str] = frozenset()

    @property
    def key(self) -> dg.AssetKey:
        return self.spec.key


def ranged(partitions_def: dg.PartitionsDefinition, max_days_per_run: int | None = None) -> dict[str, Any]:
    """How every daily asset runs: any subset of its assets; a backfill of any range is one run, or runs of
    `max_days_per_run` days that the run queue starts side by side (spec `backfill.max_days_per_run`)."""
    policy = (
        dg.BackfillPolicy.single_run()
        if max_days_per_run is None
        else dg.BackfillPolicy.multi_run(max_partitions_per_run=max_days_per_run)
    )
    return {"partitions_def": partitions_def, "backfill_policy": policy, "can_subset": True}


SOURCE_RETRY = dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


def build_range_step(
    spec: UseCaseSpec, partitions_def: dg.PartitionsDefinition, stages: Sequence[DailyStage]
) -> dg.AssetsDefinition:
    """The use case's daily assets as one step running its selected stages in lineage order; under
    `backfill.max_concurrent_runs` they carry the cap the run coordinator reads (`run_coordinator.py`)."""
    cap = spec.backfill.max_concurrent_runs
    capped = {} if cap is None else {MAX_RUNS_TAG: str(cap)}

    @dg.multi_asset(
        name=f"{spec.name}__daily",
        specs=[stage.spec.merge_attributes(tags=capped) for stage in stages],
        check_specs=[check for stage in stages for check in stage.check_specs],
        **ranged(partitions_def, spec.backfill.max_days_per_run),
        retry_policy=SOURCE_RETRY,  # the source and the registry can fail transiently; gate failures never retry
        required_resource_keys={"lake"}.union(*(stage.resource_keys for stage in stages)),
    )
    def daily(context: dg.AssetExecutionContext, config: ChunkConfig) -> Iterator[Any]:
        step = RangeStep(context, config)
        for stage in stages:
            if stage.key in context.selected_asset_keys:
                yield from stage.run(step)
        step.raise_if_failed()

    return daily
