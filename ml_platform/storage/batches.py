"""Dagster's event batching, turned on by the platform's storages for the processes that use them.

Dagster hands a step's range of materializations (one per partition: 365 for a year's range) to
`EventLogStorage.store_event_batch` only when `DAGSTER_EVENT_BATCH_SIZE` is set, which it reads at
every event; by default it stores them one by one. Setting it where the storage is created reaches
every process whose instance writes through it (run workers under any launcher, `materialize` in
tests) without each launcher's environment having to carry it. An operator's own value wins.
Other events are not batched by Dagster and are stored one by one (the platform's Postgres event log holds
a run's check evaluations and writes them together itself: `postgres.PooledPostgresEventLogStorage._hold`).
"""

from __future__ import annotations

import os

EVENT_BATCH_SIZE_VARIABLE = "DAGSTER_EVENT_BATCH_SIZE"
RANGE_EVENTS_PER_BATCH = 1100  # Dagster flushes a range's batch at its last event: any range up to three years is one


def ask_dagster_for_batches() -> None:
    os.environ.setdefault(EVENT_BATCH_SIZE_VARIABLE, str(RANGE_EVENTS_PER_BATCH))
