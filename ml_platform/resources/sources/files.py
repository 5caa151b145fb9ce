"""A landing directory of daily files: `<directory>/<YYYY-MM-DD>.<parquet|csv>`.

Landed files are read-only to the platform, whatever the gates later decide.
One rule (`_unreadable_entry`) decides for the sensor and for reads which
entries are never read: symlinks leaving the landing directory, and anything
that is not a regular file (a directory named like a day file included).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import stat
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ml_platform.io.parquet_lake import ROW_GROUP_ROWS
from ml_platform.resources.sources.base import NoDataForDay, SourceError, SourceSettings
from ml_platform.spec import FileSourceSpec, UseCaseSpec

FORMATS = ("parquet", "csv")
DAY_FILE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.(parquet|csv)$")


@dataclass
class LandingScan:
    files: dict[str, os.DirEntry[str]]  # partition day -> landed file, as listed (no path parsed per file)
    rejected: dict[str, str]  # entry name -> why it cannot be a day's file


@dataclass(frozen=True)
class FileSource:
    spec: UseCaseSpec
    source: FileSourceSpec
    directory: Path

    @classmethod
    def open(cls, spec: UseCaseSpec, source: FileSourceSpec, settings: SourceSettings) -> FileSource:
        return cls(spec, source, landing_dir(settings.data_dir, source))

    def versions(self) -> dict[str, str]:
        return {day: file_signature(path) for day, path in self.scan().files.items()}

    def digest(self, day: str, version: str) -> str:
        return content_digest(self.directory / self.entry_name(day))

    def rejected(self) -> dict[str, str]:
        return self.scan().rejected

    def entry_name(self, day: str) -> str:
        return f"{day}.{self.source.format}"

    def changed_at(self, day: str) -> float | None:
        return (self.directory / self.entry_name(day)).stat().st_mtime

    def scan(self) -> LandingScan:
        """Landed day files, and every other entry with the reason it is not one (hidden files are skipped)."""
        scan = LandingScan(files={}, rejected={})
        if not self.directory.is_dir():
            return scan
        root = self.directory.resolve()
        with os.scandir(self.directory) as listing:  # each entry's type comes with the listing: no stat per entry
            entries = sorted(
                (e for e in listing if not e.name.startswith(".")), key=lambda e: e.name
            )  # skips temporary files
        for entry in entries:
            match = DAY_FILE.match(entry.name)
            problem = _unreadable_entry(entry, root)
            if problem:
                scan.rejected[entry.name] = problem
            elif not match or match.group(2) != self.source.format:
                scan.rejected[entry.name] = f"name is not YYYY-MM-DD.{self.source.format}"
            elif not _is_calendar_day(match.group(1)):
                scan.rejected[entry.name] = f"{match.group(1)} is not a calendar date"
            else:
                scan.files[match.group(1)] = entry
        return scan

    def read_day(self, day: str) -> pd.DataFrame:
        frames = list(self.read_batches(day))
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    def read_batches(self, day: str) -> Iterator[pd.DataFrame]:
        """The day's events, ROW_GROUP_ROWS rows at a time (the file's existence is checked at the call, each
        batch's parsing as it is read); errors as `read_day`'s."""
        path = self._readable_path(day)
        return self._parsed_batches(path, day)

    def _readable_path(self, day: str) -> Path:
        path = self.directory / self.entry_name(day)
        if not _has_entry(path, day):
            raise NoDataForDay(
                f"partition {day}: no landed file {path} (expected one {self.source.format} file per day)"
            )
        problem = _unreadable_entry(path, self.directory.resolve())
        if problem:  # the same rule as the landed-data sensor's: such an entry is never read
            raise SourceError(f"partition {day}: {path} {problem}; it is not read")
        return path

    def _parsed_batches(self, path: Path, day: str) -> Iterator[pd.DataFrame]:
        try:
            if self.source.format == "parquet":
                yield from parquet_batches_arrow_strings(path)
                return
            with pd.read_csv(path, dtype=_csv_dtypes(self.spec), chunksize=ROW_GROUP_ROWS) as chunks:
                for frame in chunks:
                    timestamp = self.spec.timestamp_column
                    if timestamp in frame.columns:
                        frame[timestamp] = pd.to_datetime(
                            frame[timestamp], utc=True, format=self.source.timestamp_format or "ISO8601"
                        )
                    yield frame.reset_index(drop=True)
        except Exception as error:  # any parser error means the file is unusable
            raise SourceError(f"partition {day}: cannot parse {path}: {type(error).__name__}: {error}") from error


def parquet_batches_arrow_strings(path: Path) -> Iterator[pd.DataFrame]:
    """A Parquet file as pandas frames of ROW_GROUP_ROWS rows with their strings left in Arrow memory
    (`pd.ArrowDtype`): no Python object per value on the way in, the raw gates count and compare them with Arrow
    kernels, and the lake writes them back as they were read (at 1M events a day this is most of the ingest's
    time). A file without rows is one empty frame with its columns and types."""
    parquet = pq.ParquetFile(path)
    if parquet.metadata.num_rows == 0:
        yield parquet.read().to_pandas(types_mapper=_ARROW_STRINGS.get)
        return
    for batch in parquet.iter_batches(batch_size=ROW_GROUP_ROWS):
        yield pa.Table.from_batches([batch]).to_pandas(types_mapper=_ARROW_STRINGS.get, self_destruct=True)


_ARROW_STRINGS = {pa.string(): pd.ArrowDtype(pa.string()), pa.large_string(): pd.ArrowDtype(pa.large_string())}
CSV_DTYPES: dict[str, type[str] | str] = {"string": str, "int64": "Int64", "bool": "boolean", "float64": "float64"}


def _csv_dtypes(spec: UseCaseSpec) -> dict[Hashable, type[str] | str]:  # keyed as read_csv types its dtypes
    """The declared dtypes for pandas' CSV reader: a string column of digits stays a string, and an integer
    column with blanks stays integer (nullable Int64; the null gate holds it to its max_null_fraction)
    instead of silently becoming float."""
    return {c.name: CSV_DTYPES[c.dtype] for c in spec.columns if c.dtype in CSV_DTYPES}


def landing_dir(data_dir: Path, source: FileSourceSpec) -> Path:
    directory = Path(source.directory)
    return directory if directory.is_absolute() else data_dir / directory


def content_digest(path: Path) -> str:
    """SHA-256 of a landed file: the identity of its content, whatever its timestamps say."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_signature(path: Path | os.DirEntry[str]) -> str:
    """Size and modification time: cheap, and changed whenever the content may have."""
    stat = path.stat()
    return f"{stat.st_mtime_ns}-{stat.st_size}"


def _has_entry(path: Path, day: str) -> bool:
    """Whether the landing directory holds an entry named `path` (any kind: a symlink or directory is refused
    later). False only for a definite "no such file" in a directory that is there: a missing or unreadable
    landing directory, or the day landed in the other format, is a `SourceError`, never a day without data."""
    directory = path.parent
    try:
        if not stat.S_ISDIR(os.stat(directory).st_mode):
            raise SourceError(f"partition {day}: the landing directory {directory} is not a directory")
        os.lstat(path)
        return True
    except FileNotFoundError:
        if not directory.exists():
            raise SourceError(f"partition {day}: the landing directory {directory} does not exist") from None
    except OSError as error:  # permission denied, I/O error: unavailable, not absent
        raise SourceError(f"partition {day}: cannot look for {path}: {type(error).__name__}: {error}") from error
    for other in (f"{day}.{kind}" for kind in FORMATS if f"{day}.{kind}" != path.name):
        if os.path.lexists(directory / other):
            raise SourceError(
                f"partition {day}: no {path.name}, but {other} landed; the spec reads {path.suffix[1:]} files"
            )
    return False


def _unreadable_entry(path: Path | os.DirEntry[str], root: Path) -> str | None:
    """Why a landing entry must not be read as a day's data (None: it may be). Only a symlink can lead out of
    the landing directory, so only symlinks are resolved (a realpath per entry: seconds a tick at 10,000 days)."""
    if path.is_symlink() and not (resolved := Path(path).resolve()).is_relative_to(root):
        return f"resolves to {resolved}, outside the landing directory {root}"
    if not path.is_file():
        return "is not a regular file"
    return None


def _is_calendar_day(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True
