"""The lake IO manager: unpartitioned values round-trip; partitioned assets are refused (they write
day by day through DataLake after their gate)."""

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from ml_platform.io.parquet_lake import DataLake, LakeIOManager

DAILY = dg.DailyPartitionsDefinition(start_date="2025-01-01")


@dg.asset
def readings() -> pd.DataFrame:
    return pd.DataFrame({"sensor": ["a", "b", "a"], "value": [1.0, 2.0, 3.0]})


@dg.asset
def summary(readings: pd.DataFrame) -> dict:
    return {"rows": len(readings), "total": float(readings["value"].sum())}


@pytest.fixture
def lake(tmp_path: Path) -> DataLake:
    return DataLake(base_path=str(tmp_path / "lake"))


def materialize(lake: DataLake, assets: list, **kwargs: object) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        assets, resources={"io_manager": LakeIOManager(lake=lake)}, instance=dg.DagsterInstance.ephemeral(), **kwargs
    )


def test_frames_are_parquet_dicts_are_json_and_both_load_downstream(lake: DataLake) -> None:
    assert materialize(lake, [readings, summary]).success
    pd.testing.assert_frame_equal(lake.read(readings.key, None), readings())
    assert lake.read_json(summary.key) == {"rows": 3, "total": 6.0}
    assert materialize(lake, [readings, summary], selection=[summary]).success, "summary loads readings from the lake"


def test_a_partitioned_output_is_refused_and_writes_nothing(lake: DataLake) -> None:
    @dg.asset(partitions_def=DAILY)
    def daily() -> pd.DataFrame:
        return pd.DataFrame({"value": [1.0]})

    result = materialize(lake, [daily], partition_key="2025-01-02", raise_on_error=False)
    assert not result.success
    assert "write their days through DataLake" in str(result.failure_data_for_node("daily").error)
    assert lake.existing_partitions(daily.key) == []


def test_an_output_of_another_type_is_named(lake: DataLake) -> None:
    @dg.asset
    def listing() -> list:
        return [1, 2]

    result = materialize(lake, [listing], raise_on_error=False)
    assert "expected a pandas DataFrame or a dict, got list" in str(result.failure_data_for_node("listing").error)


def test_missing_partitions_are_named(lake: DataLake) -> None:
    key = dg.AssetKey("readings")
    lake.write_partition(key, "2025-01-01", pd.DataFrame({"value": [1.0]}))
    with pytest.raises(FileNotFoundError, match="2025-01-02"):
        lake.read(key, ["2025-01-01", "2025-01-02"])
    assert len(lake.read(key, ["2025-01-01", "2025-01-02"], missing_ok=True)) == 1
