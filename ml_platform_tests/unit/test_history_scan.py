"""The running statistics `new-use-case --from-data` learns its limits from: the same from footers as from
values, NaN counted as null, types inferred over whole files, and an event id checked across days in bounded
memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml_platform import history_scan
from ml_platform.history_scan import UniqueValues, scan_history


def test_string_hashes_depend_on_every_byte_and_the_length_only() -> None:
    strings = ["", "a", "ab", "abcdefgh", "abcdefghi", "abcdefgh\x00", "bbcdefgh", "abcdefgi", "é" * 9]
    hashes = history_scan._hashes(pa.chunked_array([pa.array(strings)]))
    assert len(set(hashes.tolist())) == len(strings)
    sliced = pa.chunked_array([pa.array(["x", *strings])[1:]], type=pa.string())  # an offset into the buffers
    assert history_scan._hashes(sliced).tolist() == hashes.tolist()
    whole_words = ["abcdefghijklmnop", "abcdefghijklmnoq"]  # every string a whole word long: no masks
    alone = history_scan._hashes(pa.chunked_array([pa.array(whole_words)])).tolist()
    assert alone == history_scan._hashes(pa.chunked_array([pa.array([*whole_words, "a"])])).tolist()[:2]
    assert len(set(alone)) == 2


def test_ids_unique_across_days_stay_ids_past_the_memory_bound_and_a_repeat_is_still_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(history_scan, "ID_HASHES_AT_MOST", 64)
    ids = UniqueValues()
    for day in range(40):
        assert ids.repeat(f"day {day}", pa.chunked_array([pa.array([f"{day}-{n}" for n in range(50)])])) is None
    assert ids.sample_bits >= 5 and len(ids.hashes) <= 64  # 2,000 values kept as at most 64 hashes

    earlier = [f"{day}-{n}" for day in range(40) for n in range(50)][::7]  # 286 values of earlier days
    assert (
        ids.repeat("day 40", pa.chunked_array([pa.array(earlier)])) == "a value of day 40 appears on an earlier day too"
    )
    assert UniqueValues().repeat("day 0", pa.chunked_array([pa.array([5, 6, 5])])) == "repeats within day 0"
    assert UniqueValues().repeat("day 0", pa.chunked_array([pa.array([5, None])])) == "null on day 0"


def test_parquet_footers_and_values_agree_and_a_nan_is_a_null(tmp_path: Path) -> None:
    table = pa.table(
        {
            "count": pa.array([3, None, 7, 1]),
            "score": pa.array([0.5, np.nan, None, -2.0]),
            "kind": pa.array(["a", "b", None, "a"]),
            "key": pa.array([10, 11, 12, 13]),
        }
    )
    with_stats, without = tmp_path / "stats" / "2024-01-01.parquet", tmp_path / "plain" / "2024-01-01.parquet"
    for path, statistics in ((with_stats, True), (without, False)):
        path.parent.mkdir()
        pq.write_table(table, path, write_statistics=statistics)
    seen = [scan_history([path], "parquet", progress=False).columns for path in (with_stats, without)]
    for columns in seen:
        assert (columns["count"].worst_null, columns["count"].minimum, columns["count"].maximum) == (0.25, 1, 7)
        assert columns["count"].widened_by_nulls and columns["score"].worst_null == 0.5  # NaN and null
        assert columns["kind"].first_seen == {"a": "2024-01-01", "b": "2024-01-01"} and columns["key"].is_id
    assert not seen[0]["count"].wants_values()  # from the footer


def test_a_csv_column_is_typed_by_its_whole_file_not_its_first_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_scan, "CSV_BLOCK_BYTES", 1 << 16)  # 27 blocks: the decimal is in the last
    path = tmp_path / "2024-01-01.csv"
    rows = 200_000
    path.write_text("n,label\n" + "".join(f"{n},{n % 2}\n" for n in range(rows)) + "2.5,\n")
    columns = scan_history([path], "csv", progress=False).columns
    assert columns["n"].dtype == "float64" and columns["n"].maximum == rows - 1
    assert columns["label"].dtype == "int64" and columns["label"].worst_null == 1 / (rows + 1)


def test_a_parquet_column_that_changes_type_is_named_with_its_file(tmp_path: Path) -> None:
    pq.write_table(pa.table({"x": pa.array(["a"])}), tmp_path / "2024-01-01.parquet")
    pq.write_table(pa.table({"x": pa.array([True])}), tmp_path / "2024-01-02.parquet")
    with pytest.raises(ValueError, match=r"2024-01-02.parquet: column 'x' is bool here but string in earlier files"):
        scan_history(sorted(tmp_path.iterdir()), "parquet", progress=False)


def test_a_pandas_index_stored_in_parquet_is_not_a_column(tmp_path: Path) -> None:
    """pandas reads it back as the frame's index: a spec column of that name would fail the schema gate."""
    import pandas as pd

    pd.DataFrame({"x": [1, 2]}, index=pd.Index([10, 20], name="stop")).to_parquet(tmp_path / "2024-01-01.parquet")
    assert list(scan_history([tmp_path / "2024-01-01.parquet"], "parquet", progress=False).columns) == ["x"]


def test_a_csv_blank_or_na_text_is_a_null_as_pandas_reads_it(tmp_path: Path) -> None:
    (tmp_path / "2024-01-01.csv").write_text("sex,note\nF,a\n,None\nM,<NA>\nNA,b\n")
    columns = scan_history([tmp_path / "2024-01-01.csv"], "csv", progress=False).columns
    assert columns["sex"].first_seen == {"F": "2024-01-01", "M": "2024-01-01"} and columns["sex"].worst_null == 0.5
    assert columns["note"].worst_null == 0.5
