"""The Postgres event log with a kept connection: production (see the package docstring).

Its own module because importing dagster_postgres costs ~0.6 s, which the SQLite default
should not pay in every process that loads the instance.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as db
from dagster import DagsterEventType, EventLogEntry
from dagster_postgres import PostgresEventLogStorage
from sqlalchemy.dialects.postgresql import insert as upsert

from ml_platform.dagster_internals import (
    ASSET_CHECK_EVENTS,
    ASSET_EVENTS,
    ConcurrencyLimitsTable,
    ConfigurableClassData,
    SqlEventLogStorageTable,
    create_pg_engine,
    get_token_provider_from_config,
    pg_url_from_config,
)
from ml_platform.storage.batches import ask_dagster_for_batches
from ml_platform.storage.known_tables import RemembersTables

# The transaction-level advisory lock every write to the event log takes before its first insert and holds until it
# commits, so that event ids (a serial, taken at insert) become visible in the order they were taken. Advisory locks
# are per database: the key only has to be one no other code in the instance's database uses.
EVENT_LOG_WRITE_LOCK = 0x6D6C5F6576656E74  # "ml_event"
HELD_EVALUATIONS_PER_INSERT = 1000  # rows of one multi-row insert when a gate's evaluations are written


class PooledPostgresEventLogStorage(RemembersTables, PostgresEventLogStorage):
    """Postgres event log over one kept (pinged) connection per process instead of one per statement group;
    every event is written in one short transaction with the index rows it updates, and so is a batch.

    Each transaction takes `EVENT_LOG_WRITE_LOCK` before it inserts: an id is taken at insert but seen at commit,
    and a reader that follows a run's log by id (the UI's live run log, `after_cursor` readers) would move
    past an id still uncommitted when a later one commits first, and never deliver it. Under the lock ids are
    committed in the order they are taken, by every process writing through this class.

    A range step's materializations arrive as one batch (`batches.ask_dagster_for_batches`): one
    multi-row insert, ~0.3 ms a materialization instead of ~3. Check evaluations, which Dagster stores one
    by one (a range gate records thousands), are held in memory per run when a step records them and written
    together, in one transaction, by the next other event of their run (the step's output, failure or end, a log
    line) or by this storage's next read: nobody else writes for them and no gate needs to know (`_hold`).
    """

    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        inst_data: ConfigurableClassData | None = None,
        token_provider: Any = None,
    ) -> None:
        self._local = threading.local()  # this thread's `connection` in a transaction (None outside one)
        self._held: dict[str, list[EventLogEntry]] = {}  # run id -> its check evaluations not yet written
        self._held_lock = threading.RLock()
        ask_dagster_for_batches()
        super().__init__(postgres_url, should_autocreate_tables, inst_data=inst_data, token_provider=token_provider)
        self._engine = create_pg_engine(
            self.postgres_url,
            self._token_provider,
            isolation_level="AUTOCOMMIT",
            pool_size=1,
            max_overflow=4,
            pool_pre_ping=True,
            pool_recycle=3600,
        )

    def _connect(self) -> contextlib.AbstractContextManager[db.Connection]:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            return contextlib.nullcontext(connection)
        self._write_held()  # a read (or a write outside a transaction) sees every evaluation stored before it
        return super()._connect()

    def store_event(self, event: EventLogEntry) -> None:
        """As Dagster stores it (the event row, then its asset-index or check-execution rows), in one
        transaction: one commit, and never an event without the rows the asset and check pages read. A run's
        check evaluation is held (`_hold`); any other event of the run first writes those held."""
        if self._hold(event):
            return
        self._write_held(event.run_id)
        with self._transaction():
            self._store(event)

    def _hold(self, event: EventLogEntry) -> bool:
        """Hold a run's check evaluation in memory, to be written with the others of the run in one transaction
        (a multi-row insert, then their check-execution rows) when the run's next other event is stored, or
        before anything this storage reads: a year's range records thousands, and no transaction stays open
        (holding the write lock) while the gate works. If the write fails none of them is kept and the error
        propagates with the event that wrote them (the step fails): no half-written range is ever visible.
        Only a step's evaluations are held: one stored outside a step (reported through the API, runless) is
        written at once, and a failure raised by that store, as Dagster's storage contract expects."""
        if (
            event.dagster_event_type != DagsterEventType.ASSET_CHECK_EVALUATION
            or not event.run_id
            or not event.step_key
        ):
            return False
        with self._held_lock:
            self._held.setdefault(event.run_id, []).append(event)
        return True

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
        one by one cannot write a row twice. Dagster's batch updates the asset index from its last event
        only, so each run of consecutive events of one asset is its own batch: every asset gets its entry."""
        for run_id in {event.run_id for event in events}:
            self._write_held(run_id)
        with self._transaction():
            for _, same_asset in itertools.groupby(events, key=lambda event: event.get_dagster_event().asset_key):
                super().store_event_batch(list(same_asset))

    def _write_held(self, run_id: str | None = None) -> None:
        """Write the held evaluations of `run_id` (of every run when None), if any, in one transaction per run."""
        if not self._held:
            return
        with self._held_lock:
            runs = [run_id] if run_id is not None else list(self._held)
            for run in runs:
                held = self._held.pop(run, [])  # kept or not, they are written only once
                if held:
                    self._insert_held(held)

    def _insert_held(self, held: list[EventLogEntry]) -> None:
        with self._transaction(), self._connect() as conn:
            for start in range(0, len(held), HELD_EVALUATIONS_PER_INSERT):
                chunk = held[start : start + HELD_EVALUATIONS_PER_INSERT]
                insert = self.prepare_insert_event_batch(chunk).returning(SqlEventLogStorageTable.c.id)
                event_ids = conn.execute(insert).scalars().all()  # in the rows' order, as Dagster's batch relies on
                for event, event_id in zip(chunk, event_ids, strict=True):
                    self.store_asset_check_event(event, int(event_id))

    def initialize_concurrency_limit_to_default(self, concurrency_key: str) -> bool:
        """Give a pool the instance's default limit (`concurrency.pools.default_limit`) and that many slots, as
        Dagster does when a step first claims it or the configured default changed, but with an upsert.

        Dagster inserts the limit row and, when one exists (another run's step got there first, or the default
        changed), updates it in the same transaction, which Postgres has aborted at the failed insert: the step
        fails with InFailedSqlTransaction (dagster-io/dagster#33552, open at CHECKED_AGAINST). Under the write
        lock, two processes never both count the pool's slots as missing and allocate one each."""
        default_limit = self._instance.global_op_concurrency_default_limit if self.has_instance else None
        if default_limit is None or not self.has_concurrency_limits_table or not self.has_default_pool_limit_col:
            # no default (Dagster then removes the pool's row, no insert), or a schema not yet migrated
            return super().initialize_concurrency_limit_to_default(concurrency_key)
        self._reconcile_concurrency_limits_from_slots()
        limit_row = upsert(ConcurrencyLimitsTable).values(
            concurrency_key=concurrency_key, limit=default_limit, using_default_limit=True
        )
        with self._transaction(), self.index_transaction() as conn:
            conn.execute(
                limit_row.on_conflict_do_update(
                    index_elements=[ConcurrencyLimitsTable.c.concurrency_key],
                    set_={"limit": default_limit},
                    where=ConcurrencyLimitsTable.c.limit != default_limit,
                )
            )
            self._allocate_concurrency_slots(conn, concurrency_key, default_limit)
        return True

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One transaction for what this thread stores inside it (nested ones join it), holding the write
        lock from before its first insert until it commits or rolls back."""
        if getattr(self._local, "connection", None) is not None:
            yield
            return
        with self._engine.connect() as connection:
            connection.execution_options(isolation_level="READ COMMITTED")  # the engine autocommits
            with connection.begin():
                connection.execute(db.select(db.func.pg_advisory_xact_lock(EVENT_LOG_WRITE_LOCK)))
                self._local.connection = connection
                try:
                    yield
                finally:
                    self._local.connection = None

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> PooledPostgresEventLogStorage:
        return cls(
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            inst_data=inst_data,
            token_provider=get_token_provider_from_config(config_value),
        )

    def optimize_for_webserver(self, statement_timeout: int, pool_recycle: int, max_overflow: int) -> None:
        """Dagster's webserver engine (a statement timeout, its pool sizes) in place of the kept one, whose
        connection is closed rather than left open until the process ends."""
        kept = self._engine
        super().optimize_for_webserver(statement_timeout, pool_recycle, max_overflow)
        kept.dispose()

    def dispose(self) -> None:
        self._write_held()  # a process that ends right after its gate (no event after it) keeps its evaluations
        self._engine.dispose()
        super().dispose()
