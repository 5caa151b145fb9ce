"""The lake IO manager: unpartitioned values round-trip; partitioned assets are refused (they write
day by day through DataLake after their gate)."""

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from ml_platform.io.parquet_lake import DataLake, LakeIOManager
from ml_platform.models.challenger import ModelSummary
from ml_platform.models.comparison import ImprovementTest

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
    assert "expected a pandas DataFrame, a dict or a StoredAsJson value, got list" in str(
        result.failure_data_for_node("listing").error
    )


def test_missing_partitions_are_named(lake: DataLake) -> None:
    key = dg.AssetKey("readings")
    lake.write_partition(key, "2025-01-01", pd.DataFrame({"value": [1.0]}))
    with pytest.raises(FileNotFoundError, match="2025-01-02"):
        lake.read(key, ["2025-01-01", "2025-01-02"])
    assert len(lake.read(key, ["2025-01-01", "2025-01-02"], missing_ok=True)) == 1


# The model asset's value as it was stored before it was typed (a plain dict of these keys), as older lakes hold it.
STORED_BEFORE = {
    "version": "7",
    "run_id": "abc",
    "experiment_id": "1",
    "metrics": {"roc_auc": 0.81},
    "champion_version": "6",
    "comparison": {
        "method": "paired_bootstrap",
        "resamples": 1000,
        "challenger": 0.81,
        "champion": 0.78,
        "improvement": 0.03,
        "ci_level": 0.9,
        "ci_low": 0.01,
        "ci_high": 0.05,
        "p_value": 0.01,
    },
    "gates_passed": True,
}


@dg.asset
def model() -> ModelSummary:
    return ModelSummary.from_json(STORED_BEFORE)


def received_by_a_champion(lake: DataLake) -> tuple[dg.ExecuteInProcessResult, list[object]]:
    """Run an asset that takes the model's value, as the champion asset does (in its own run: loaded from the lake)."""
    received: list[object] = []

    @dg.asset(ins={"model": dg.AssetIn(model.key)})
    def champion(model: ModelSummary) -> None:
        received.append(model)

    result = dg.materialize(
        [model, champion],
        selection=[champion],
        resources={"io_manager": LakeIOManager(lake=lake)},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    return result, received


def test_a_typed_value_is_stored_as_json_and_a_later_run_reads_it_typed(lake: DataLake) -> None:
    assert materialize(lake, [model]).success
    assert lake.read_json(model.key) == STORED_BEFORE, "stored with the keys of before"
    result, received = received_by_a_champion(lake)
    assert result.success
    assert received == [ModelSummary.from_json(STORED_BEFORE)]
    assert isinstance(received[0], ModelSummary) and isinstance(received[0].comparison, ImprovementTest)


def test_a_value_stored_before_the_type_existed_still_reads(lake: DataLake) -> None:
    lake.write_json(model.key, {**STORED_BEFORE, "comparison": None, "champion_version": None})
    result, received = received_by_a_champion(lake)
    assert result.success
    assert received[0] == ModelSummary.from_json({**STORED_BEFORE, "comparison": None, "champion_version": None})


def test_a_stored_value_the_type_cannot_read_fails_naming_the_file_and_the_field(lake: DataLake) -> None:
    lake.write_json(model.key, {key: value for key, value in STORED_BEFORE.items() if key != "gates_passed"})
    result, received = received_by_a_champion(lake)
    assert not result.success and received == []
    message = str(result.failure_data_for_node("champion").user_failure_data.description)
    assert message.startswith(f"model: the stored value at {lake.partition_path(model.key, None, 'json')} is not a")
    assert "ModelSummary this version reads (gates_passed: Field required); materialize model again" in message
