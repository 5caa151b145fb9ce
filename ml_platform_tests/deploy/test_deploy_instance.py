"""The production instance configuration: Postgres from environment variables, same queue as local.

`deploy/dagster-postgres.yaml` must say exactly what the repo's dagster.yaml says about the run
queue, run and pool limits, run monitoring, run retries and telemetry (only the storages differ), must hold no
credentials, and `dagster instance migrate` must create and upgrade its schema on a real
Postgres: a fresh database per test session on 127.0.0.1:5432 (ml_platform_tests/support/postgres.py),
dropped afterwards; skipped locally when Postgres is unreachable, failed when CI=true.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml
from dagster_postgres import PostgresRunStorage, PostgresScheduleStorage

from ml_platform.k8s.placement import GPU_POOL
from ml_platform.storage.postgres import PooledPostgresEventLogStorage
from ml_platform_tests.support import postgres
from ml_platform_tests.support.instance_config import (
    POSTGRES_ENV,
    SHARED_SECTIONS,
    load_instance_config,
    max_concurrent_runs,
    postgres_env,
    shared_sections,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_YAML = REPO_ROOT / "deploy" / "dagster-postgres.yaml"
DAGSTER = REPO_ROOT / ".venv" / "bin" / "dagster"
# Tables dagster-postgres creates for run, event log and schedule storage.
STORAGES = ("run_storage", "event_log_storage", "schedule_storage")
EXPECTED_TABLES = {
    "runs",
    "run_tags",
    "bulk_actions",
    "event_logs",
    "asset_keys",
    "asset_event_tags",
    "asset_check_executions",
    "concurrency_limits",
    "concurrency_slots",
    "jobs",
    "job_ticks",
    "instigators",
    "alembic_version",
    "secondary_indexes",
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
    from_env = {
        field: value["env"] for field, value in postgres_db.items() if isinstance(value, dict) and "env" in value
    }
    assert set(from_env.values()) == set(POSTGRES_ENV)
    assert set(postgres_db) - set(from_env) == {"scheme"}
    assert postgres_db["scheme"] == "postgresql+psycopg2"  # SQLAlchemy 2.1 would otherwise pick psycopg 3


def dagster_cli(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    scrubbed = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PG_") and k != "DAGSTER_HOME"}
    return subprocess.run(
        [str(DAGSTER), *args],
        env={**scrubbed, **env, "DAGSTER_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=home,
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
    env = postgres_env(url)

    migrated = dagster_cli(production_home, env, "instance", "migrate")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    again = dagster_cli(production_home, env, "instance", "migrate")  # idempotent, as an upgrade job must be
    assert again.returncode == 0, again.stdout + again.stderr

    engine = sa.create_engine(postgres.url_text(url), poolclass=sa.pool.NullPool)
    tables = set(sa.inspect(engine).get_table_names())
    engine.dispose()
    assert tables >= EXPECTED_TABLES, sorted(EXPECTED_TABLES - tables)

    # The same file, loaded in-process with the same variables, is a working Postgres instance.
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        instance = dg.DagsterInstance.from_config(str(production_home))
    try:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PooledPostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert type(instance.run_coordinator).__name__ == "BackfillLaneRunCoordinator"  # a QueuedRunCoordinator
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
    env = postgres_env(sa.make_url("postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"))
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
        concurrency = instance.get_concurrency_config()
        queue = concurrency.run_queue_config
        assert queue is not None and queue.max_concurrent_runs == max_concurrent_runs(sections)
        assert [(limit["key"], limit["value"], limit["limit"]) for limit in queue.tag_concurrency_limits] == [
            (limit["key"], limit["value"], limit["limit"])
            for limit in sections["concurrency"]["runs"]["tag_concurrency_limits"]
        ]
        pools = concurrency.pool_config
        assert (
            pools.pool_granularity is not None
            and pools.pool_granularity.value == sections["concurrency"]["pools"]["granularity"]
        )
        assert pools.default_pool_limit == sections["concurrency"]["pools"]["default_limit"]
        assert instance.run_retries_max_retries == sections["run_retries"]["max_retries"]
        assert (
            instance.run_retries_retry_on_asset_or_op_failure == sections["run_retries"]["retry_on_asset_or_op_failure"]
        )
        assert instance.run_monitoring_poll_interval_seconds == sections["run_monitoring"]["poll_interval_seconds"]
    finally:
        instance.dispose()


# One run of an asset in the `gpu` pool, as a run worker process does it; prints its step's wall-clock span.
GPU_RUN = """
import json, sys, time
import dagster as dg

@dg.asset(pool=sys.argv[1])
def gpu_step() -> None:
    start = time.time()
    time.sleep(3)  # longer than the two workers' start-up skew: unbounded, they would overlap
    print(json.dumps([start, time.time()]))

with dg.DagsterInstance.get() as instance:
    assert dg.materialize([gpu_step], instance=instance).success
"""


def test_the_gpu_pool_runs_one_step_at_a_time_across_runs_with_no_manual_setting(
    production_home: Path, postgres_database: Callable[[], sa.URL]
) -> None:
    """The shipped config alone bounds the `gpu` pool: two runs' GPU steps (two processes) never overlap,
    and the instance reports the pool's limit as the config's default, with nobody having set it."""
    limit = load_instance_config(PRODUCTION_YAML)["concurrency"]["pools"]["default_limit"]
    assert limit == 1, "this test proves a limit of one"
    env = postgres_env(postgres_database())
    scrubbed = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PG_")}
    runs = [
        subprocess.Popen(
            [str(REPO_ROOT / ".venv" / "bin" / "python"), "-c", GPU_RUN, GPU_POOL],
            env={**scrubbed, **env, "DAGSTER_HOME": str(production_home)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=production_home,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=180) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err[-3000:] for _, err in outputs]
    first, second = sorted(json.loads(out.strip().splitlines()[-1]) for out, _ in outputs)
    assert second[0] >= first[1], f"GPU steps overlapped: {first} {second}"

    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        instance = dg.DagsterInstance.from_config(str(production_home))
    try:
        info = instance.event_log_storage.get_concurrency_info(GPU_POOL)
    finally:
        instance.dispose()
    assert (info.slot_count, info.using_default_limit) == (limit, True)
    assert not info.claimed_slots and not info.pending_steps, "every slot freed"
