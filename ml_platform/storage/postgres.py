"""The Postgres event log with a kept connection: production (see the package docstring).

Its own module because importing dagster_postgres costs ~0.6 s, which the SQLite default
should not pay in every process that loads the instance.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import sqlalchemy as db
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS, DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log import SqlEventLogStorageTable
from dagster._serdes import ConfigurableClassData
from dagster_postgres.event_log.event_log import PostgresEventLogStorage
from dagster_postgres.utils import create_pg_engine, get_token_provider_from_config, pg_url_from_config

from ml_platform.storage.batches import ask_dagster_for_batches
from ml_platform.storage.known_tables import RemembersTables

# Events Dagster writes as their event row plus asset-index or check-execution rows.
MULTI_ROW_EVENTS = ASSET_EVENTS | ASSET_CHECK_EVENTS


class OpenTransaction(NamedTuple):
    connection: db.Connection
    transaction: db.RootTransaction
    burst: bool  # a gate's evaluations, held until the block ends or another event comes


class PooledPostgresEventLogStorage(RemembersTables, PostgresEventLogStorage):
    """Postgres event log over one kept (pinged) connection per process instead of one per statement group;
    an asset or check event and the index rows it updates are written in one transaction, and so is a
    batch of them.

    A range step's materializations arrive as one batch (`batches.ask_dagster_for_batches`): one
    multi-row insert, ~0.3 ms a materialization instead of ~3. A gate's evaluations, which Dagster
    stores one by one, share one transaction (`evaluations_together`) instead of a commit each.
    """

    def __init__(
        self, postgres_url: str, should_autocreate_tables: bool = True,
        inst_data: ConfigurableClassData | None = None, token_provider: Any = None,
    ) -> None:
        self._open = threading.local()  # `transaction`: this thread's OpenTransaction, if any
        ask_dagster_for_batches()
        super().__init__(postgres_url, should_autocreate_tables, inst_data=inst_data, token_provider=token_provider)
        self._engine = create_pg_engine(
            self.postgres_url, self._token_provider, isolation_level="AUTOCOMMIT",
            pool_size=1, max_overflow=4, pool_pre_ping=True, pool_recycle=3600,
        )

    def _connect(self) -> contextlib.AbstractContextManager[db.Connection]:
        open_transaction = getattr(self._open, "transaction", None)
        return contextlib.nullcontext(open_transaction.connection) if open_transaction else super()._connect()

    def store_event(self, event: EventLogEntry) -> None:
        """As Dagster stores it; an asset or check event (the event row, then its asset-index or
        check-execution rows) on one connection in one transaction: one commit instead of two or
        three, and never an event without the rows the asset and check pages read. Any other event
        first commits a burst of evaluations in progress, so it is never held back with them."""
        if not event.is_dagster_event or event.dagster_event_type != DagsterEventType.ASSET_CHECK_EVALUATION:
            self._finish(burst_only=True)
        if not (event.is_dagster_event and event.dagster_event_type in MULTI_ROW_EVENTS):
            self._store(event)
            return
        with self._transaction():
            self._store(event)

    def _store(self, event: EventLogEntry) -> None:
        """Dagster's `PostgresEventLogStorage.store_event` without its NOTIFY per event (a round trip each, "no
        longer used for pg event watch - preserved to support version skew": every process here runs the
        same pinned Dagster, whose watchers poll)."""
        insert = self.prepare_insert_event(event).returning(SqlEventLogStorageTable.c.id)
        with self._connect() as conn:
            event_id = int(conn.execute(insert).scalar_one())
        if event.is_dagster_event and event.dagster_event_type in ASSET_EVENTS and event.get_dagster_event().asset_key:
            with self.index_transaction() as conn:
                self._store_asset_event_tags(conn, [event], [event_id])
                self._store_asset_event(conn, event, event_id)
        if event.is_dagster_event and event.dagster_event_type in ASSET_CHECK_EVENTS:
            self.store_asset_check_event(event, event_id)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """As Dagster stores a batch (its event rows, then their tags and the asset index), in one
        transaction: if any part fails nothing is kept, and Dagster's fallback of storing the events
        one by one cannot write a row twice."""
        self._finish(burst_only=True)
        with self._transaction():
            super().store_event_batch(events)

    @contextlib.contextmanager
    def evaluations_together(self) -> Iterator[None]:
        """The check evaluations this thread stores inside the block, committed at its end in one
        transaction (a year's range stores thousands). Any other event stored meanwhile (a failure, a
        cancellation) commits them first; if one cannot be stored, none of them is kept and the error
        propagates, so no half-written range of evaluations is ever visible."""
        with self._transaction(burst=True):
            yield

    @contextlib.contextmanager
    def _transaction(self, burst: bool = False) -> Iterator[None]:
        """One transaction for what this thread stores inside it; nested ones join the open one."""
        if getattr(self._open, "transaction", None):
            try:
                yield
            except BaseException:
                self._finish(commit=False)  # the database may have aborted it: nothing of it is kept
                raise
            return
        connection = self._engine.connect().execution_options(isolation_level="READ COMMITTED")  # the engine autocommits
        self._open.transaction = OpenTransaction(connection, connection.begin(), burst)
        try:
            yield
        except BaseException:
            self._finish(commit=False)
            raise
        self._finish()

    def _finish(self, commit: bool = True, burst_only: bool = False) -> None:
        """Commit (or roll back) this thread's open transaction, if any (with `burst_only`, only a burst)."""
        open_transaction = getattr(self._open, "transaction", None)
        if not open_transaction or (burst_only and not open_transaction.burst):
            return
        self._open.transaction = None
        try:
            open_transaction.transaction.commit() if commit else open_transaction.transaction.rollback()
        finally:
            open_transaction.connection.close()

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> PooledPostgresEventLogStorage:
        return cls(
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            inst_data=inst_data,
            token_provider=get_token_provider_from_config(config_value),
        )

    def dispose(self) -> None:
        self._engine.dispose()
        super().dispose()
