"""The platform's event-log storages (ml_platform/storage): Dagster's own, with connections kept.

What must hold for them to replace Dagster's classes in dagster.yaml and deploy/dagster-postgres.yaml:
what one process commits is at once visible to every other process (the webserver, the daemon)
and to Dagster's stock classes reading the same files or tables; a watcher of a run's live log
(the UI's run page) receives the events while the run writes them; wiping never leaves a
connection on a deleted shard; and on Postgres one process holds one server connection however
many events it writes, and survives the server dropping that connection.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from ml_platform.checks.gate import PartitionGate, gate_check_specs
from ml_platform.checks.rules import passed
from ml_platform.runner import range_tags
from ml_platform.storage.batches import EVENT_BATCH_SIZE_VARIABLE
from ml_platform.storage.sqlite import PooledSqliteEventLogStorage
from ml_platform_tests.support import postgres

REPO_ROOT = Path(__file__).resolve().parents[2]
DAYS = dg.DailyPartitionsDefinition(start_date="2025-01-01", end_date="2025-01-11")

# A range run's gate: every day's check evaluation written by the run, as PartitionGate writes them.
GATED_ASSET = textwrap.dedent("""
    import dagster as dg
    DAYS = dg.DailyPartitionsDefinition(start_date="2025-01-01", end_date="2025-01-11")

    @dg.asset(partitions_def=DAYS, check_specs=[dg.AssetCheckSpec("rows_present", asset="daily", partitions_def=DAYS)])
    def daily(context: dg.AssetExecutionContext):
        yield dg.MaterializeResult()
        for day in context.partition_keys:
            yield dg.AssetCheckEvaluation(asset_key=dg.AssetKey("daily"), check_name="rows_present",
                                          passed=day != "2025-01-05", partition=day)
""")


def write_home(home: Path, config: dict) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


def shipped_config() -> dict:
    return yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())


@pytest.fixture
def instance_in(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], dg.DagsterInstance]]:
    opened: list[dg.DagsterInstance] = []

    def open_instance(home: Path) -> dg.DagsterInstance:
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        opened.append(dg.DagsterInstance.from_config(str(home)))
        return opened[-1]

    yield open_instance
    for instance in opened:
        instance.dispose()


def materialize_range_in_subprocess(home: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """Another process (as a run worker is) materializes all ten days with their evaluations."""
    module = tmp_path / "gated_asset.py"
    module.write_text(
        GATED_ASSET
        + textwrap.dedent("""
        if __name__ == "__main__":
            with dg.DagsterInstance.get() as instance:
                result = dg.materialize([daily], instance=instance, raise_on_error=False,
                                        tags={"dagster/asset_partition_range_start": "2025-01-01",
                                              "dagster/asset_partition_range_end": "2025-01-10"})
                print(result.run_id)
    """)
    )
    return subprocess.run(
        [sys.executable, str(module)],
        env={"DAGSTER_HOME": str(home), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )


def check_statuses(instance: dg.DagsterInstance) -> dict[str, str]:
    records = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("daily"), "rows_present"), limit=100
    )
    return {record.event.dagster_event.event_specific_data.partition: record.status.value for record in records}


def run_event_entry(
    run: dg.DagsterRun, event_type: dg.DagsterEventType, data: Any, step_key: str | None = None
) -> dg.EventLogEntry:
    """An event of `run` as its worker stores it (recorded by step `step_key`, if one)."""
    return dg.EventLogEntry(
        user_message="",
        level=10,
        job_name=run.job_name,
        run_id=run.run_id,
        error_info=None,
        timestamp=time.time(),
        step_key=step_key,
        dagster_event=dg.DagsterEvent(event_type.value, run.job_name, event_specific_data=data, step_key=step_key),
    )


def evaluation_entry(run: dg.DagsterRun, day: str, passed: bool = True) -> dg.EventLogEntry:
    """A run's check evaluation of `daily` for one day, as the gate's step records it."""
    data = dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey("daily"), check_name="rows_present", passed=passed, partition=day
    )
    return run_event_entry(run, dg.DagsterEventType.ASSET_CHECK_EVALUATION, data, step_key="daily")


def test_the_shipped_sqlite_instance_uses_the_pooled_storage_where_dagster_keeps_its_history(
    tmp_path: Path, instance_in: Callable[[Path], dg.DagsterInstance]
) -> None:
    instance = instance_in(write_home(tmp_path / "home", shipped_config()))
    storage = instance.event_log_storage
    assert isinstance(storage, PooledSqliteEventLogStorage)
    assert Path(storage._base_dir) == tmp_path / "home" / "history" / "runs"  # Dagster's default place
    with storage.index_connection() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_a_worker_processes_evaluations_read_the_same_in_the_pooled_and_the_stock_storage(
    tmp_path: Path, instance_in: Callable[[Path], dg.DagsterInstance]
) -> None:
    home = write_home(tmp_path / "home", shipped_config())
    pooled = instance_in(home)
    assert check_statuses(pooled) == {}  # it holds its connections open from here on
    worker = materialize_range_in_subprocess(home, tmp_path)
    assert worker.returncode == 0, worker.stderr
    # python_logs at INFO: the worker's console has no DEBUG line per event; the event log has every event
    assert "ASSET_CHECK_EVALUATION" not in worker.stderr and "STEP_START" not in worker.stderr, worker.stderr[-2000:]

    expected = {f"2025-01-{day:02d}": "SUCCEEDED" for day in range(1, 11)} | {"2025-01-05": "FAILED"}
    assert check_statuses(pooled) == expected
    stock_home = write_home(tmp_path / "stock", {})  # Dagster's own SqliteEventLogStorage on the same files
    stock_config = {
        "event_log_storage": {
            "module": "dagster.core.storage.event_log",
            "class": "SqliteEventLogStorage",
            "config": {"base_dir": str(home / "history" / "runs")},
        }
    }
    stock = instance_in(write_home(stock_home, stock_config))
    assert type(stock.event_log_storage).__name__ == "SqliteEventLogStorage"
    assert check_statuses(stock) == expected
    assert set(stock.get_materialized_partitions(dg.AssetKey("daily"))) == set(expected)


def test_a_watcher_of_a_runs_log_receives_its_events_while_another_process_writes_them(
    tmp_path: Path, instance_in: Callable[[Path], dg.DagsterInstance]
) -> None:
    """The UI's live run log: the webserver watches the run's log while the worker writes it."""
    home = write_home(tmp_path / "home", shipped_config())
    watching = instance_in(home)
    run = watching.create_run_for_job(dg.GraphDefinition("noop").to_job())  # a run to watch before it writes
    received: list[str] = []
    done = threading.Event()

    def on_event(entry: dg.EventLogEntry, _cursor: str) -> None:
        received.append(entry.message)
        if entry.message == "last":
            done.set()

    watching.watch_event_logs(run.run_id, None, on_event)
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f'''
            import time, dagster as dg
            with dg.DagsterInstance.get() as instance:
                for message in ["first", "second", "last"]:
                    instance.report_engine_event(message, instance.get_run_by_id("{run.run_id}"))
                    time.sleep(0.2)
                time.sleep(5)  # keeps its connections open while the watcher reads
        '''),
        ],
        env={"DAGSTER_HOME": str(home), "PATH": "/usr/bin:/bin"},
        cwd=REPO_ROOT,
    )
    try:
        assert done.wait(timeout=30), f"the watcher saw only {received}"
    finally:
        writer.wait(timeout=60)
    assert received == ["first", "second", "last"]


def test_wiping_the_instance_leaves_no_connection_on_a_deleted_run_shard(
    tmp_path: Path, instance_in: Callable[[Path], dg.DagsterInstance]
) -> None:
    instance = instance_in(write_home(tmp_path / "home", shipped_config()))
    run = instance.create_run_for_job(dg.GraphDefinition("noop").to_job())
    instance.report_engine_event("before the wipe", run)
    instance.wipe()
    run = instance.create_run_for_job(dg.GraphDefinition("noop").to_job())
    instance.report_engine_event("after the wipe", run)
    messages = [r.event_log_entry.message for r in instance.get_records_for_run(run.run_id).records]
    assert messages == ["after the wipe"]


@pytest.mark.parametrize("elsewhere_home", [False, True], ids=["no DAGSTER_HOME", "DAGSTER_HOME elsewhere"])
def test_a_bad_setting_fails_naming_it_and_the_event_logs_live_in_the_instances_own_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, elsewhere_home: bool
) -> None:
    with pytest.raises(ValueError, match="synchronous must be one of"):
        PooledSqliteEventLogStorage(base_dir=str(tmp_path), synchronous="OFF")
    # no base_dir: the event logs go where Dagster's own storage would put them, under the directory of the
    # instance that registers the storage; with no DAGSTER_HOME (`dagster dev` in a fresh clone), and with one
    # naming another instance (`DagsterInstance.from_config(dir)` beside it: two instances never share a log)
    other = tmp_path / "other_home"
    if elsewhere_home:
        monkeypatch.setenv("DAGSTER_HOME", str(other))
    else:
        monkeypatch.delenv("DAGSTER_HOME", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        assert (home / "history" / "runs" / "index.db").is_file()
        assert not other.exists()
    finally:
        instance.dispose()


# --- Postgres ----------------------------------------------------------------------------------


def server_connections(url: sa.URL) -> int:
    engine = postgres.admin_engine(url)
    with engine.connect() as conn:
        count = conn.execute(
            sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()"),
            {"db": url.database},
        ).scalar_one()
    engine.dispose()
    return int(count)


def terminate_other_connections(url: sa.URL) -> int:
    engine = postgres.admin_engine(url)
    with engine.connect() as conn:
        ended = conn.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :db AND pid <> pg_backend_pid()"
            ),
            {"db": url.database},
        ).scalar_one()
    engine.dispose()
    return int(ended)


def test_on_postgres_one_process_keeps_one_connection_and_survives_the_server_dropping_it(
    tmp_path: Path, postgres_database: Callable[[], sa.URL], instance_in: Callable[[Path], dg.DagsterInstance]
) -> None:
    url = postgres_database()
    config = shipped_config() | postgres.postgres_instance_storage(url, durable_commits=True)
    instance = instance_in(write_home(tmp_path / "home", config))
    assert type(instance.event_log_storage).__name__ == "PooledPostgresEventLogStorage"
    run = instance.create_run_for_job(dg.GraphDefinition("noop").to_job())

    for number in range(200):
        instance.report_engine_event(f"event {number}", run)
    assert server_connections(url) == 1  # Dagster's own storage opens and closes one per statement group

    assert terminate_other_connections(url) == 1  # a failover, a restart, an idle timeout
    time.sleep(0.5)
    instance.report_engine_event("after the drop", run)
    messages = [r.event_log_entry.message for r in instance.get_records_for_run(run.run_id, limit=1000).records]
    assert messages == [f"event {number}" for number in range(200)] + ["after the drop"]


def test_on_postgres_a_check_evaluation_or_a_materialization_is_written_whole_or_not_at_all(
    tmp_path: Path,
    postgres_database: Callable[[], sa.URL],
    instance_in: Callable[[Path], dg.DagsterInstance],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The event row and its check-execution (or asset-index) rows share one transaction, and so do a batch's: a
    failure between them leaves neither (Dagster's own storage commits the event first and can leave an evaluation
    the Partitions tab never shows, or a materialization the asset page does not know of)."""
    url = postgres_database()
    instance = instance_in(write_home(tmp_path / "home", shipped_config() | postgres.postgres_instance_storage(url)))
    run = instance.create_run_for_job(dg.GraphDefinition("noop").to_job())
    storage, key = instance.event_log_storage, dg.AssetKey("daily")

    def evaluations_stored() -> int:
        return len(instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records)

    def fail_between(*_args: object) -> None:
        raise RuntimeError("the server went away between the two writes")

    with monkeypatch.context() as patch:
        patch.setattr(type(storage), "_update_asset_check_evaluation", fail_between)
        storage.store_event(evaluation_entry(run, "2025-01-01", passed=False))  # held until the run's next event
        with pytest.raises(RuntimeError, match="went away"):
            instance.report_engine_event("the step ends", run)
    assert evaluations_stored() == 0

    storage.store_event(evaluation_entry(run, "2025-01-01"))
    assert evaluations_stored() == 1, "a read in the writing process writes what it holds first"
    [record] = storage.get_asset_check_execution_history(dg.AssetCheckKey(key, "rows_present"), limit=10)
    assert record.status.value == "SUCCEEDED" and record.event.dagster_event.event_specific_data.passed

    with monkeypatch.context() as patch:
        patch.setattr(type(storage), "_store_asset_event", fail_between)
        with pytest.raises(RuntimeError, match="went away"):
            storage.store_event(materialization_entry(run, key, "2025-01-01"))
    assert not instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    assert instance.get_latest_materialization_event(key) is None

    storage.store_event(materialization_entry(run, key, "2025-01-01"))
    assert instance.get_latest_materialization_event(key).run_id == run.run_id
    assert instance.get_materialized_partitions(key) == {"2025-01-01"}

    later_days = ["2025-01-02", "2025-01-03"]  # a range step's batch: its rows, tags and asset entry together
    with monkeypatch.context() as patch:
        patch.setattr(type(storage), "_store_asset_event_tags", fail_between)
        with pytest.raises(RuntimeError, match="went away"):
            storage.store_event_batch([materialization_entry(run, key, day) for day in later_days])
    assert instance.get_materialized_partitions(key) == {"2025-01-01"}
    storage.store_event_batch([materialization_entry(run, key, day) for day in later_days])
    assert instance.get_materialized_partitions(key) == {"2025-01-01", *later_days}


def materialization_entry(run: dg.DagsterRun, key: dg.AssetKey, day: str) -> dg.EventLogEntry:
    from ml_platform.dagster_internals import StepMaterializationData

    data = StepMaterializationData(dg.AssetMaterialization(asset_key=key, partition=day))
    return run_event_entry(run, dg.DagsterEventType.ASSET_MATERIALIZATION, data)


def gated_daily() -> dg.AssetsDefinition:
    """A daily asset whose range step records what the platform's gate records: the range's materializations,
    then one evaluation per day targeting that day's."""

    @dg.asset(partitions_def=DAYS, check_specs=gate_check_specs(dg.AssetKey("daily"), {"rows_present": "rows"}, DAYS))
    def daily(context) -> Iterator[Any]:
        gate = PartitionGate(context, dg.AssetKey("daily"))
        for day in context.partition_keys:
            gate.evaluate(day, [passed("rows_present", day)])
            gate.record_written(day, rows=1)
        yield from gate.conclude()

    return daily


# --- Both -----------------------------------------------------------------------------------------

CATALOG_QUERIES = ("pg_catalog.pg_class", "PRAGMA main.table_info")  # SQLAlchemy's has_table on Postgres, SQLite


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_storing_evaluations_asks_the_database_which_tables_exist_once_not_per_event(
    backend: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    instance_in: Callable[[Path], dg.DagsterInstance],
) -> None:
    """Dagster's classes look `asset_check_executions` up in the catalog before every evaluation (on SQLite through
    a new connection); a table once there stays, so the platform's remember it and ask only about absent ones."""
    config = shipped_config()
    if backend == "postgres":
        config |= postgres.postgres_instance_storage(request.getfixturevalue("postgres_database")())
    instance = instance_in(write_home(tmp_path / "home", config))
    run = instance.create_run_for_job(dg.GraphDefinition("noop").to_job())
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    def catalog_queries_during(action: Callable[[], object]) -> int:
        statements.clear()
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
        try:
            action()
        finally:
            sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)
        return sum(any(marker in statement for marker in CATALOG_QUERIES) for statement in statements)

    storage = instance.event_log_storage
    first, *rest = DAYS.get_partition_keys()
    storage.store_event(evaluation_entry(run, first))  # the run's first events create its tables (SQLite: its shard)
    instance.report_engine_event("the first day checked", run)  # and write an evaluation held on Postgres

    def store_the_rest() -> None:
        for day in rest:
            storage.store_event(evaluation_entry(run, day))
        instance.report_engine_event("the step ends", run)  # what writes those held on Postgres

    assert catalog_queries_during(store_the_rest) == 0
    assert catalog_queries_during(lambda: [storage.has_table("no_such_table") for _ in range(2)]) == 2
    assert check_statuses(instance) == {day: "SUCCEEDED" for day in DAYS.get_partition_keys()}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_range_steps_materializations_are_written_as_one_batch_and_read_as_every_day(
    backend: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    instance_in: Callable[[Path], dg.DagsterInstance],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The storages turn on Dagster's event batching, so a range step's materializations (one per day) arrive in one
    `store_event_batch`, written in one transaction per database; every day then reads as materialized by the run,
    and each day's evaluation by the platform's gate targets that day's materialization, which is what the check's
    Partitions tab counts."""
    monkeypatch.delenv(EVENT_BATCH_SIZE_VARIABLE, raising=False)  # only the storage may turn it on here
    config = shipped_config()
    if backend == "postgres":
        config |= postgres.postgres_instance_storage(request.getfixturevalue("postgres_database")())
    instance = instance_in(write_home(tmp_path / "home", config))
    batches: list[list[str]] = []
    store_event_batch = type(instance.event_log_storage).store_event_batch

    def spy(storage: Any, events: list[dg.EventLogEntry]) -> None:
        batches.append([event.dagster_event_type.value for event in events])
        store_event_batch(storage, events)

    monkeypatch.setattr(type(instance.event_log_storage), "store_event_batch", spy)
    days = DAYS.get_partition_keys()

    result = dg.materialize([gated_daily()], instance=instance, tags=range_tags(days))

    assert result.success
    assert [batch for batch in batches if "ASSET_MATERIALIZATION" in batch] == [["ASSET_MATERIALIZATION"] * len(days)]
    key = dg.AssetKey("daily")
    assert instance.get_materialized_partitions(key) == set(days)
    assert instance.get_latest_materialization_event(key).run_id == result.run_id
    records = instance.fetch_materializations(key, limit=100).records
    assert sorted(record.partition_key for record in records) == days
    assert all(record.asset_materialization.tags.get("dagster/data_version") for record in records)
    storage_ids = {record.partition_key: record.storage_id for record in records}
    executions = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(key, "rows_present"), limit=100
    )
    assert {
        execution.event.dagster_event.event_specific_data.partition: execution.status.value for execution in executions
    } == dict.fromkeys(days, "SUCCEEDED")
    evaluations = [execution.event.dagster_event.event_specific_data for execution in executions]
    assert {e.partition: e.target_materialization_data.storage_id for e in evaluations} == storage_ids


def test_on_postgres_a_gates_evaluations_are_committed_together_or_not_at_all(
    tmp_path: Path,
    postgres_database: Callable[[], sa.URL],
    instance_in: Callable[[Path], dg.DagsterInstance],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A range's evaluations (thousands in a year) share one transaction instead of a commit each: if one cannot be
    stored the step fails and none of them is, while the materializations recorded before them stay."""
    instance = instance_in(
        write_home(tmp_path / "home", shipped_config() | postgres.postgres_instance_storage(postgres_database()))
    )
    storage, days = instance.event_log_storage, DAYS.get_partition_keys()
    update = type(storage)._update_asset_check_evaluation
    updates: list[str] = []

    def failing_at_the_fifth(self: Any, event: dg.EventLogEntry, event_id: int | None) -> None:
        updates.append(event.dagster_event.event_specific_data.partition)
        if len(updates) == 5:
            raise RuntimeError("the server went away mid-range")
        update(self, event, event_id)

    monkeypatch.setattr(type(storage), "_update_asset_check_evaluation", failing_at_the_fifth)
    result = dg.materialize([gated_daily()], instance=instance, raise_on_error=False, tags=range_tags(days))

    assert not result.success and len(updates) == 5
    assert not instance.get_records_for_run(result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    assert instance.get_materialized_partitions(dg.AssetKey("daily")) == set(days)

    monkeypatch.setattr(type(storage), "_update_asset_check_evaluation", update)
    result = dg.materialize([gated_daily()], instance=instance, tags=range_tags(days))
    evaluations = instance.get_records_for_run(
        result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    assert sorted(record.event_log_entry.dagster_event.event_specific_data.partition for record in evaluations) == days


def test_on_postgres_any_other_event_commits_the_evaluations_held_before_it(
    tmp_path: Path,
    postgres_database: Callable[[], sa.URL],
    instance_in: Callable[[Path], dg.DagsterInstance],
) -> None:
    """A run's evaluations, held by the storage for one commit, never hold back the run's other events (a failure,
    a cancellation): the first such event commits them, and the webserver, reading from another process, sees
    both in order. Another run's event leaves them held; the writer's own next read sees them."""
    home = write_home(tmp_path / "home", shipped_config() | postgres.postgres_instance_storage(postgres_database()))
    worker, webserver = instance_in(home), instance_in(home)
    run = worker.create_run_for_job(dg.GraphDefinition("noop").to_job())
    first, second, *_ = DAYS.get_partition_keys()

    def seen() -> list[str]:
        return [
            record.event_log_entry.dagster_event.event_type_value
            if record.event_log_entry.dagster_event
            else record.event_log_entry.user_message
            for record in webserver.get_records_for_run(run.run_id).records
        ]

    other_run = worker.create_run_for_job(dg.GraphDefinition("other").to_job())
    worker.event_log_storage.store_event(evaluation_entry(run, first))
    assert seen() == []
    worker.report_engine_event("another run's event", other_run)
    assert seen() == []
    worker.report_engine_event("termination requested", run)
    assert seen() == ["ASSET_CHECK_EVALUATION", "ENGINE_EVENT"]
    worker.event_log_storage.store_event(evaluation_entry(run, second))
    assert seen() == ["ASSET_CHECK_EVALUATION", "ENGINE_EVENT"]
    assert check_statuses(worker) == {first: "SUCCEEDED", second: "SUCCEEDED"}, "the writer reads its own"
    assert seen() == ["ASSET_CHECK_EVALUATION", "ENGINE_EVENT", "ASSET_CHECK_EVALUATION"]
    assert check_statuses(webserver) == {first: "SUCCEEDED", second: "SUCCEEDED"}


def test_on_sqlite_a_range_runs_planned_materializations_are_stored_in_one_transaction_per_shard(
    tmp_path: Path,
    instance_in: Callable[[Path], dg.DagsterInstance],
) -> None:
    """A run over a range plans one materialization per asset and day (20,000 for two assets over 10,000 days),
    which Dagster hands over in batches: two commits for a batch instead of two per event, each day planned and
    each asset's latest planned run recorded as Dagster's own storage records them."""
    from ml_platform.dagster_internals import AssetMaterializationPlannedData

    instance = instance_in(write_home(tmp_path / "home", shipped_config()))
    run = instance.create_run_for_job(dg.GraphDefinition("noop").to_job())
    assets, days = (
        [dg.AssetKey("raw"), dg.AssetKey("features")],
        dg.DailyPartitionsDefinition(start_date="1999-01-01", end_date="1999-03-02"),
    )
    planned = [
        run_event_entry(
            run, dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED, AssetMaterializationPlannedData(key, day)
        )
        for key in assets
        for day in days.get_partition_keys()
    ]
    instance.event_log_storage.store_event(evaluation_entry(run, "1999-01-01"))  # the run's shard exists
    commits = []

    def committed(_connection: Any) -> None:
        commits.append(_connection)

    sa.event.listen(sa.engine.Engine, "commit", committed)
    try:
        instance.event_log_storage.store_event_batch(planned)
    finally:
        sa.event.remove(sa.engine.Engine, "commit", committed)

    assert len(commits) == 2  # the run's shard and the index
    for key in assets:
        records = instance.event_log_storage.get_event_records(
            dg.EventRecordsFilter(dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED, asset_key=key), limit=100
        )
        assert sorted(record.partition_key for record in records) == days.get_partition_keys()
        assert instance.event_log_storage.get_latest_planned_materialization_info(key).run_id == run.run_id
    assert check_statuses(instance) == {"1999-01-01": "SUCCEEDED"}


# --- A reader following a run's log by id, a batch over two assets, engines disposed ----------------------------

# Another process following a run's log by id as Dagster's polling watcher does (the UI's live run log): records
# after its cursor, every 20 ms, until the event "last"; one line per delivered event.
RUN_LOG_FOLLOWER = textwrap.dedent("""
    import sys, time, dagster as dg
    with dg.DagsterInstance.get() as instance:
        print("following", flush=True)
        cursor = None
        while True:
            page = instance.get_records_for_run(sys.argv[1], cursor=cursor)
            cursor = page.cursor
            for record in page.records:
                entry = record.event_log_entry  # an engine event by its message, any other by its type
                print(entry.message or entry.dagster_event.event_type_value, flush=True)
                if entry.message == "last":
                    sys.exit(0)
            time.sleep(0.02)
""")


def until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@contextlib.contextmanager
def run_log_follower(home: Path, run_id: str) -> Iterator[list[str]]:
    """What a `RUN_LOG_FOLLOWER` process delivers, filled as it goes; the block ends when it has read "last"."""
    process = subprocess.Popen(
        [sys.executable, "-c", RUN_LOG_FOLLOWER, run_id],
        stdout=subprocess.PIPE,
        text=True,
        env={"DAGSTER_HOME": str(home), "PATH": "/usr/bin:/bin"},
        cwd=REPO_ROOT,
    )
    started = threading.Event()
    delivered: list[str] = []

    def read() -> None:
        for line in process.stdout:
            if line.strip() == "following":
                started.set()
            else:
                delivered.append(line.strip())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert started.wait(timeout=60), "the follower process did not start"
        yield delivered
        process.wait(timeout=30)
        reader.join(timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_on_postgres_a_reader_following_a_runs_log_by_id_gets_the_gates_evaluations_held_while_another_writer_commits(
    tmp_path: Path,
    postgres_database: Callable[[], sa.URL],
    instance_in: Callable[[Path], dg.DagsterInstance],
) -> None:
    """A gate's evaluations are held until the run's next event from the gate's process; another process commits
    an event of the run meanwhile and the reader moves its cursor past it. The evaluations must come after it,
    not before (Dagster's own storage commits each at once: the reader gets them all)."""
    home = write_home(tmp_path / "home", shipped_config() | postgres.postgres_instance_storage(postgres_database()))
    worker, other_step = instance_in(home), instance_in(home)  # two processes' storages: a server connection each
    run = worker.create_run_for_job(dg.GraphDefinition("noop").to_job())
    days = DAYS.get_partition_keys()[:3]

    with run_log_follower(home, run.run_id) as delivered:
        for day in days:
            worker.event_log_storage.store_event(evaluation_entry(run, day))
        other_step.report_engine_event("meanwhile", run)
        assert until(lambda: "meanwhile" in delivered, timeout=30), delivered
        worker.report_engine_event("the gate's step ends", run)
        other_step.report_engine_event("last", run)

    assert delivered == ["meanwhile", *["ASSET_CHECK_EVALUATION"] * len(days), "the gate's step ends", "last"]
    assert check_statuses(worker) == dict.fromkeys(days, "SUCCEEDED")


def test_on_postgres_a_reader_following_a_runs_log_by_id_gets_an_event_whose_transaction_another_writer_overtakes(
    tmp_path: Path,
    postgres_database: Callable[[], sa.URL],
    instance_in: Callable[[Path], dg.DagsterInstance],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A materialization is one transaction (its event row, then the asset index): while it is open, another
    process's event of the run must not become visible with a later id before it, or the reader skips it."""
    home = write_home(tmp_path / "home", shipped_config() | postgres.postgres_instance_storage(postgres_database()))
    worker, other_step = instance_in(home), instance_in(home)
    run = worker.create_run_for_job(dg.GraphDefinition("noop").to_job())
    row_inserted, go_on = threading.Event(), threading.Event()
    store_asset_event = worker.event_log_storage._store_asset_event

    def index_write_after_a_pause(conn: sa.Connection, event: dg.EventLogEntry, event_id: int) -> None:
        row_inserted.set()  # the event row holds its id, uncommitted
        go_on.wait(timeout=30)
        store_asset_event(conn, event, event_id)

    monkeypatch.setattr(worker.event_log_storage, "_store_asset_event", index_write_after_a_pause)

    with run_log_follower(home, run.run_id) as delivered:
        materializing = threading.Thread(
            target=worker.event_log_storage.store_event,
            args=(materialization_entry(run, dg.AssetKey("daily"), "2025-01-01"),),
        )
        materializing.start()
        assert row_inserted.wait(timeout=30)
        overtaking = threading.Thread(target=other_step.report_engine_event, args=("meanwhile", run))
        overtaking.start()
        until(lambda: "meanwhile" in delivered, timeout=2)  # the time for the reader to move past, if it can
        go_on.set()
        materializing.join(timeout=30)
        overtaking.join(timeout=30)
        other_step.report_engine_event("last", run)

    assert delivered == ["ASSET_MATERIALIZATION", "meanwhile", "last"]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_batch_of_materializations_of_two_assets_indexes_both_as_dagsters_sqlite_storage_does(
    backend: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    instance_in: Callable[[Path], dg.DagsterInstance],
) -> None:
    """Dagster batches one asset's materializations today, but nothing in `store_event_batch` says so: each asset
    of a batch gets its asset record and latest materialization, as storing the events one by one gives."""
    config = shipped_config()
    if backend == "postgres":
        config |= postgres.postgres_instance_storage(request.getfixturevalue("postgres_database")())
    stock_config = {
        "event_log_storage": {
            "module": "dagster.core.storage.event_log",
            "class": "SqliteEventLogStorage",
            "config": {"base_dir": str(tmp_path / "stock" / "history" / "runs")},
        }
    }
    platform, stock = (
        instance_in(write_home(tmp_path / "home", config)),
        instance_in(write_home(tmp_path / "stock", stock_config)),
    )
    assets, days = [dg.AssetKey("raw"), dg.AssetKey("features")], DAYS.get_partition_keys()[:2]

    def indexed(instance: dg.DagsterInstance) -> tuple[dict[dg.AssetKey, str], dict[dg.AssetKey, str]]:
        run = instance.create_run_for_job(dg.GraphDefinition("noop").to_job())
        instance.event_log_storage.store_event_batch(
            [materialization_entry(run, key, day) for day in days for key in assets]
        )
        records = {
            record.asset_entry.asset_key: record.asset_entry.last_materialization.dagster_event.partition
            for record in instance.get_asset_records(assets)
        }
        latest = {
            key: event.dagster_event.partition
            for key, event in instance.get_latest_materialization_events(assets).items()
            if event
        }
        return records, latest

    assert indexed(platform) == indexed(stock) == (dict.fromkeys(assets, days[-1]), dict.fromkeys(assets, days[-1]))


def test_on_postgres_the_webservers_engine_replaces_the_kept_one_and_dispose_closes_every_connection(
    tmp_path: Path,
    postgres_database: Callable[[], sa.URL],
    instance_in: Callable[[Path], dg.DagsterInstance],
) -> None:
    """The webserver swaps the storage's engine for its own (`optimize_for_webserver`): the kept engine's connection
    is closed, not left open for the process's life; `dispose` closes the new one's."""
    url = postgres_database()
    instance = instance_in(write_home(tmp_path / "home", shipped_config() | postgres.postgres_instance_storage(url)))
    run = instance.create_run_for_job(dg.GraphDefinition("noop").to_job())
    instance.report_engine_event("before", run)
    assert server_connections(url) == 1

    instance.event_log_storage.optimize_for_webserver(statement_timeout=5000, pool_recycle=3600, max_overflow=20)
    instance.report_engine_event("after", run)
    assert [record.event_log_entry.message for record in instance.get_records_for_run(run.run_id).records] == [
        "before",
        "after",
    ]
    assert server_connections(url) == 1  # the webserver engine's

    instance.dispose()
    assert server_connections(url) == 0


def test_on_postgres_processes_claiming_a_new_pool_at_once_or_after_its_default_changed_get_its_default_limit(
    tmp_path: Path,
    postgres_database: Callable[[], sa.URL],
    instance_in: Callable[[Path], dg.DagsterInstance],
) -> None:
    """A pool's first steps (two run workers starting together on a fresh deployment) each give it the default
    limit at once, and a raised `concurrency.pools.default_limit` reaches an existing pool (Dagster's own Postgres
    storage fails the later claim with InFailedSqlTransaction: dagster-io/dagster#33552). Every pool ends with
    as many slots as its limit, never one per process."""
    url = postgres_database()
    storage = shipped_config() | postgres.postgres_instance_storage(url)
    workers = [instance_in(write_home(tmp_path / f"worker_{i}", storage)) for i in range(2)]  # default limit 1
    pools = [f"pool_{i}" for i in range(8)]
    errors: list[BaseException] = []

    def claim(instance: dg.DagsterInstance, pool: str, together: threading.Barrier) -> None:
        together.wait()
        try:
            instance.event_log_storage.initialize_concurrency_limit_to_default(pool)
        except Exception as error:
            errors.append(error)

    for pool in pools:
        together = threading.Barrier(len(workers))
        threads = [threading.Thread(target=claim, args=(instance, pool, together)) for instance in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors, errors
    infos = [workers[0].event_log_storage.get_concurrency_info(pool) for pool in pools]
    assert {(info.slot_count, info.limit, info.using_default_limit) for info in infos} == {(1, 1, True)}

    raised = instance_in(write_home(tmp_path / "two", storage | {"concurrency": {"pools": {"default_limit": 2}}}))
    assert raised.event_log_storage.initialize_concurrency_limit_to_default(pools[0])
    info = workers[0].event_log_storage.get_concurrency_info(pools[0])
    assert (info.slot_count, info.limit, info.using_default_limit) == (2, 2, True)
