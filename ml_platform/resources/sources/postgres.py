"""A Postgres table of events, read per UTC day (customer data often lives in the operational database).

The URL (with its password) reaches the source through `dg.EnvVar(source.dsn_env)` on the use
case's source resource, so Dagster resolves it when a run or tick starts and the UI shows only
the variable's name; errors quote the URL with the password redacted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from ml_platform.resources.secrets import redact
from ml_platform.resources.sources.base import SourceError, SourceSettings
from ml_platform.spec import PostgresSourceSpec, UseCaseSpec

if TYPE_CHECKING:
    import sqlalchemy

# One engine (and so one connection pool) per process and DSN: sensors tick every 30 s and a range
# run reads one query per day, so an engine per call would open connections faster than they close.
_ENGINES: dict[tuple[int, str], sqlalchemy.Engine] = {}
_ENGINES_LOCK = threading.Lock()


@dataclass(frozen=True)
class PostgresSource:
    spec: UseCaseSpec
    source: PostgresSourceSpec
    dsn: str | None = field(repr=False)  # holds the password: never in a repr, log or error

    @classmethod
    def open(cls, spec: UseCaseSpec, source: PostgresSourceSpec, settings: SourceSettings) -> PostgresSource:
        return cls(spec, source, settings.postgres_dsn)

    def versions(self) -> dict[str, str]:
        """The day's row count, and its newest `updated_at_column` value when the spec names one."""
        import sqlalchemy

        engine = self.engine()
        quote = engine.dialect.identifier_preparer.quote
        column = quote(self.spec.timestamp_column)
        updated = self.source.updated_at_column
        newest = f", CAST(MAX({quote(updated)}) AS TEXT) AS changed" if updated else ""
        query = sqlalchemy.text(
            f"SELECT CAST(DATE({column} AT TIME ZONE 'UTC') AS TEXT) AS day, COUNT(*) AS n{newest} "
            f"FROM {self.source.table} WHERE {column} IS NOT NULL GROUP BY 1"
        )
        try:
            with engine.connect() as connection:
                return {
                    row.day: f"{row.n}:{row.changed}" if updated else str(row.n) for row in connection.execute(query)
                }
        except sqlalchemy.exc.SQLAlchemyError as error:
            raise SourceError(f"table {self.source.table}: cannot list days: {error}") from error

    def digest(self, day: str, version: str) -> str:
        return hashlib.sha256(version.encode()).hexdigest()

    def rejected(self) -> dict[str, str]:
        return {}  # a row either falls on a day or has no timestamp; neither is a landed entry

    def entry_name(self, day: str) -> str:
        return f"{self.source.table} rows of {day}"

    def changed_at(self, day: str) -> float | None:
        return None

    def read_day(self, day: str) -> pd.DataFrame:
        import sqlalchemy

        start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
        try:
            engine = self.engine()
            column = engine.dialect.identifier_preparer.quote(self.spec.timestamp_column)
            query = sqlalchemy.text(f"SELECT * FROM {self.source.table} WHERE {column} >= :start AND {column} < :end")
            with engine.connect() as connection:
                frame = pd.read_sql(query, connection, params={"start": start, "end": start + dt.timedelta(days=1)})
        except Exception as error:
            raise SourceError(f"partition {day}: cannot read table {self.source.table}: {error}") from error
        if self.spec.timestamp_column in frame.columns:
            frame[self.spec.timestamp_column] = pd.to_datetime(frame[self.spec.timestamp_column], utc=True)
        for spec_column in self.spec.columns:
            # A float column that is NULL all day (no purchases, so no amounts) comes back as object
            # of None; the Parquet path keeps float64, so the schema gate must see float64 here too.
            name = spec_column.name
            if (
                spec_column.dtype == "float64"
                and name in frame.columns
                and frame[name].dtype == object
                and frame[name].isna().all()
            ):
                frame[name] = frame[name].astype("float64")
        return frame

    def engine(self) -> sqlalchemy.Engine:
        """This process's engine for the URL, created on first use."""
        import sqlalchemy

        if not self.dsn:
            raise SourceError(f"table {self.source.table}: set {self.source.dsn_env} to a Postgres URL")
        cache_key = (os.getpid(), self.dsn)  # never share a pool across a fork
        with _ENGINES_LOCK:
            engine = _ENGINES.get(cache_key)
            if engine is None:
                try:
                    engine = sqlalchemy.create_engine(_with_installed_driver(self.dsn), pool_pre_ping=True)
                except Exception as error:  # malformed URL or missing driver; the message may quote the URL
                    raise SourceError(
                        f"table {self.source.table}: cannot use the Postgres URL in {self.source.dsn_env}: "
                        f"{type(error).__name__}: {redact(str(error), self.dsn)}"
                    ) from None
                sqlalchemy.event.listen(engine, "connect", _utc_session)
                _ENGINES[cache_key] = engine
            return engine


def dispose_engines() -> None:
    """Close every cached connection pool of this process (tests, before dropping a database)."""
    with _ENGINES_LOCK:
        engines = list(_ENGINES.values())
        _ENGINES.clear()
    for engine in engines:
        engine.dispose()


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
