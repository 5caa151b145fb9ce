"""Dagster's own event-log storages (`sqlite`, `postgres`), keeping their database connections between events.

Dagster's SQL event logs open a fresh connection for every write: SQLite builds a new
engine per statement group (so SQLAlchemy's compiled-statement cache is lost each time) and
Postgres uses a NullPool (a new server backend per statement group). A partitioned check
evaluation is three such writes, and a year's range run records ~4,700 of them: 15-17 ms each
on SQLite and ~20-26 ms on Postgres, most of the in-run orchestration cost (see
benchmarks/RESULTS.md). These subclasses change only how connections are held; tables,
schema, migrations and what every Dagster process reads stay Dagster's own, so the stock
classes read the same database and switching back is a one-line change in dagster.yaml.

- `sqlite.PooledSqliteEventLogStorage`: the index shard (the cross-run tables every asset event
  and check evaluation also writes) and the last few run shards each keep one connection per
  process, with `PRAGMA synchronous=NORMAL` (configurable): in WAL mode no commit is lost or
  corrupted when a process crashes; a power loss may roll back the last ones. Commits then stay
  in the WAL instead of `<run_id>.db`, whose file events Dagster's SQLite log watcher listens
  for, so live run logs are polled, as Dagster does for Postgres.
- `postgres.PooledPostgresEventLogStorage`: one kept connection per process (overflow for concurrent
  threads), checked with a ping before use, so a restarted server costs a reconnect, not an error;
  an asset or check event (its event row, then the asset-index or check-execution rows it updates)
  is one transaction: one commit instead of two or three, and never an event without those rows.
  A gate's evaluations share one transaction (`batches.evaluations_together`), committed before any
  other event; no NOTIFY per event (Dagster keeps it only for older watchers; its own watchers poll).

Both also remember which tables exist (`known_tables.RemembersTables`): Dagster looks one up in
the catalog before every check evaluation and tagged materialization. And both turn on Dagster's
event batching (`batches`), so a range step's materializations are written as one batch.
"""
