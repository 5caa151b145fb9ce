"""Every landed day file read once, one file at a time, into running statistics per column: what
`ml-platform new-use-case --from-data` learns its limits from.

Memory stays flat whatever the history's length: no day is kept once read, only counts, extremes, at most
ALLOWED_VALUES_AT_MOST values per column and the bounded hash set of a possible event id. CSV files are read
whole (pyarrow, types inferred over the whole file: an integer column with a decimal on its last row is a
float). Parquet columns come from the footer's statistics (null count, min, max) where those suffice, and
from their values where they do not: floats (a NaN is a null to the gates but not in the footer's null
count), strings that may still be a closed set, and columns that may still be a unique event id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ALLOWED_VALUES_AT_MOST = 10  # a string column with more values than this is not a closed set
# pyarrow infers a CSV column's type over the whole file (a decimal in a later block widens an integer column);
# 16 MB blocks parse a 60 MB day in less time than its default 1 MB ones
CSV_BLOCK_BYTES = 16 << 20
# what pandas reads as NaN in a CSV, in a text column too (as the runtime reads the files): pyarrow's own list
# lacks the last two and keeps an empty text as ""
CSV_NULLS = [
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "n/a",
    "nan",
    "null",
    "<NA>",
    "None",
]
ID_HASHES_AT_MOST = 1 << 21  # 16 MB of 64-bit hashes per possible event id; beyond that, a hash sample


class UniqueValues:
    """Whether a column's values are unique within every day and across days, in bounded memory.

    Within a day the check is exact. Across days it keeps the sorted 64-bit hashes of every value while they
    fit in ID_HASHES_AT_MOST, then only those whose top `sample_bits` bits are zero (halving the sample each
    time it fills again): a value on two days hashes alike both times, so it is caught whenever it falls in
    the sample, always while the check is exact. Integers hash one to one; strings collide with a chance of
    about n^2 / 2^65."""

    def __init__(self) -> None:
        self.hashes = np.empty(0, dtype=np.uint64)
        self.sample_bits = 0

    def repeat(self, day: str, values: pa.ChunkedArray) -> str | None:
        """Add one day's values; why they are not unique ids (None while they are)."""
        if values.null_count:
            return f"null on {day}"
        hashes = _hashes(values)
        if not _increasing(values):  # increasing values are unique: no need to sort a day of hashes to know
            hashes.sort()
            if (hashes[1:] == hashes[:-1]).any() and pc.count_distinct(values).as_py() < len(values):
                return f"repeats within {day}"
        if self.sample_bits:
            hashes = hashes[hashes >> np.uint64(64 - self.sample_bits) == 0]
        ordered = np.sort(hashes)
        at = np.minimum(np.searchsorted(self.hashes, ordered), max(len(self.hashes) - 1, 0))
        if len(self.hashes) and (self.hashes[at] == ordered).any():
            return f"a value of {day} appears on an earlier day too"
        merged = np.concatenate([self.hashes, ordered])
        merged.sort(kind="stable")  # two sorted runs: a linear merge
        while len(merged) > ID_HASHES_AT_MOST:
            self.sample_bits += 1
            merged = merged[merged >> np.uint64(64 - self.sample_bits) == 0]
        self.hashes = merged
        return None


@dataclass
class ColumnHistory:
    """One column over every day file read so far."""

    name: str
    dtype: str | None = None  # int64, float64, bool, string, timestamp, or unsupported; None while only nulls
    files: int = 0  # day files that have the column
    rows: int = 0  # rows of those files
    known: int = 0  # of which not null
    worst_null: float = 0.0  # the largest null fraction of a day
    worst_null_day: str = ""
    minimum: float | None = None  # numeric columns
    maximum: float | None = None
    # nulls in a Parquet column that pandas reads without a nullable dtype (a file not written from a pandas
    # Int64 or boolean column): integers become floats, booleans objects
    widened_by_nulls: bool = False
    first_seen: dict[str, str] | None = field(default_factory=dict)  # value -> its first day; None: not a closed set
    open_because: str = ""  # why first_seen is None
    ids: UniqueValues | None = field(default_factory=UniqueValues)  # None: not a unique event id ...
    not_id_because: str = ""  # ... and why

    @property
    def is_id(self) -> bool:
        return self.ids is not None and self.dtype in ("int64", "string")

    def wants_values(self) -> bool:
        """Whether the footer's statistics are not enough for this column (Parquet)."""
        return (
            self.dtype == "float64" or self.ids is not None or (self.dtype == "string" and self.first_seen is not None)
        )

    def merge_type(self, dtype: str | None, source: Path, csv: bool) -> None:
        """One type over every file: an integer column with a decimal anywhere is a float; a CSV column that
        is numbers in some files and text in others is text."""
        if dtype is None or dtype == self.dtype:
            return
        if self.dtype is None:
            self.dtype = dtype
        elif {dtype, self.dtype} == {"int64", "float64"}:
            self.dtype = "float64"
        elif csv and "unsupported" not in (dtype, self.dtype):
            self.dtype = "string"
            self.close_open("numbers in some files, text in others")
        else:
            raise ValueError(
                f"{source}: column '{self.name}' is {dtype} here but {self.dtype} in earlier files; "
                "a column keeps one type in every day file"
            )
        if self.dtype not in ("int64", "string"):
            self.not_an_id(f"a {self.dtype} column")

    def add_counts(self, day: str, rows: int, nulls: int) -> None:
        self.files += 1
        self.rows += rows
        self.known += rows - nulls
        fraction = nulls / rows if rows else 0.0
        if fraction > self.worst_null:
            self.worst_null, self.worst_null_day = fraction, day

    def add_range(self, low: Any, high: Any) -> None:
        if low is not None:
            self.minimum = low if self.minimum is None else min(self.minimum, low)
        if high is not None:
            self.maximum = high if self.maximum is None else max(self.maximum, high)

    def add_values(self, day: str, values: pa.ChunkedArray) -> None:
        """One day's values of this column (its nulls, range, closed set and uniqueness)."""
        nulls = values.null_count
        if self.dtype == "float64":
            nulls += pc.sum(pc.is_nan(values)).as_py() or 0
        self.add_counts(day, len(values), nulls)
        if self.dtype in ("int64", "float64") and len(values) > nulls:
            extremes = pc.min_max(values)
            self.add_range(extremes["min"].as_py(), extremes["max"].as_py())
        if self.dtype == "string" and self.first_seen is not None:
            self._add_categories(day, values)
        if self.first_seen is not None and self.dtype == "string" and len(values) > len(self.first_seen) + nulls:
            self.not_an_id(f"repeats within {day}")  # more rows than values: no need to hash them to know
        if self.ids is not None:
            repeat = self.ids.repeat(day, values)
            if repeat:
                self.not_an_id(repeat)

    def _add_categories(self, day: str, values: pa.ChunkedArray) -> None:
        first_seen = self.first_seen
        if first_seen is None:  # already open
            return
        distinct = _distinct(values, ALLOWED_VALUES_AT_MOST)
        for value in distinct or ():
            first_seen.setdefault(value, day)
        if distinct is None or len(first_seen) > ALLOWED_VALUES_AT_MOST:
            self.close_open(f"more than {ALLOWED_VALUES_AT_MOST} values")

    def close_open(self, because: str) -> None:
        self.first_seen, self.open_because = None, because

    def not_an_id(self, because: str) -> None:
        if self.ids is not None:
            self.ids, self.not_id_because = None, because


@dataclass
class History:
    """Every day file of a landing directory, as running statistics."""

    file_format: str
    days: list[str] = field(default_factory=list)
    rows: int = 0
    fewest_rows: tuple[int, str] | None = None  # the smallest day: rows, day
    columns: dict[str, ColumnHistory] = field(default_factory=dict)  # in the order first seen

    def add(self, path: Path) -> None:
        """Read one day file into the statistics; a file that cannot be read is named."""
        day = path.stem
        try:
            rows = self._add_csv(path, day) if self.file_format == "csv" else self._add_parquet(path, day)
        except (pa.ArrowException, OSError) as error:
            raise ValueError(f"{path}: cannot read: {type(error).__name__}: {error}") from error
        self.days.append(day)
        self.rows += rows
        if self.fewest_rows is None or rows < self.fewest_rows[0]:
            self.fewest_rows = (rows, day)

    def column(self, name: str) -> ColumnHistory:
        if name not in self.columns:
            self.columns[name] = ColumnHistory(name)
            if self.days:  # a column the first day lacks is not in every file: never the event id
                self.columns[name].not_an_id(f"absent before {self.days[-1]}")
        return self.columns[name]

    def _add_csv(self, path: Path, day: str) -> int:
        from pyarrow import csv

        table = csv.read_csv(
            path,
            read_options=csv.ReadOptions(block_size=CSV_BLOCK_BYTES),
            convert_options=csv.ConvertOptions(null_values=CSV_NULLS, strings_can_be_null=True),
        )
        for name, values in zip(table.column_names, table.columns, strict=True):
            column = self.column(name)
            column.merge_type(_dtype(values.type, csv=True), path, csv=True)
            if pa.types.is_temporal(values.type):  # text the runtime reads as text, neither categories nor ids
                column.close_open("dates or times")
                column.not_an_id("dates or times")
            column.add_values(day, values)
        return int(table.num_rows)

    def _add_parquet(self, path: Path, day: str) -> int:
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        footer = _footer_statistics(parquet.metadata)
        rows: int = parquet.metadata.num_rows
        read: list[str] = []
        written_by_pandas = parquet.schema_arrow.pandas_metadata or {}
        index = written_by_pandas.get("index_columns", [])
        nullable = {
            column["name"]
            for column in written_by_pandas.get("columns", [])
            if str(column.get("numpy_type")).startswith(("Int", "UInt", "boolean"))
        }
        for name, dtype in zip(parquet.schema_arrow.names, parquet.schema_arrow.types, strict=True):
            if name in index:  # a pandas index: pandas reads it back as the index, not as a column
                continue
            column = self.column(name)
            column.merge_type(_dtype(dtype, csv=False), path, csv=False)
            if column.dtype == "unsupported":
                column.add_counts(day, rows, 0)
            elif column.wants_values() or (counted := footer.get(name)) is None:
                read.append(name)
            else:
                nulls, low, high = counted
                column.add_counts(day, rows, nulls)
                column.widened_by_nulls |= nulls > 0 and name not in nullable
                if column.dtype == "int64":
                    column.add_range(low, high)
        dictionary = [name for name in read if self.columns[name].ids is None and self.columns[name].dtype == "string"]
        if read:
            table = pq.read_table(path, columns=read, read_dictionary=dictionary)
            for name in read:
                self.columns[name].add_values(day, table.column(name))
                self.columns[name].widened_by_nulls |= table.column(name).null_count > 0 and name not in nullable
        return rows


def scan_history(files: list[Path], file_format: str, progress: bool = True) -> History:
    """Every file once, in day order, with a progress bar on stderr."""
    history = History(file_format)
    for path in _tracked(files, progress):
        history.add(path)
    return history


def _tracked(files: list[Path], progress: bool) -> Iterable[Path]:
    if not progress:
        return files
    from rich.console import Console
    from rich.progress import track

    return track(files, description=f"reading {len(files)} day files", console=Console(stderr=True))


def _dtype(arrow_type: pa.DataType, csv: bool) -> str | None:
    """The spec's dtype of an Arrow type (None for a column of nulls). CSV dates and times are text: the
    runtime reads them as text, all but the timestamp column. A Parquet date, time or duration is not read."""
    if pa.types.is_null(arrow_type):
        return None
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_integer(arrow_type):
        return "int64"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "float64"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or pa.types.is_string_view(arrow_type):
        return "string"
    if csv and pa.types.is_temporal(arrow_type):
        return "string"
    return "timestamp" if pa.types.is_timestamp(arrow_type) else "unsupported"  # pandas reads Parquet dates as objects


def _footer_statistics(metadata: Any) -> dict[str, tuple[int, Any, Any] | None]:
    """Per top-level column: (nulls, min, max) over every row group, or None where a row group lacks them."""
    found: dict[str, tuple[int, Any, Any] | None] = {}
    for group_index in range(metadata.num_row_groups):
        group = metadata.row_group(group_index)
        for index in range(group.num_columns):
            chunk = group.column(index)
            name, stats = chunk.path_in_schema, chunk.statistics
            if name in found and found[name] is None:
                continue
            if (
                stats is None
                or not stats.has_null_count
                or (not stats.has_min_max and stats.null_count < group.num_rows)
            ):
                found[name] = None
                continue
            low, high = (stats.min, stats.max) if stats.has_min_max else (None, None)
            nulls, known_low, known_high = found.get(name) or (0, None, None)
            found[name] = (
                nulls + stats.null_count,
                low if known_low is None else known_low if low is None else min(low, known_low),
                high if known_high is None else known_high if high is None else max(high, known_high),
            )
    return found


def _distinct(values: pa.ChunkedArray, at_most: int) -> set[str] | None:
    """The distinct non-null values as text, None when there are more than `at_most` (a dictionary-encoded
    column through its indices: no decoding)."""
    found: set[str] = set()
    for chunk in values.chunks:
        if pa.types.is_dictionary(chunk.type):
            chunk = chunk.dictionary.take(pc.unique(chunk.indices))
        unique = pc.unique(chunk).drop_null()
        if len(unique) > at_most:  # spare the conversion of a day's worth of ids
            return None
        found.update(str(value) for value in unique.to_pylist())
        if len(found) > at_most:
            return None
    return found


def _increasing(values: pa.ChunkedArray) -> bool:
    return len(values) < 2 or bool(pc.all(pc.greater(values[1:], values[:-1])).as_py())


def _hashes(values: pa.ChunkedArray) -> np.ndarray:
    """A 64-bit hash per value: integers one to one, strings from their bytes (vectorized, no Python objects)."""
    parts = []
    for chunk in values.chunks:
        if pa.types.is_integer(chunk.type):
            parts.append(_mix(chunk.to_numpy().astype(np.int64).view(np.uint64)))
        else:
            parts.append(
                _string_hashes(chunk if pa.types.is_large_string(chunk.type) else chunk.cast(pa.large_string()))
            )
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64)


def _string_hashes(strings: pa.Array) -> np.ndarray:
    """Each string's length mixed with its bytes eight at a time (read as unaligned words of the data buffer)."""
    _, offsets_buffer, data_buffer = strings.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[strings.offset : strings.offset + len(strings) + 1]
    starts, lengths = offsets[:-1], np.diff(offsets)
    data = np.zeros(offsets[-1] + 8, dtype=np.uint8)  # 8 bytes of padding: the last word reads past the end
    data[: offsets[-1]] = np.frombuffer(data_buffer, dtype=np.uint8)[: offsets[-1]] if data_buffer else []
    words = np.ndarray(shape=(len(data) - 7,), dtype="<u8", buffer=data, strides=(1,))
    hashes = _mix(lengths.astype(np.uint64))
    for at in range(0, int(lengths.max(initial=0)), 8):
        if lengths.min() >= at + 8:  # a whole word of every string: no row selection, no mask
            hashes = _mix(hashes ^ words[starts + at])
            continue
        rows = np.flatnonzero(lengths > at)
        kept_bytes = np.minimum(lengths[rows] - at, 8).astype(np.uint64)
        mask = np.where(
            kept_bytes == 8, np.uint64(2**64 - 1), (np.uint64(1) << (kept_bytes * np.uint64(8))) - np.uint64(1)
        )
        hashes[rows] = _mix(hashes[rows] ^ (words[starts[rows] + at] & mask))
    return hashes


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a bijection of 64-bit integers that spreads every input bit over the output."""
    values = values ^ (values >> np.uint64(30))
    values *= np.uint64(0xBF58476D1CE4E5B9)
    values ^= values >> np.uint64(27)
    values *= np.uint64(0x94D049BB133111EB)
    mixed: np.ndarray = values ^ (values >> np.uint64(31))
    return mixed
