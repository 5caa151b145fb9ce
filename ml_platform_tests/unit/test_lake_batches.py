"""A day written in batches is the day written whole, byte for byte, and read back a row group at a time."""

import itertools
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from ml_platform.io.parquet_lake import ROW_GROUP_ROWS, DataLake

KEY = dg.AssetKey(["uc", "raw_events"])


def day_frame(rows: int) -> pd.DataFrame:
    numbers = np.arange(rows)
    return pd.DataFrame(
        {
            "event_id": pd.Series(pc.cast(pa.array(numbers % 50_000), pa.string()), dtype=pd.ArrowDtype(pa.string())),
            "amount": numbers * 0.5,
            "count": numbers,
            "when": pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(numbers % 86_400, unit="s"),
        }
    )


def batches_of(frame: pd.DataFrame, sizes: list[int]) -> list[pd.DataFrame]:
    bounds = np.cumsum([0, *sizes])
    assert bounds[-1] == len(frame)
    return [frame.iloc[start:end] for start, end in itertools.pairwise(bounds)]


@pytest.mark.parametrize(
    "sizes",
    [
        [0],  # a day without events
        [10, 0, 7],
        [ROW_GROUP_ROWS],
        [700_000, 1_000, 700_000, 5],  # batches across a row-group boundary
    ],
    ids=["empty", "small", "one-row-group", "irregular"],
)
def test_a_day_written_in_batches_is_byte_identical_to_the_day_written_whole(tmp_path: Path, sizes: list[int]) -> None:
    frame = day_frame(sum(sizes))
    whole, batched = DataLake(base_path=str(tmp_path / "whole")), DataLake(base_path=str(tmp_path / "batched"))
    whole_path = whole.write_partition(KEY, "2025-01-01", frame)
    assert batched.write_batches(KEY, "2025-01-01", batches_of(frame, sizes)) == len(frame)
    batched_path = batched.partition_path(KEY, "2025-01-01")
    assert Path(batched_path).read_bytes() == Path(whole_path).read_bytes()
    metadata = pq.ParquetFile(batched_path).metadata
    groups = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    assert all(rows == ROW_GROUP_ROWS for rows in groups[:-1]) and sum(groups) == len(frame)
    read_back = list(batched.iter_batches(KEY, "2025-01-01"))
    assert all(len(part) <= ROW_GROUP_ROWS for part in read_back)
    pd.testing.assert_frame_equal(pd.concat(read_back, ignore_index=True), whole.read(KEY, ["2025-01-01"]))


def test_iter_batches_reads_only_the_asked_columns_and_names_a_missing_partition(tmp_path: Path) -> None:
    lake = DataLake(base_path=str(tmp_path))
    lake.write_batches(KEY, "2025-01-01", [day_frame(30)])
    (part,) = lake.iter_batches(KEY, "2025-01-01", columns=["count"])
    assert list(part.columns) == ["count"] and part["count"].tolist() == list(range(30))
    with pytest.raises(FileNotFoundError, match=r"uc/raw_events: partitions not materialized: \['2025-01-02'\]"):
        list(lake.iter_batches(KEY, "2025-01-02"))


def test_a_failed_batched_write_keeps_the_good_partition_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    lake = DataLake(base_path=str(tmp_path))
    good = lake.write_partition(KEY, "2025-01-01", day_frame(5))
    before = Path(good).read_bytes()

    def failing() -> object:
        yield day_frame(3)
        raise RuntimeError("the source broke mid-day")

    with pytest.raises(RuntimeError, match="mid-day"):
        lake.write_batches(KEY, "2025-01-01", failing())  # type: ignore[arg-type]
    renamed = day_frame(3).rename(columns={"count": "total"})
    with pytest.raises(ValueError, match=r"batch 1 of partition 2025-01-01 has columns .*'total'"):
        lake.write_batches(KEY, "2025-01-01", [day_frame(3), renamed])
    assert Path(good).read_bytes() == before
    assert [p.name for p in Path(good).parent.iterdir()] == ["2025-01-01.parquet"]


def test_a_later_batch_with_an_all_null_column_takes_the_first_batch_types(tmp_path: Path) -> None:
    lake = DataLake(base_path=str(tmp_path))
    first = pd.DataFrame({"name": ["a", "b"], "value": [1.0, 2.0]})
    later = pd.DataFrame({"name": [None, None], "value": [3.0, 4.0]})
    whole = DataLake(base_path=str(tmp_path / "whole")).write_partition(
        KEY, "2025-01-01", pd.concat([first, later], ignore_index=True)
    )
    lake.write_batches(KEY, "2025-01-01", [first, later])
    assert Path(lake.partition_path(KEY, "2025-01-01")).read_bytes() == Path(whole).read_bytes()
