"""The Postgres event log with a kept connection: production (see the package docstring).

Its own module because importing dagster_postgres costs ~0.6 s, which the SQLite default
should not pay in every process that loads the instance.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as db
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS
from dagster._core.events.log import EventLogEntry
from dagster._serdes import ConfigurableClassData
from dagster_postgres.event_log.event_log import PostgresEventLogStorage
from dagster_postgres.utils import create_pg_engine, get_token_provider_from_config, pg_url_from_config

from ml_platform.storage.batches import ask_dagster_for_batches
from ml_platform.storage.known_tables import RemembersTables

# Events Dagster writes as their event row plus asset-index or check-execution rows.
MULTI_ROW_EVENTS = ASSET_EVENTS | ASSET_CHECK_EVENTS


class PooledPostgresEventLogStorage(RemembersTables, PostgresEventLogStorage):
    """Postgres event log over one kept (pinged) connection per process instead of one per statement group;
    an asset or check event and the index rows it updates are written in one transaction, and so is a
    batch of them.

    A range step's materializations arrive as one batch (`batches.ask_dagster_for_batches`): one
    multi-row insert, ~0.3 ms a materialization instead of ~3.
    """

    def __init__(
        self, postgres_url: str, should_autocreate_tables: bool = True,
        inst_data: ConfigurableClassData | None = None, token_provider: Any = None,
    ) -> None:
        self._in_transaction = threading.local()  # the connection of a write in progress on this thread
        ask_dagster_for_batches()
        super().__init__(postgres_url, should_autocreate_tables, inst_data=inst_data, token_provider=token_provider)
        self._engine = create_pg_engine(
            self.postgres_url, self._token_provider, isolation_level="AUTOCOMMIT",
            pool_size=1, max_overflow=4, pool_pre_ping=True, pool_recycle=3600,
        )

    def _connect(self) -> contextlib.AbstractContextManager[db.Connection]:
        shared = getattr(self._in_transaction, "connection", None)
        return contextlib.nullcontext(shared) if shared is not None else super()._connect()

    def store_event(self, event: EventLogEntry) -> None:
        """As Dagster stores it; an asset or check event (the event row, then its asset-index or
        check-execution rows) on one connection in one transaction: one commit instead of two or
        three, and never an event without the rows the asset and check pages read."""
        if not (event.is_dagster_event and event.dagster_event_type in MULTI_ROW_EVENTS):
            super().store_event(event)
            return
        with self._transaction():
            super().store_event(event)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """As Dagster stores a batch (its event rows, then their tags and the asset index), in one
        transaction: if any part fails nothing is kept, and Dagster's fallback of storing the events
        one by one cannot write a row twice."""
        with self._transaction():
            super().store_event_batch(events)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One transaction for everything written inside it on this thread (a batch's events join its)."""
        if getattr(self._in_transaction, "connection", None) is not None:
            yield
            return
        with super()._connect() as conn:
            conn = conn.execution_options(isolation_level="READ COMMITTED")  # the engine autocommits
            with conn.begin():
                self._in_transaction.connection = conn
                try:
                    yield
                finally:
                    self._in_transaction.connection = None

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
