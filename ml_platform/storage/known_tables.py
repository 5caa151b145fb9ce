"""Remembering which event-log tables exist, instead of asking the database before every write."""

from __future__ import annotations


class RemembersTables:
    """Mixin for a Dagster SQL event log: a table seen once is not looked up again.

    Dagster's event logs ask whether `asset_check_executions` exists before storing every check
    evaluation, and `asset_event_tags` before every tagged materialization: a catalog query each
    (on SQLite also a new engine and connection), ~0.5 ms of a ~3 ms evaluation on Postgres.
    Tables are only ever added (by `dagster instance migrate`; a wipe deletes rows), so a table
    that exists is remembered for the process's life; one that does not is asked about again.
    """

    def has_table(self, table_name: str) -> bool:
        seen: set[str] = self.__dict__.setdefault("_tables_seen", set())
        if table_name not in seen and super().has_table(table_name):  # type: ignore[misc]
            seen.add(table_name)
        return table_name in seen
