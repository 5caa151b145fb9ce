"""Dagster's own event-log storage suite (`TestEventLogStorage`) over the platform's storages and Dagster's stock ones.

Not a test module of the project's session (its name does not start with `test_`):
ml_platform_tests/integration/test_dagster_storage_suite.py runs it in a pytest session of its own, with
the suite extracted from the pinned Dagster sdist on PYTHONPATH, and reads the JUnit XML it writes.
ML_PLATFORM_SUITE_STORAGE picks the classes (`sqlite` or `postgres`); ML_PLATFORM_SUITE_POSTGRES_URL is
the fresh database the Postgres classes use.

The fixtures are Dagster's own, with only the event log's class changed: the SQLite ones are those of
`TestSqliteEventLogStorage` (dagster_tests/storage_tests/test_event_log.py, dagster 1.13.27), the Postgres
ones those of `TestPostgresEventLogStorage` (dagster_postgres_tests/test_event_log.py, dagster-postgres
0.29.27) with our server instead of a docker container. The platform's storages are configured as shipped
(dagster.yaml, deploy/dagster-postgres.yaml). The stock classes run the same suite with the same fixtures:
they say where Dagster itself skips a test.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

pytest.register_assert_rewrite("dagster_tests.storage_tests.utils.event_log_storage")

import dagster as dg  # noqa: E402
from dagster_tests.storage_tests.utils.event_log_storage import TestEventLogStorage  # noqa: E402

from ml_platform_tests.support.migrations import read_migrations_once  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
STORAGE = os.environ["ML_PLATFORM_SUITE_STORAGE"]


read_migrations_once()  # before Dagster's fixtures create their instances


def shipped_storage(instance_yaml: str, section: str) -> dict[str, Any]:
    """The `module` and `class` of a storage section as the repository ships it."""
    shipped = yaml.safe_load((REPO / instance_yaml).read_text())[section]
    return {"module": shipped["module"], "class": shipped["class"]}


class SqliteFixtures(TestEventLogStorage):
    """`TestSqliteEventLogStorage`'s fixtures and declarations; `overrides` says which event log."""

    overrides: ClassVar[dict[str, Any]] = {}
    storage_class: type = object

    @pytest.fixture(name="instance", scope="function")
    def instance(self) -> Iterator[dg.DagsterInstance]:
        with (
            tempfile.TemporaryDirectory(dir=os.getcwd()) as tmpdir_path,
            dg.instance_for_test(temp_dir=tmpdir_path, overrides=self.overrides) as instance,
        ):
            yield instance

    @pytest.fixture(scope="function", name="storage")
    def event_log_storage(self, instance: dg.DagsterInstance) -> Iterator[Any]:
        assert type(instance.event_log_storage) is self.storage_class
        yield instance.event_log_storage

    def supports_multiple_event_type_queries(self) -> bool:
        return False

    def can_wipe_asset_partitions(self) -> bool:
        return False


class PostgresFixtures(TestEventLogStorage):
    """`TestPostgresEventLogStorage`'s fixtures and declarations; `overrides(url)` says which event log."""

    storage_class: type = object

    def overrides(self, conn_string: str) -> dict[str, Any]:
        raise NotImplementedError

    @pytest.fixture(name="conn_string", scope="session")
    def conn_string(self) -> str:
        return os.environ["ML_PLATFORM_SUITE_POSTGRES_URL"]

    @pytest.fixture(name="instance", scope="function")
    def instance(self, conn_string: str) -> Iterator[dg.DagsterInstance]:
        from dagster_postgres.event_log import PostgresEventLogStorage

        PostgresEventLogStorage.create_clean_storage(conn_string)
        with dg.instance_for_test(overrides=self.overrides(conn_string)) as instance:
            yield instance

    @pytest.fixture(scope="function", name="storage")
    def event_log_storage(self, instance: dg.DagsterInstance) -> Iterator[Any]:
        assert type(instance.event_log_storage) is self.storage_class
        yield instance.event_log_storage

    def can_wipe_asset_partitions(self) -> bool:
        return False


if STORAGE == "sqlite":
    from ml_platform.dagster_internals import SqliteEventLogStorage
    from ml_platform.storage.sqlite import PooledSqliteEventLogStorage

    class TestPlatformSqlite(SqliteFixtures):
        __test__ = True
        overrides: ClassVar[dict[str, Any]] = {
            "event_log_storage": yaml.safe_load((REPO / "dagster.yaml").read_text())["event_log_storage"]
        }
        storage_class = PooledSqliteEventLogStorage

    class TestStockSqlite(SqliteFixtures):
        __test__ = True
        storage_class = SqliteEventLogStorage

elif STORAGE == "postgres":
    from dagster_postgres.event_log import PostgresEventLogStorage

    from ml_platform.storage.postgres import PooledPostgresEventLogStorage

    class TestPlatformPostgres(PostgresFixtures):
        __test__ = True
        storage_class = PooledPostgresEventLogStorage

        def overrides(self, conn_string: str) -> dict[str, Any]:
            """deploy/dagster-postgres.yaml's three storages, on the test database."""
            return {
                section: {
                    **shipped_storage("deploy/dagster-postgres.yaml", section),
                    "config": {"postgres_url": conn_string},
                }
                for section in ("run_storage", "event_log_storage", "schedule_storage")
            }

    class TestStockPostgres(PostgresFixtures):
        __test__ = True
        storage_class = PostgresEventLogStorage

        def overrides(self, conn_string: str) -> dict[str, Any]:
            return {"storage": {"postgres": {"postgres_url": conn_string}}}

else:
    raise ValueError(f"ML_PLATFORM_SUITE_STORAGE: expected sqlite or postgres, got {STORAGE!r}")
