"""Where raw events come from: a landing directory of daily files or a Postgres table.

One resource serves every use case; the spec's `source` block says which kind
and where. Reading never modifies the source: landed files are read-only to
the platform, whatever the gates later decide.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import pandas as pd

from ml_platform.spec import FileSourceSpec, PostgresSourceSpec, UseCaseSpec

if TYPE_CHECKING:
    import sqlalchemy

DAY_FILE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.(parquet|csv)$")


class SourceError(Exception):
    """A day's source data is missing or cannot be read; the message names file and day."""


class EventSource(dg.ConfigurableResource):
    """Reads one day of raw events for a use case."""

    data_dir: str
    postgres_dsn: str | None = None

    def read_day(self, spec: UseCaseSpec, day: str) -> pd.DataFrame:
        if isinstance(spec.source, FileSourceSpec):
            return self._read_file(spec, spec.source, day)
        return self._read_table(spec, spec.source, day)

    def available_days(self, spec: UseCaseSpec) -> dict[str, str]:
        """Days the source has data for, each with a version that changes when the data does."""
        if isinstance(spec.source, FileSourceSpec):
            directory = self.landing_dir(spec.source)
            if not directory.is_dir():
                return {}
            days = {}
            for path in directory.iterdir():
                match = DAY_FILE.match(path.name)
                if match and match.group(2) == spec.source.format:
                    stat = path.stat()
                    days[match.group(1)] = f"{stat.st_mtime_ns}-{stat.st_size}"
            return days
        import sqlalchemy

        query = sqlalchemy.text(
            f"SELECT CAST(DATE({spec.timestamp_column} AT TIME ZONE 'UTC') AS TEXT) AS day, COUNT(*) AS n "
            f"FROM {spec.source.table} GROUP BY 1"
        )
        with self._engine(spec.source).connect() as connection:
            return {row.day: str(row.n) for row in connection.execute(query)}

    def landing_dir(self, source: FileSourceSpec) -> Path:
        directory = Path(source.directory)
        return directory if directory.is_absolute() else Path(self.data_dir) / directory

    def _read_file(self, spec: UseCaseSpec, source: FileSourceSpec, day: str) -> pd.DataFrame:
        path = self.landing_dir(source) / f"{day}.{source.format}"
        if not path.exists():
            raise SourceError(f"partition {day}: no landed file {path} (expected one {source.format} file per day)")
        try:
            if source.format == "parquet":
                return pd.read_parquet(path)
            frame = pd.read_csv(path, dtype={c.name: str for c in spec.columns if c.dtype == "string"})
            if spec.timestamp_column in frame.columns:
                frame[spec.timestamp_column] = pd.to_datetime(frame[spec.timestamp_column], utc=True, format="ISO8601")
            return frame
        except Exception as error:  # any parser error means the file is unusable
            raise SourceError(f"partition {day}: cannot parse {path}: {type(error).__name__}: {error}") from error

    def _read_table(self, spec: UseCaseSpec, source: PostgresSourceSpec, day: str) -> pd.DataFrame:
        import sqlalchemy

        start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.timezone.utc)
        query = sqlalchemy.text(
            f"SELECT * FROM {source.table} WHERE {spec.timestamp_column} >= :start AND {spec.timestamp_column} < :end"
        )
        try:
            with self._engine(source).connect() as connection:
                frame = pd.read_sql(query, connection, params={"start": start, "end": start + dt.timedelta(days=1)})
        except Exception as error:
            raise SourceError(f"partition {day}: cannot read table {source.table}: {error}") from error
        if spec.timestamp_column in frame.columns:
            frame[spec.timestamp_column] = pd.to_datetime(frame[spec.timestamp_column], utc=True)
        return frame

    def _engine(self, source: PostgresSourceSpec) -> sqlalchemy.Engine:
        import sqlalchemy

        dsn = self.postgres_dsn or os.environ.get(source.dsn_env)
        if not dsn:
            raise SourceError(f"table {source.table}: set {source.dsn_env} (or EventSource.postgres_dsn) to a Postgres URL")
        return sqlalchemy.create_engine(dsn)
