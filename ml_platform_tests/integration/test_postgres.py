"""Postgres end to end: the Postgres event source and a Dagster instance on dagster-postgres.

Every test here needs a Postgres server (see `support/postgres.py`): it skips with the
reason when none is reachable locally and fails when CI=true. The session gets
fresh databases `ml_platform_test_<random>`, each test its own schema, so
concurrent runs never collide; all of it is dropped afterwards.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

from demo.generators.churn import generate_churn_events, write_landing_files
from ml_platform.assets import keys
from ml_platform.checks.rules import validate_events
from ml_platform.definitions import build_definitions
from ml_platform.factory import build_use_case
from ml_platform.io.parquet_lake import DataLake
from ml_platform.resources import default_resources
from ml_platform.resources.sources import EventSource, SourceError
from ml_platform.runner import DAILY_STAGES, TRAINING_STAGES, materialize_stages
from ml_platform.settings import Settings
from ml_platform.spec import UseCaseSpec
from ml_platform_tests.support import postgres
from ml_platform_tests.support.automation import evaluate, requested_ranges
from ml_platform_tests.support.fixtures import START, day_keys, landing_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCE_DAYS = 4
SOURCE_EVENTS_PER_DAY = 300


# --- helpers -----------------------------------------------------------------------------------


def postgres_spec(spec: UseCaseSpec, table: str, **source_options: str) -> UseCaseSpec:
    """The churn spec reading its events from a Postgres table instead of landed files."""
    source = {"kind": "postgres", "table": table, **source_options}
    return UseCaseSpec.model_validate({**spec.model_dump(), "source": source})


def postgres_definitions(spec: UseCaseSpec, dsn: str, monkeypatch: pytest.MonkeyPatch) -> dg.Definitions:
    """The use case's definitions as the code location builds them: its source resource reads the URL
    through dg.EnvVar(spec.source.dsn_env), so that variable holds it."""
    monkeypatch.setenv(spec.source.dsn_env, dsn)
    resources = default_resources()
    return dg.Definitions.merge(
        build_use_case(spec, Settings.from_env()), dg.Definitions(resources=resources, executor=dg.in_process_executor)
    )


def churn_frames(
    days: int = SOURCE_DAYS, events_per_day: int = SOURCE_EVENTS_PER_DAY, seed: int = 11
) -> dict[str, pd.DataFrame]:
    return {day.isoformat(): frame for day, frame in generate_churn_events(START, days, events_per_day, seed)}


def load_table(dsn: str, table: str, frames: dict[str, pd.DataFrame]) -> None:
    schema, name = table.split(".")
    engine = sa.create_engine(dsn, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        for frame in frames.values():
            frame.to_sql(name, connection, schema=schema, if_exists="append", index=False)


def query(dsn: str, sql: str, **params: object) -> list[sa.Row]:
    engine = sa.create_engine(dsn, poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        return list(connection.execute(sa.text(sql), params))


def table_snapshot(dsn: str, table: str) -> list[tuple]:
    return [
        tuple(row)
        for row in query(dsn, f"SELECT event_id, customer_id, event_time, amount FROM {table} ORDER BY 1, 2, 3")
    ]


def lake_ids(spec: UseCaseSpec, day: str) -> list[str]:
    lake = DataLake(base_path=Settings.from_env().lake_path)
    return sorted(pd.read_parquet(lake.partition_path(keys.raw_events(spec), day))[spec.event_id_column])


def check_evaluations(result: dg.ExecuteInProcessResult, asset_key: dg.AssetKey) -> list:
    return [e for e in result.get_asset_check_evaluations() if e.asset_key == asset_key]


def test_an_unreachable_server_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    closed = sa.make_url("postgresql+psycopg2://postgres@127.0.0.1:1/postgres")
    reason = postgres.probe(closed)
    assert reason is not None and "127.0.0.1:1" in reason
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="unreachable"):
        postgres.unavailable(reason)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        postgres.unavailable(reason)


# --- the Postgres event source -----------------------------------------------------------------


def test_postgres_source_lands_each_table_day_in_the_lake(
    data_dir: Path, churn_spec: UseCaseSpec, postgres_url: str, postgres_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = f"{postgres_schema}.churn_events"
    frames = churn_frames()
    load_table(postgres_url, table, frames)
    spec = postgres_spec(churn_spec, table)
    days = sorted(frames)

    source = EventSource(data_dir=str(data_dir), postgres_dsn=postgres_url)
    assert source.source_for(spec).versions() == {day: str(len(frame)) for day, frame in frames.items()}

    instance = dg.DagsterInstance.ephemeral()
    result = materialize_stages(
        postgres_definitions(spec, postgres_url, monkeypatch), spec, DAILY_STAGES[:2], instance, days
    )
    assert result.success

    for day in days:
        table_ids = sorted(
            row.event_id
            for row in query(
                postgres_url,
                f"SELECT event_id FROM {table} WHERE event_time >= :start AND event_time < :end",
                start=dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC),
                end=dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC) + dt.timedelta(days=1),
            )
        )
        assert lake_ids(spec, day) == table_ids == sorted(frames[day]["event_id"])

    raw = check_evaluations(result, keys.raw_events(spec))
    features = check_evaluations(result, keys.features(spec))
    assert len(raw) == 8 * len(days) and len(features) == 4 * len(days)
    assert all(evaluation.passed for evaluation in raw + features), [
        e.description for e in raw + features if not e.passed
    ]
    assert {e.partition for e in raw} == set(days)
    for key in (keys.raw_events(spec), keys.features(spec)):
        assert instance.get_materialized_partitions(key) == set(days)


def test_duplicate_ids_in_the_table_fail_that_partition_and_leave_the_table_untouched(
    data_dir: Path, churn_spec: UseCaseSpec, postgres_url: str, postgres_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = f"{postgres_schema}.churn_events"
    frames = churn_frames(days=3)
    bad_day = sorted(frames)[1]
    frames[bad_day] = pd.concat([frames[bad_day], frames[bad_day].head(2)], ignore_index=True)
    load_table(postgres_url, table, frames)
    spec = postgres_spec(churn_spec, table)
    days = sorted(frames)
    before = table_snapshot(postgres_url, table)

    instance = dg.DagsterInstance.ephemeral()
    result = materialize_stages(
        postgres_definitions(spec, postgres_url, monkeypatch), spec, DAILY_STAGES[:2], instance, days
    )

    assert not result.success
    unique = {
        e.partition: e for e in check_evaluations(result, keys.raw_events(spec)) if e.check_name == "unique_event_ids"
    }
    assert sorted(unique) == days
    failed = unique[bad_day]
    assert not failed.passed
    assert (
        bad_day in failed.description
        and "'event_id'" in failed.description
        and "2 duplicated id(s)" in failed.description
    )
    assert failed.metadata["column"].value == "event_id" and failed.metadata["partition"].value == bad_day
    assert all(unique[day].passed for day in days if day != bad_day)
    good = set(days) - {bad_day}
    assert instance.get_materialized_partitions(keys.raw_events(spec)) == good
    # the day before the bad one has its features; the bad day and the days whose window holds it have none
    assert instance.get_materialized_partitions(keys.features(spec)) == {days[0]}
    assert not Path(
        DataLake(base_path=Settings.from_env().lake_path).partition_path(keys.raw_events(spec), bad_day)
    ).exists()
    after = table_snapshot(postgres_url, table)
    assert len(after) == len(before) == sum(len(frame) for frame in frames.values())
    assert after == before


def test_missing_table_fails_the_landed_gate_naming_partition_and_table(
    data_dir: Path, churn_spec: UseCaseSpec, postgres_url: str, postgres_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = postgres_spec(churn_spec, f"{postgres_schema}.no_such_table")
    day = START.isoformat()
    with pytest.raises(SourceError, match="no_such_table"):
        EventSource(data_dir=str(data_dir), postgres_dsn=postgres_url).source_for(spec).versions()

    result = materialize_stages(
        postgres_definitions(spec, postgres_url, monkeypatch),
        spec,
        DAILY_STAGES[:1],
        dg.DagsterInstance.ephemeral(),
        [day],
    )
    assert not result.success
    (landed,) = [e for e in check_evaluations(result, keys.raw_events(spec)) if e.check_name == "landed"]
    assert not landed.passed and f"partition {day}" in landed.description and "no_such_table" in landed.description


def test_naive_utc_timestamps_split_into_utc_days_whatever_the_session_time_zone(
    churn_spec: UseCaseSpec, postgres_url: str, postgres_schema: str, tmp_path: Path
) -> None:
    """A `timestamp without time zone` column holding UTC, read by a server whose zone is not UTC."""
    table = f"{postgres_schema}.naive_events"
    frames = churn_frames(days=3, events_per_day=200)
    naive = {day: frame.assign(event_time=frame["event_time"].dt.tz_localize(None)) for day, frame in frames.items()}
    load_table(postgres_url, table, naive)
    assert (
        query(postgres_url, f"SELECT pg_typeof(event_time)::text AS type_name FROM {table} LIMIT 1")[0].type_name
        == "timestamp without time zone"
    )
    spec = postgres_spec(churn_spec, table)
    new_york = url_with_query(postgres_url, options="-c timezone=America/New_York")
    source = EventSource(data_dir=str(tmp_path), postgres_dsn=new_york)

    assert source.source_for(spec).versions() == {day: str(len(frame)) for day, frame in frames.items()}
    for day, frame in frames.items():
        read = source.read_day(spec, day)
        assert sorted(read["event_id"]) == sorted(frame["event_id"])
        assert all(outcome.passed for outcome in validate_events(read, spec, day)), validate_events(read, spec, day)


def test_a_day_with_an_all_null_float_column_passes_the_schema_gate(
    churn_spec: UseCaseSpec, postgres_url: str, postgres_schema: str, tmp_path: Path
) -> None:
    """No purchases that day, so `amount` is NULL in every row; the file path would keep float64."""
    table = f"{postgres_schema}.churn_events"
    frames = churn_frames(days=2, events_per_day=200)
    day = sorted(frames)[0]
    frames[day] = frames[day][frames[day]["event_type"] != "purchase"].reset_index(drop=True)
    assert frames[day]["amount"].isna().all()
    load_table(postgres_url, table, frames)
    spec = postgres_spec(churn_spec, table)

    read = EventSource(data_dir=str(tmp_path), postgres_dsn=postgres_url).read_day(spec, day)
    assert str(read["amount"].dtype) == "float64"
    assert all(outcome.passed for outcome in validate_events(read, spec, day)), validate_events(read, spec, day)


def test_the_engine_is_cached_per_dsn_and_reads_reuse_one_connection(
    churn_spec: UseCaseSpec, postgres_url: str, postgres_schema: str, tmp_path: Path
) -> None:
    table = f"{postgres_schema}.churn_events"
    frames = churn_frames(days=3, events_per_day=100)
    load_table(postgres_url, table, frames)
    spec = postgres_spec(churn_spec, table)
    application = postgres.unique_name("ml_platform_cache")
    dsn = url_with_query(postgres_url, application_name=application)

    first, second = (EventSource(data_dir=str(tmp_path), postgres_dsn=dsn) for _ in range(2))
    assert first.source_for(spec).engine() is second.source_for(spec).engine()
    for _ in range(3):
        assert len(first.source_for(spec).versions()) == len(frames)
        for day in frames:
            assert len(second.read_day(spec, day)) == len(frames[day])
    open_connections = query(
        postgres_url, "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE application_name = :name", name=application
    )[0].n
    assert open_connections == 1


def test_a_bare_postgresql_url_uses_the_installed_driver(
    churn_spec: UseCaseSpec, postgres_url: str, postgres_schema: str, tmp_path: Path
) -> None:
    """`postgresql://...` is what people write; SQLAlchemy 2.1 maps it to psycopg 3, which is not shipped."""
    table = f"{postgres_schema}.churn_events"
    frames = churn_frames(days=1, events_per_day=100)
    load_table(postgres_url, table, frames)
    bare = postgres.url_text(sa.make_url(postgres_url).set(drivername="postgresql"))
    assert bare.startswith("postgresql://")
    source = EventSource(data_dir=str(tmp_path), postgres_dsn=bare)
    assert source.source_for(postgres_spec(churn_spec, table)).versions() == {
        day: str(len(f)) for day, f in frames.items()
    }


def url_with_query(dsn: str, **params: str) -> str:
    return postgres.url_text(sa.make_url(dsn).update_query_dict(params))


# --- a Dagster instance on dagster-postgres ----------------------------------------------------


@pytest.fixture
def postgres_instance(postgres_database, tmp_path: Path) -> Iterator[tuple[dg.DagsterInstance, str]]:
    """The shipped dagster.yaml with its storage moved to a fresh Postgres database."""
    url = postgres_database()
    config = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    config.update(postgres.postgres_instance_storage(url))
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        yield instance, postgres.url_text(url)
    finally:
        instance.dispose()


def test_the_churn_graph_runs_on_a_postgres_dagster_instance(
    data_dir: Path, churn_spec: UseCaseSpec, postgres_instance: tuple[dg.DagsterInstance, str]
) -> None:
    instance, dagster_db = postgres_instance
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    days = day_keys(count=60)
    write_landing_files(landing_dir(data_dir), START, len(days), 1_500, seed=3)
    defs = build_definitions([churn_spec])

    results = {
        "daily": materialize_stages(defs, churn_spec, DAILY_STAGES[:2], instance, days),
        "training": materialize_stages(defs, churn_spec, TRAINING_STAGES, instance),
        "predictions": materialize_stages(defs, churn_spec, DAILY_STAGES[2:], instance, days),
    }
    assert all(result.success for result in results.values())

    # What the instance API reads back comes from Postgres.
    for key in (keys.raw_events(churn_spec), keys.features(churn_spec), keys.predictions(churn_spec)):
        assert instance.get_materialized_partitions(key) == set(days)
    for key in (keys.training_set(churn_spec), keys.model(churn_spec), keys.champion(churn_spec)):
        assert instance.get_latest_materialization_event(key) is not None

    # And the rows are really there, in the tables dagster-postgres created.
    runs = {row.run_id: row.status for row in query(dagster_db, "SELECT run_id, status FROM runs")}
    assert runs == {result.run_id: "SUCCESS" for result in results.values()}
    materialized = {
        (row.asset_key, row.partition)
        for row in query(
            dagster_db,
            "SELECT DISTINCT asset_key, partition FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'",
        )
    }
    for key in (keys.raw_events(churn_spec), keys.features(churn_spec), keys.predictions(churn_spec)):
        assert {partition for asset_key, partition in materialized if asset_key == key.to_string()} == set(days)

    # Check evaluations: one execution per check and partition, all passed (the gate held every day).
    executions = query(
        dagster_db, "SELECT asset_key, check_name, partition, run_id, execution_status FROM asset_check_executions"
    )
    assert {row.execution_status for row in executions} == {"SUCCEEDED"}
    assert {row.run_id for row in executions} == set(runs)
    expected_checks = {keys.raw_events(churn_spec): 8, keys.features(churn_spec): 4, keys.predictions(churn_spec): 1}
    for key, per_day in expected_checks.items():
        stored = [row for row in executions if row.asset_key == key.to_string()]
        assert len(stored) == len({(row.check_name, row.partition) for row in stored}) == per_day * len(days), key
        assert {row.partition for row in stored} == set(days)
    assert {row.check_name for row in executions if row.asset_key == keys.model(churn_spec).to_string()} == {
        "meets_thresholds",
        "significantly_better_than_champion",
    }
    evaluations = query(dagster_db, "SELECT event FROM event_logs WHERE dagster_event_type = 'ASSET_CHECK_EVALUATION'")
    assert len(evaluations) == len(executions) == sum(expected_checks.values()) * len(days) + 2
    assert all(_evaluation_passed(row.event) for row in evaluations)


def _evaluation_passed(serialized_event: str) -> bool:
    event = dg.deserialize_value(serialized_event, dg.EventLogEntry)
    return event.dagster_event.event_specific_data.passed


def test_landed_data_sensor_follows_new_rows_of_a_postgres_table(
    data_dir: Path, churn_spec: UseCaseSpec, postgres_url: str, postgres_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table's per-day row count is the sensor's cursor: appended rows rerun their days (and the later
    processed days whose feature windows contain them)."""
    table = f"{postgres_schema}.sensor_events"
    frames = churn_frames(days=4, events_per_day=100)
    days = sorted(frames)
    load_table(postgres_url, table, {day: frames[day] for day in days[:3]})
    defs = postgres_definitions(postgres_spec(churn_spec, table), postgres_url, monkeypatch)
    instance = dg.DagsterInstance.ephemeral()

    first = evaluate(defs, "churn_landed_data_sensor", instance, None)
    assert requested_ranges(first.run_requests) == [(days[0], days[2])]
    assert evaluate(defs, "churn_landed_data_sensor", instance, first.cursor).run_requests == []

    late = frames[days[1]].head(7).assign(event_id=lambda f: f["event_id"] + "-late")
    load_table(postgres_url, table, {days[1]: late, days[3]: frames[days[3]]})
    after = evaluate(defs, "churn_landed_data_sensor", instance, first.cursor)
    # the late rows' day, the processed day whose feature window contains it, and the new day: one range run
    [request] = after.run_requests
    assert requested_ranges([request]) == [(days[1], days[3])]
    versions = [
        (digest(len(frames[days[1]]) + 7), digest(len(frames[days[1]]))),
        (digest(len(frames[days[2]])), digest(len(frames[days[2]]))),
        (digest(len(frames[days[3]])), ""),
    ]  # a new day replaces nothing
    content = hashlib.sha256(",".join(f"{new}~{old}" for new, old in versions).encode()).hexdigest()
    assert request.run_key == f"{days[1]}..{days[3]}@{content[:16]}"


def test_an_updated_at_column_makes_corrected_rows_rerun_their_day(
    data_dir: Path, churn_spec: UseCaseSpec, postgres_url: str, postgres_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = f"{postgres_schema}.updated_events"
    frames = {
        day: frame.assign(updated_at=pd.Timestamp("2025-02-01", tz="UTC"))
        for day, frame in churn_frames(days=2, events_per_day=100).items()
    }
    days = sorted(frames)
    load_table(postgres_url, table, frames)
    defs = postgres_definitions(
        postgres_spec(churn_spec, table, updated_at_column="updated_at"), postgres_url, monkeypatch
    )
    instance = dg.DagsterInstance.ephemeral()
    first = evaluate(defs, "churn_landed_data_sensor", instance, None)
    assert len(first.run_requests) == 1

    engine = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:  # a correction in place: same row count, newer updated_at
        connection.execute(
            sa.text(
                f"UPDATE {table} SET amount = 1.0, updated_at = '2025-02-02T00:00:00Z' "
                f"WHERE event_id = (SELECT MIN(event_id) FROM {table} WHERE DATE(event_time AT TIME ZONE 'UTC') = :day)"
            ),
            {"day": days[1]},
        )
    [request] = evaluate(defs, "churn_landed_data_sensor", instance, first.cursor).run_requests
    assert request.partition_key == days[1]


def digest(version: object) -> str:
    return hashlib.sha256(str(version).encode()).hexdigest()
