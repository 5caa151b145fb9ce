"""Where raw events come from: a landing directory of daily files or a Postgres table.

One resource serves every use case; the spec's `source` block says which kind
and where. Reading never modifies the source: landed files are read-only to
the platform, whatever the gates later decide.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import pandas as pd

from ml_platform.resources.secrets import redact
from ml_platform.spec import FileSourceSpec, PostgresSourceSpec, UseCaseSpec

if TYPE_CHECKING:
    import sqlalchemy

DAY_FILE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.(parquet|csv)$")

# One engine (and so one connection pool) per process and DSN: sensors tick every 30 s and a range
# run reads one query per day, so an engine per call would open connections faster than they close.
_ENGINES: dict[tuple[int, str], sqlalchemy.Engine] = {}
_ENGINES_LOCK = threading.Lock()


@dataclass
class LandingScan:
    files: dict[str, Path]  # partition day -> landed file
    rejected: dict[str, str]  # entry name -> why it cannot be a day's file


class SourceError(Exception):
    """A day's source data is missing or cannot be read; the message names file and day."""


class EventSource(dg.ConfigurableResource):
    """Reads one day of raw events for a use case.

    A Postgres source's URL (with its password) is read from the environment variable its spec names
    (`source.dsn_env`, default ML_PLATFORM_SOURCE_DSN) when a day is read, so it never becomes a
    resource value that the UI shows. `postgres_dsn` is a fallback for code that builds the resource
    itself; give it `dg.EnvVar(...)`, never a literal URL with a password."""

    data_dir: str
    postgres_dsn: str | None = None

    def read_day(self, spec: UseCaseSpec, day: str) -> pd.DataFrame:
        if isinstance(spec.source, FileSourceSpec):
            return self._read_file(spec, spec.source, day)
        return self._read_table(spec, spec.source, day)

    def available_days(self, spec: UseCaseSpec) -> dict[str, str]:
        """Days the source has data for, each with a cheap version that changes when the data does
        (files: size and modification time; tables: the day's row count, and its newest
        `updated_at_column` value when the spec names one)."""
        if isinstance(spec.source, FileSourceSpec):
            return {day: file_signature(path) for day, path in self.scan_landing(spec.source).files.items()}
        import sqlalchemy

        engine = self._engine(spec.source)
        quote = engine.dialect.identifier_preparer.quote
        column = quote(spec.timestamp_column)
        updated = spec.source.updated_at_column
        newest = f", CAST(MAX({quote(updated)}) AS TEXT) AS changed" if updated else ""
        query = sqlalchemy.text(
            f"SELECT CAST(DATE({column} AT TIME ZONE 'UTC') AS TEXT) AS day, COUNT(*) AS n{newest} "
            f"FROM {spec.source.table} WHERE {column} IS NOT NULL GROUP BY 1"
        )
        try:
            with engine.connect() as connection:
                return {row.day: f"{row.n}:{row.changed}" if updated else str(row.n) for row in connection.execute(query)}
        except sqlalchemy.exc.SQLAlchemyError as error:
            raise SourceError(f"table {spec.source.table}: cannot list days: {error}") from error

    def scan_landing(self, source: FileSourceSpec) -> LandingScan:
        """Landed day files, and every other entry with the reason it is not one (hidden files are skipped)."""
        directory = self.landing_dir(source)
        scan = LandingScan(files={}, rejected={})
        if not directory.is_dir():
            return scan
        root = directory.resolve()
        for path in sorted(directory.iterdir()):
            if path.name.startswith("."):  # editors' and uploaders' temporary files
                continue
            match = DAY_FILE.match(path.name)
            problem = _unreadable_entry(path, root)
            if problem:
                scan.rejected[path.name] = problem
            elif not match or match.group(2) != source.format:
                scan.rejected[path.name] = f"name is not YYYY-MM-DD.{source.format}"
            elif not _is_calendar_day(match.group(1)):
                scan.rejected[path.name] = f"{match.group(1)} is not a calendar date"
            else:
                scan.files[match.group(1)] = path
        return scan

    def landing_dir(self, source: FileSourceSpec) -> Path:
        directory = Path(source.directory)
        return directory if directory.is_absolute() else Path(self.data_dir) / directory

    def _read_file(self, spec: UseCaseSpec, source: FileSourceSpec, day: str) -> pd.DataFrame:
        path = self.landing_dir(source) / f"{day}.{source.format}"
        if not path.exists() and not path.is_symlink():
            raise SourceError(f"partition {day}: no landed file {path} (expected one {source.format} file per day)")
        problem = _unreadable_entry(path, self.landing_dir(source).resolve())
        if problem:  # the same rule as the landed-data sensor's: such an entry is never read
            raise SourceError(f"partition {day}: {path} {problem}; it is not read")
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
        try:
            engine = self._engine(source)
            column = engine.dialect.identifier_preparer.quote(spec.timestamp_column)
            query = sqlalchemy.text(f"SELECT * FROM {source.table} WHERE {column} >= :start AND {column} < :end")
            with engine.connect() as connection:
                frame = pd.read_sql(query, connection, params={"start": start, "end": start + dt.timedelta(days=1)})
        except Exception as error:
            raise SourceError(f"partition {day}: cannot read table {source.table}: {error}") from error
        if spec.timestamp_column in frame.columns:
            frame[spec.timestamp_column] = pd.to_datetime(frame[spec.timestamp_column], utc=True)
        for spec_column in spec.columns:
            # A float column that is NULL all day (no purchases, so no amounts) comes back as object
            # of None; the Parquet path keeps float64, so the schema gate must see float64 here too.
            name = spec_column.name
            if spec_column.dtype == "float64" and name in frame.columns and frame[name].dtype == object and frame[name].isna().all():
                frame[name] = frame[name].astype("float64")
        return frame

    def _engine(self, source: PostgresSourceSpec) -> sqlalchemy.Engine:
        import sqlalchemy

        dsn = os.environ.get(source.dsn_env) or self.postgres_dsn  # the use case's own variable wins over the default
        if not dsn:
            raise SourceError(f"table {source.table}: set {source.dsn_env} (or EventSource.postgres_dsn) to a Postgres URL")
        cache_key = (os.getpid(), dsn)  # never share a pool across a fork
        with _ENGINES_LOCK:
            engine = _ENGINES.get(cache_key)
            if engine is None:
                try:
                    engine = sqlalchemy.create_engine(_with_installed_driver(dsn), pool_pre_ping=True)
                except Exception as error:  # malformed URL or missing driver; the message may quote the URL
                    raise SourceError(
                        f"table {source.table}: cannot use the Postgres URL in {source.dsn_env}: "
                        f"{type(error).__name__}: {redact(str(error), dsn)}"
                    ) from None
                sqlalchemy.event.listen(engine, "connect", _utc_session)
                _ENGINES[cache_key] = engine
            return engine


def content_digest(path: Path) -> str:
    """SHA-256 of a landed file: the identity of its content, whatever its timestamps say."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_signature(path: Path) -> str:
    """Size and modification time: cheap, and changed whenever the content may have."""
    stat = path.stat()
    return f"{stat.st_mtime_ns}-{stat.st_size}"


def _unreadable_entry(path: Path, root: Path) -> str | None:
    """Why a landing entry must not be read as a day's data (None: it may be)."""
    if not path.resolve().is_relative_to(root):
        return f"resolves to {path.resolve()}, outside the landing directory {root}"
    if not path.is_file():
        return "is not a regular file"
    return None


def _is_calendar_day(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _with_installed_driver(dsn: str) -> sqlalchemy.URL:
    """SQLAlchemy 2.1 maps a bare `postgresql://` URL to psycopg 3, but the platform ships psycopg2:
    without this, the plain URL everyone writes fails with "No module named 'psycopg'"."""
    import importlib.util

    import sqlalchemy

    url = sqlalchemy.make_url(dsn)
    if url.drivername == "postgresql" and importlib.util.find_spec("psycopg") is None:
        url = url.set(drivername="postgresql+psycopg2")
    return url


def _utc_session(dbapi_connection: object, _record: object) -> None:
    """Pin the session to UTC: DATE(... AT TIME ZONE 'UTC') and comparisons of naive `timestamp`
    columns with the day bounds otherwise follow the server's or PGTZ's zone and shift the days."""
    autocommit = dbapi_connection.autocommit  # type: ignore[attr-defined]
    dbapi_connection.autocommit = True  # type: ignore[attr-defined]
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    try:
        cursor.execute("SET TIME ZONE 'UTC'")
    finally:
        cursor.close()
        dbapi_connection.autocommit = autocommit  # type: ignore[attr-defined]


def dispose_engines() -> None:
    """Close every cached connection pool of this process (tests, before dropping a database)."""
    with _ENGINES_LOCK:
        engines = list(_ENGINES.values())
        _ENGINES.clear()
    for engine in engines:
        engine.dispose()
