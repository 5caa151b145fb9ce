"""The production instance configuration: Postgres from environment variables, same queue as local.

`deploy/dagster-postgres.yaml` must say exactly what the repo's dagster.yaml says about the run
queue, run monitoring, run retries and telemetry (only the storages differ), must hold no
credentials, and `dagster instance migrate` must create and upgrade its schema on a real
Postgres: a fresh database per test session on 127.0.0.1:5432 (ml_platform_tests/support/postgres.py),
dropped afterwards; skipped locally when Postgres is unreachable, failed when CI=true.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml
from dagster_postgres import PostgresRunStorage, PostgresScheduleStorage

from ml_platform.storage.postgres import PooledPostgresEventLogStorage
from ml_platform_tests.support import postgres
from ml_platform_tests.support.instance_config import POSTGRES_ENV, SHARED_SECTIONS, load_instance_config, shared_sections

REPO_ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_YAML = REPO_ROOT / "deploy" / "dagster-postgres.yaml"
DAGSTER = REPO_ROOT / ".venv" / "bin" / "dagster"
# Tables dagster-postgres creates for run, event log and schedule storage.
STORAGES = ("run_storage", "event_log_storage", "schedule_storage")
EXPECTED_TABLES = {
    "runs", "run_tags", "bulk_actions", "event_logs", "asset_keys", "asset_event_tags",
    "asset_check_executions", "concurrency_limits", "concurrency_slots", "jobs", "job_ticks",
    "instigators", "alembic_version", "secondary_indexes",
}


def test_production_config_shares_every_non_storage_section_with_the_local_one() -> None:
    local = load_instance_config(REPO_ROOT / "dagster.yaml")
    production = load_instance_config(PRODUCTION_YAML)
    assert shared_sections(production) == shared_sections(local)
    assert set(production) - set(SHARED_SECTIONS) == set(STORAGES)
    # the embedded default: SQLite under $DAGSTER_HOME, the event log the platform's pooled one
    assert set(local) - set(SHARED_SECTIONS) == {"event_log_storage"}
    assert local["event_log_storage"]["class"] == production["event_log_storage"]["class"].replace("Postgres", "Sqlite")


def test_production_config_takes_every_credential_from_the_environment() -> None:
    production = load_instance_config(PRODUCTION_YAML)
    postgres_db = production["run_storage"]["config"]["postgres_db"]
    assert all(production[name]["config"] == {"postgres_db": postgres_db} for name in STORAGES)
    from_env = {field: value["env"] for field, value in postgres_db.items() if isinstance(value, dict) and "env" in value}
    assert set(from_env.values()) == set(POSTGRES_ENV)
    assert set(postgres_db) - set(from_env) == {"scheme"}
    assert postgres_db["scheme"] == "postgresql+psycopg2"  # SQLAlchemy 2.1 would otherwise pick psycopg 3


def pg_env(url: sa.URL) -> dict[str, str]:
    return {
        "DAGSTER_PG_HOST": url.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(url.port or 5432),
        "DAGSTER_PG_DB": url.database or "",
        "DAGSTER_PG_USERNAME": url.username or "postgres",
        "DAGSTER_PG_PASSWORD": url.password or "",
    }


def dagster_cli(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    scrubbed = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PG_") and k != "DAGSTER_HOME"}
    return subprocess.run(
        [str(DAGSTER), *args], env={**scrubbed, **env, "DAGSTER_HOME": str(home)},
        capture_output=True, text=True, timeout=120, cwd=home,
    )


@pytest.fixture
def production_home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(PRODUCTION_YAML.read_text())
    return home


def test_dagster_instance_migrate_creates_the_schema_on_a_fresh_postgres_database(
    production_home: Path, postgres_database: Callable[[], sa.URL]
) -> None:
    url = postgres_database()
    env = pg_env(url)

    migrated = dagster_cli(production_home, env, "instance", "migrate")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    again = dagster_cli(production_home, env, "instance", "migrate")  # idempotent, as an upgrade job must be
    assert again.returncode == 0, again.stdout + again.stderr

    engine = sa.create_engine(postgres.url_text(url), poolclass=sa.pool.NullPool)
    tables = set(sa.inspect(engine).get_table_names())
    engine.dispose()
    assert EXPECTED_TABLES <= tables, sorted(EXPECTED_TABLES - tables)

    # The same file, loaded in-process with the same variables, is a working Postgres instance.
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        instance = dg.DagsterInstance.from_config(str(production_home))
    try:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PooledPostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_monitoring_enabled and instance.run_retries_enabled

        @dg.asset
        def smoke() -> int:
            return 1

        result = dg.materialize([smoke], instance=instance)
        assert result.success
        assert instance.get_latest_materialization_event(dg.AssetKey("smoke")) is not None
    finally:
        instance.dispose()
    engine = sa.create_engine(postgres.url_text(url), poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        stored = connection.execute(sa.text("SELECT run_id, status FROM runs")).all()
    engine.dispose()
    assert [(row.run_id, row.status) for row in stored] == [(result.run_id, "SUCCESS")]


def test_a_missing_credential_variable_fails_loudly_naming_it(production_home: Path) -> None:
    env = pg_env(sa.make_url("postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"))
    env.pop("DAGSTER_PG_PASSWORD")  # fails while reading the config, before any connection
    result = dagster_cli(production_home, env, "instance", "migrate")
    assert result.returncode != 0
    assert "DAGSTER_PG_PASSWORD" in result.stdout + result.stderr


def test_the_queue_section_is_valid_instance_config(tmp_path: Path) -> None:
    """The shared sections alone load as an instance (no Postgres needed): Dagster accepts every key."""
    home = tmp_path / "home"
    home.mkdir()
    sections = shared_sections(load_instance_config(PRODUCTION_YAML))
    (home / "dagster.yaml").write_text(yaml.safe_dump(sections))
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        queue = instance.run_coordinator.get_run_queue_config()
        assert queue.max_concurrent_runs == sections["run_coordinator"]["config"]["max_concurrent_runs"]
        assert [(limit["key"], limit["value"], limit["limit"]) for limit in queue.tag_concurrency_limits] == [
            (limit["key"], limit["value"], limit["limit"])
            for limit in sections["run_coordinator"]["config"]["tag_concurrency_limits"]
        ]
        assert instance.run_retries_max_retries == sections["run_retries"]["max_retries"]
        assert instance.run_retries_retry_on_asset_or_op_failure == sections["run_retries"]["retry_on_asset_or_op_failure"]
        assert instance.run_monitoring_poll_interval_seconds == sections["run_monitoring"]["poll_interval_seconds"]
    finally:
        instance.dispose()
