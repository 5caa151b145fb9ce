"""The partitioned Parquet IO manager: ranges in one call, single partitions, replace not duplicate."""

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from ml_platform.io.parquet_lake import DataLake, PartitionedParquetIOManager
from ml_platform.runner import range_tags

DAILY = dg.DailyPartitionsDefinition(start_date="2025-01-01")
DAYS = ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04"]
SCALE = {"factor": 1}


@dg.asset(partitions_def=DAILY, backfill_policy=dg.BackfillPolicy.single_run())
def readings(context: dg.AssetExecutionContext) -> pd.DataFrame:
    rows = [{"day": day, "sensor": s, "value": float(i * SCALE["factor"])} for i, day in enumerate(context.partition_keys) for s in "ab"]
    return pd.DataFrame(rows)


@dg.asset(partitions_def=DAILY, backfill_policy=dg.BackfillPolicy.single_run())
def doubled(readings: pd.DataFrame) -> pd.DataFrame:
    return readings.assign(value=readings["value"] * 2)


@dg.asset
def summary(readings: pd.DataFrame) -> dict:
    return {"rows": len(readings), "total": float(readings["value"].sum())}


@pytest.fixture
def lake(tmp_path: Path) -> DataLake:
    return DataLake(base_path=str(tmp_path / "lake"))


def run(lake: DataLake, selection: list, tags: dict | None = None, partition_key: str | None = None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [readings, doubled, summary],
        selection=selection,
        resources={"io_manager": PartitionedParquetIOManager(lake=lake)},
        tags=tags,
        partition_key=partition_key,
        instance=dg.DagsterInstance.ephemeral(),
    )


def test_range_output_writes_one_file_per_partition_and_reads_range_in_one_call(lake: DataLake) -> None:
    result = run(lake, [readings, doubled], tags=range_tags(DAYS))
    assert result.success
    assert lake.existing_partitions(readings.key) == DAYS
    assert lake.existing_partitions(doubled.key) == DAYS
    for index, day in enumerate(DAYS):
        stored = lake.read(doubled.key, [day])
        assert list(stored["value"]) == [index * 2.0, index * 2.0]
    materialized = {m.partition for m in result.asset_materializations_for_node("doubled")}
    assert materialized == set(DAYS)


def test_single_partition_and_replace_never_duplicates(lake: DataLake) -> None:
    assert run(lake, [readings], tags=range_tags(DAYS)).success
    SCALE["factor"] = 10
    try:
        assert run(lake, [readings], partition_key="2025-01-03").success
    finally:
        SCALE["factor"] = 1
    third = lake.read(readings.key, ["2025-01-03"])
    assert len(third) == 2, "re-materializing a partition must replace it, not append"
    assert set(third["value"]) == {0.0}  # a single-partition run has index 0, times 10
    assert set(lake.read(readings.key, ["2025-01-02"])["value"]) == {1.0}, "other partitions untouched"
    assert len(lake.read(readings.key, DAYS)) == 8


def test_unpartitioned_consumer_reads_all_partitions_and_dicts_are_json(lake: DataLake) -> None:
    assert run(lake, [readings], tags=range_tags(DAYS)).success
    assert run(lake, [summary]).success
    assert lake.read_json(summary.key) == {"rows": 8, "total": 12.0}


def test_multi_partition_output_without_day_column_is_a_clear_failure(lake: DataLake) -> None:
    @dg.asset(name="bad", partitions_def=DAILY, backfill_policy=dg.BackfillPolicy.single_run())
    def bad() -> pd.DataFrame:
        return pd.DataFrame({"value": [1.0]})

    result = dg.materialize(
        [bad], resources={"io_manager": PartitionedParquetIOManager(lake=lake)},
        tags=range_tags(DAYS), instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
    )
    assert not result.success
    failure = result.failure_data_for_node("bad")
    assert "needs a 'day' column" in str(failure.error)
    assert lake.existing_partitions(bad.key) == []


def test_missing_partitions_are_named(lake: DataLake) -> None:
    lake.write_partition(readings.key, "2025-01-01", pd.DataFrame({"value": [1.0]}))
    with pytest.raises(FileNotFoundError, match="2025-01-02"):
        lake.read(readings.key, ["2025-01-01", "2025-01-02"])
    assert len(lake.read(readings.key, ["2025-01-01", "2025-01-02"], missing_ok=True)) == 1
