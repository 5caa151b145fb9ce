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
  an event (its event row, then the asset-index or check-execution rows it updates) is one short
  transaction: one commit instead of two or three, and never an event without those rows. Each
  takes a transaction-level advisory lock before it inserts and holds it until it commits, so event
  ids (taken at insert) become visible in the order they were taken: a reader following a run's log
  by id (the UI's live run log, `after_cursor` readers) never moves past an event still uncommitted.
  The cost: event writes of every process writing through it are serialized, one commit at a time.
  A run's check evaluations are held in memory by the storage and written together in one transaction
  (a multi-row insert) by the run's next other event (the step's output, failure or end) or before the
  storage's next read, so a gate only yields them; a batch over
  several assets indexes each; no NOTIFY per event (Dagster keeps it only for older watchers; its own
  watchers poll). The webserver's engine (`optimize_for_webserver`) replaces the kept one, closed.

Both also remember which tables exist (`known_tables.RemembersTables`): Dagster looks one up in
the catalog before every check evaluation and tagged materialization. And both turn on Dagster's
event batching (`batches`), so a range step's materializations are written as one batch.
"""
