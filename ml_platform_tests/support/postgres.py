"""Postgres for the tests: probe the server, one fresh database per session, a schema per test.

Tests that need Postgres skip with the reason when the server is unreachable on a
developer machine, and fail when CI=true, where a silently skipped database test
would hide a broken Postgres path. The fixtures (postgres_url, postgres_schema,
postgres_database) are registered for every tier by ml_platform_tests/conftest.py.

The server is ML_PLATFORM_TEST_POSTGRES_URL (a URL to a database the user may
CREATE DATABASE from), default the local trust-auth server on 127.0.0.1:5432.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
import sqlalchemy as sa
import yaml

ADMIN_URL_ENV = "ML_PLATFORM_TEST_POSTGRES_URL"
DEFAULT_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
CONNECT_TIMEOUT_S = 3
PRODUCTION_INSTANCE_YAML = Path(__file__).resolve().parents[2] / "deploy" / "dagster-postgres.yaml"


def admin_url() -> sa.URL:
    url = sa.make_url(os.environ.get(ADMIN_URL_ENV, DEFAULT_ADMIN_URL))
    if url.drivername == "postgresql" and importlib.util.find_spec("psycopg") is None:
        url = url.set(drivername="postgresql+psycopg2")  # SQLAlchemy 2.1 would pick psycopg 3
    return url


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip locally; fail under CI=true, where the Postgres tests must run."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: Postgres tests may not be skipped)", pytrace=False)
    pytest.skip(reason)


def url_text(url: sa.URL) -> str:
    return url.render_as_string(hide_password=False)


def admin_engine(url: sa.URL) -> sa.Engine:
    """An autocommit engine (CREATE/DROP DATABASE cannot run in a transaction) that never pools."""
    return sa.create_engine(
        url,
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
    )


def probe(url: sa.URL) -> str | None:
    """None when the server answers, else why not."""
    try:
        with admin_engine(url).connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except Exception as error:  # any driver or network error means: no usable server
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return f"Postgres unreachable at {url.render_as_string(hide_password=True)}: {first_line}"
    return None


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def create_database(admin: sa.URL, name: str) -> sa.URL:
    with admin_engine(admin).connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return admin.set(database=name)


def drop_database(admin: sa.URL, name: str) -> None:
    """Drop a test database, ending any session still attached (cached pools, Dagster storage)."""
    from ml_platform.resources.sources import dispose_engines

    dispose_engines()
    with admin_engine(admin).connect() as connection:
        connection.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name AND pid <> "
                "pg_backend_pid()"
            ),
            {"name": name},
        )
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))


@contextlib.contextmanager
def scratch_database(prefix: str) -> Iterator[sa.URL]:
    """A fresh database on the test server for the block's duration (the benchmarks), dropped afterwards;
    SystemExit saying why when the server cannot be used."""
    admin = admin_url()
    problem = probe(admin)
    if problem:
        raise SystemExit(f"Postgres: {problem}")
    name = unique_name(prefix)
    url = create_database(admin, name)
    try:
        yield url
    finally:
        drop_database(admin, name)


def postgres_instance_storage(url: sa.URL, durable_commits: bool = False) -> dict[str, Any]:
    """deploy/dagster-postgres.yaml's run, event-log and schedule storages, on `url`'s database.

    Dagster commits every event on its own; for a throwaway test database the sessions skip waiting
    for the WAL flush (synchronous_commit=off: a server crash may lose the last commits, nothing else),
    which halves the runtime of a full graph.
    """
    postgres_db = {
        "hostname": url.host or "127.0.0.1",
        "port": url.port or 5432,
        "username": url.username or "postgres",
        "password": url.password or "",
        "db_name": url.database,
        "params": {} if durable_commits else {"options": "-c synchronous_commit=off"},
        # SQLAlchemy 2.1 reads a bare "postgresql" scheme as psycopg 3; the platform ships psycopg2.
        "scheme": url.drivername,
    }
    production = yaml.safe_load(PRODUCTION_INSTANCE_YAML.read_text())
    return {
        name: {**production[name], "config": {"postgres_db": postgres_db}}
        for name in ("run_storage", "event_log_storage", "schedule_storage")
    }


@pytest.fixture(scope="session")
def postgres_admin_url() -> sa.URL:
    url = admin_url()
    problem = probe(url)
    if problem:
        unavailable(problem)
    return url


@pytest.fixture(scope="session")
def postgres_database(postgres_admin_url: sa.URL) -> Iterator[Callable[[], sa.URL]]:
    """Factory of fresh databases `ml_platform_test_<random>`; every one is dropped when the session ends."""
    created: list[str] = []

    def create() -> sa.URL:
        name = unique_name("ml_platform_test")
        try:
            url = create_database(postgres_admin_url, name)
        except Exception as error:
            unavailable(f"cannot create a test database on {postgres_admin_url.host}: {error}")
        created.append(name)
        return url

    yield create
    for name in reversed(created):
        drop_database(postgres_admin_url, name)


@pytest.fixture(scope="session")
def postgres_url(postgres_database: Callable[[], sa.URL]) -> str:
    """SQLAlchemy URL (text) of this session's fresh database."""
    return url_text(postgres_database())


@pytest.fixture
def postgres_schema(postgres_url: str) -> Iterator[str]:
    """A schema of its own for one test, dropped with everything in it afterwards."""
    name = unique_name("t")
    engine = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    yield name
    with engine.begin() as connection:
        connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    engine.dispose()
