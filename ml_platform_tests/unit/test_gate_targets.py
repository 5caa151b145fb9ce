"""Each day's evaluation targets that day's latest materialization, however many days a range holds: Dagster
returns at most 10,000 records a fetch, and a whole history can be 17,000 days."""

import dagster as dg
import pytest

from ml_platform.automation.runs import range_tags
from ml_platform.checks import gate

DAYS = [f"2025-01-{day:02d}" for day in range(1, 8)]


def test_the_targets_of_more_days_than_one_fetch_returns_are_all_found(monkeypatch: pytest.MonkeyPatch) -> None:
    partitions = dg.DailyPartitionsDefinition(start_date=DAYS[0], end_date="2025-01-08")

    @dg.asset(partitions_def=partitions, backfill_policy=dg.BackfillPolicy.single_run())
    def events(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"days": len(context.partition_keys)})

    instance = dg.DagsterInstance.ephemeral()
    for _ in range(2):  # each day twice: the target is the latest
        assert dg.materialize([events], instance=instance, tags=range_tags(DAYS)).success
    latest = instance.event_log_storage.get_latest_storage_id_by_partition(
        events.key, dg.DagsterEventType.ASSET_MATERIALIZATION, partitions=set(DAYS)
    )
    monkeypatch.setattr(gate, "FETCH_LIMIT", 3)  # 7 days: three fetches
    targets = gate.latest_materializations(instance, events.key, DAYS)
    assert {day: target.storage_id for day, target in targets.items()} == latest
    assert len(targets) == len(DAYS)
