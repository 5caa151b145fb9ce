"""Dagster's alembic migration scripts, read once per test process instead of at every new database.

Each new Dagster SQLite database (a fresh instance's run, event-log and schedule storages, each run's event-log
shard, an ephemeral instance) is stamped with alembic, whose `ScriptDirectory.from_config` reads and executes every
migration script of Dagster's again: about half of a fresh instance's 0.4 s here, and ~40% of Dagster's storage
suite's session (a fresh instance for each of its tests). The scripts do not change while tests run, so each script
location's directory is read once per process; what is stamped, and every storage call, stay as they are. Only
the test processes do this (this session and the storage suite's): servers, daemons and run workers they start
run unchanged.
"""

from __future__ import annotations


def read_migrations_once() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    read: dict[str, ScriptDirectory] = {}
    from_config = ScriptDirectory.from_config

    def once(config: Config) -> ScriptDirectory:
        location = str(config.get_alembic_option("script_location"))
        if location not in read:
            read[location] = from_config(config)
        return read[location]

    ScriptDirectory.from_config = once  # type: ignore[method-assign]
