"""The SQLite event log with kept connections: the embedded default (see the package docstring)."""

from __future__ import annotations

import itertools
import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as db
from dagster import DagsterEventType, Enum, EnumValue, EventLogEntry, Field, StringSource

from ml_platform.dagster_internals import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    ConfigurableClassData,
    EventHandlerFn,
    SqliteEventLogStorage,
    SqlPollingEventWatcher,
)
from ml_platform.storage.batches import ask_dagster_for_batches
from ml_platform.storage.known_tables import RemembersTables

RUN_SHARD_ENGINES_KEPT = 8  # a worker writes one run's shard; the webserver reads a few at a time
# Asset events Dagster hands over in batches: a range step's materializations (observations), and the planned
# materializations of a run over a range (one per asset and day, 20,000 for two assets over 10,000 days).
BATCHED_ASSET_EVENTS = frozenset(
    {
        DagsterEventType.ASSET_MATERIALIZATION,
        DagsterEventType.ASSET_OBSERVATION,
        DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
    }
)
SQLITE_SYNCHRONOUS_MODES = ("FULL", "NORMAL")


def event_logs_dir(instance_dir: str) -> str:
    """Where Dagster keeps an instance's SQLite event logs by default, so existing instances keep their history."""
    return os.path.join(instance_dir, "history", "runs")


class PooledSqliteEventLogStorage(RemembersTables, SqliteEventLogStorage):
    """SQLite event log whose index shard keeps one connection and whose shards keep their engines; a
    range step's materializations, which Dagster hands over as one batch (`batches`), and a range run's
    planned materializations are written in one transaction per shard instead of two per event."""

    def __init__(
        self, base_dir: str | None = None, synchronous: str = "NORMAL", inst_data: ConfigurableClassData | None = None
    ) -> None:
        if synchronous not in SQLITE_SYNCHRONOUS_MODES:
            raise ValueError(
                f"PooledSqliteEventLogStorage: synchronous must be one of {SQLITE_SYNCHRONOUS_MODES}, got "
                f"{synchronous!r}"
            )
        self._synchronous = synchronous
        self._engines: OrderedDict[str, db.Engine] = OrderedDict()
        self._event_watcher: SqlPollingEventWatcher | None = None
        ask_dagster_for_batches()
        self._inst_data = inst_data
        if base_dir:
            super().__init__(base_dir, inst_data=inst_data)
        # else the directory of the instance it registers with, as Dagster's own storage: DAGSTER_HOME's, the one
        # `DagsterInstance.from_config(dir)` names (not DAGSTER_HOME's), or `dagster dev`'s temporary one

    def register_instance(self, instance: Any) -> None:
        if not hasattr(self, "_base_dir"):
            super().__init__(event_logs_dir(instance.root_directory), inst_data=self._inst_data)
        super().register_instance(instance)

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return {
            "base_dir": Field(StringSource, is_required=False),
            "synchronous": Field(
                Enum("SqliteSynchronous", [EnumValue(mode) for mode in SQLITE_SYNCHRONOUS_MODES]),
                is_required=False,
                default_value="NORMAL",
            ),
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> PooledSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Each run of consecutive events of one batched kind as Dagster stores each asset event (its row in the
        run's shard, mirrored with its tags into the index shard), one transaction per shard; each asset's index
        entry from its last event, as Dagster's Postgres batch does. Other events are stored one by one."""
        for kind, same_kind in itertools.groupby(events, key=lambda event: event.dagster_event_type):
            run = list(same_kind)
            if kind in BATCHED_ASSET_EVENTS and len({event.run_id for event in run}) == 1:
                self._store_asset_events(run)
            else:
                super().store_event_batch(run)

    def _store_asset_events(self, events: list[EventLogEntry]) -> None:
        with self.run_connection(events[0].run_id) as conn:
            conn.execute(self.prepare_insert_event_batch(events))
        with self.index_transaction() as conn:
            event_ids = [_inserted_id(conn.execute(self.prepare_insert_event(event))) for event in events]
            self._store_asset_event_tags(conn, events, event_ids)
            latest = {
                event.get_dagster_event().asset_key: (event, event_id)
                for event, event_id in zip(events, event_ids, strict=True)
            }
            for event, event_id in latest.values():
                self._store_asset_event(conn, event, event_id)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[db.Connection]:
        with self._db_lock:
            engine = self._engine_for(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _engine_for(self, shard: str) -> db.Engine:
        """The shard's engine, created (and its database initialised) on first use; least recent evicted."""
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        engine = db.create_engine(
            self.conn_string_for_shard(shard),
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            pool_size=1,
            max_overflow=2,
        )
        synchronous = self._synchronous
        db.event.listen(
            engine, "connect", lambda dbapi_conn, _: dbapi_conn.execute(f"PRAGMA synchronous={synchronous}")
        )
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        self._engines[shard] = engine
        run_shards = [name for name in self._engines if name != INDEX_SHARD_NAME]
        for evicted in run_shards[:-RUN_SHARD_ENGINES_KEPT]:
            self._engines.pop(evicted).dispose()
        return engine

    def _dispose_engines(self) -> None:
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    def wipe(self) -> None:
        self._dispose_engines()  # wipe unlinks the run shards: no connection may outlive its file
        super().wipe()

    def upgrade(self) -> None:
        self._dispose_engines()
        super().upgrade()

    def watch(self, run_id: str, cursor: str | None, callback: EventHandlerFn) -> None:
        """Poll the run's shard (as the Postgres storage does): a kept connection's commits land in the
        WAL, not in `<run_id>.db`, whose file events Dagster's SQLite watcher listens for."""
        if self._event_watcher is None:
            self._event_watcher = SqlPollingEventWatcher(self)
        self._event_watcher.watch_run(run_id, cursor, callback)

    def end_watch(self, run_id: str, handler: EventHandlerFn) -> None:
        if self._event_watcher is not None:
            self._event_watcher.unwatch_run(run_id, handler)

    def dispose(self) -> None:
        if self._event_watcher is not None:
            self._event_watcher.close()
            self._event_watcher = None
        self._dispose_engines()
        super().dispose()


def _inserted_id(result: db.CursorResult[Any]) -> int:
    """The id the database gave the row an insert wrote."""
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the event insert returned no id")
    return int(key[0])
