"""Days larger than memory: a day read, validated and scored in row-group batches stores the same bytes as the
day handled whole (the batches here are a few hundred rows, so a small landing spans many of them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from demo.generators.churn import write_landing_files
from ml_platform.io import parquet_lake
from ml_platform_tests.support.fixtures import START, landing_dir
from ml_platform_tests.unit.test_stage_threads import DAYS, assert_same_lakes, run_stages


def test_batches_of_a_few_hundred_rows_store_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    write_landing_files(landing_dir(data), START, len(DAYS), 3_000, seed=7)
    run_stages(data, tmp_path / "whole", threads=1, chunk_days=31)
    read_batches = []
    iter_batches = parquet_lake.DataLake.iter_batches

    def counted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        for batch in iter_batches(self, *args, **kwargs):
            read_batches.append(len(batch))
            yield batch

    monkeypatch.setattr(parquet_lake, "ROW_GROUP_ROWS", 257)
    monkeypatch.setattr(parquet_lake.DataLake, "iter_batches", counted)
    run_stages(data, tmp_path / "batched", threads=2, chunk_days=31)
    assert len(read_batches) > 6 * 2 and max(read_batches) == 257  # every scored day in several batches
    assert_same_lakes(tmp_path / "whole", tmp_path / "batched")
