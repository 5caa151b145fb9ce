"""Faults that need real `dagster-webserver` + `dagster-daemon` processes: a secret in the environment
never reaches the UI, and a daemon killed while a backfill's run writes loses nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from demo.generators.churn import write_landing_files
from ml_platform.assets import keys
from ml_platform.spec import UseCaseSpec
from ml_platform_tests.support.graphql import graphql, launch_partition_backfill, wait_for_backfill
from ml_platform_tests.support.polling import poll_until
from ml_platform_tests.support.servers import REPO_ROOT, dagster_servers, prepare_dagster_home


@pytest.mark.slow
def test_the_source_dsn_password_never_reaches_the_ui(tmp_path: Path) -> None:
    """A use case reading a Postgres table: its source resource holds the URL as dg.EnvVar, so the UI
    shows the variable's name and never the password."""
    password = "S3cret-Passw0rd-for-tests"
    dsn = f"postgresql+psycopg2://reader:{password}@127.0.0.1:5432/test"
    specs = tmp_path / "specs"
    specs.mkdir()
    shipped = yaml.safe_load((REPO_ROOT / "ml_platform" / "use_cases" / "churn.yaml").read_text())
    table_spec = {**shipped, "name": "churn_table", "source": {"kind": "postgres", "table": "public.churn_events"}}
    (specs / "churn_table.yaml").write_text(yaml.safe_dump(table_spec))
    home = prepare_dagster_home(tmp_path / "dagster_home")
    queries = [
        """{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError {
             ... on RepositoryLocation {
             repositories { name allTopLevelResourceDetails { name description configFields { name description }
               configuredValues { key value type } nestedResources { name } } } } } } } } }""",
        """{ assetNodes { assetKey { path } description metadataEntries { label
             ... on JsonMetadataEntry { jsonString } ... on TextMetadataEntry { text } } } }""",
        """{ runConfigSchemaOrError(selector: {repositoryLocationName: "ml_platform", repositoryName: "__repository__",
             pipelineName: "churn_daily"}) { ... on RunConfigSchema { rootDefaultYaml } } }""",
    ]
    environment = {
        "ML_PLATFORM_DATA_DIR": str(tmp_path / "data"),
        "ML_PLATFORM_SPECS_DIR": str(specs),
        "ML_PLATFORM_SOURCE_DSN": dsn,
    }
    with dagster_servers(home, environment, daemon=False) as servers:
        answers = [graphql(servers.url, query) for query in queries]
        logs = servers.logs(400)
    served = json.dumps(answers)
    resources = {
        resource["name"]: resource
        for location in answers[0]["workspaceOrError"]["locationEntries"]
        for repository in location["locationOrLoadError"]["repositories"]
        for resource in repository["allTopLevelResourceDetails"]
    }
    dsn_value = {value["key"]: value for value in resources["churn_table_source"]["configuredValues"]}["postgres_dsn"]
    assert dsn_value["type"] == "ENV_VAR" and dsn_value["value"] == "ML_PLATFORM_SOURCE_DSN", dsn_value
    assert "rootDefaultYaml" in served
    assert password not in served and password not in logs


@pytest.mark.slow
def test_killing_the_daemon_while_a_run_writes_loses_nothing(tmp_path: Path, churn_spec: UseCaseSpec) -> None:
    """The daemon dies (SIGKILL) while a backfill's run worker is writing day files, and comes back: every
    selected day ends up materialized exactly once in the lake, with no temporary file left behind."""
    start = churn_spec.start_date
    # 24 days: the kill comes once 5 are written, so 19 are still to write (60 proved nothing more, at 2.5x the work)
    days = [(start + pd.Timedelta(days=i)).isoformat() for i in range(24)]
    data = tmp_path / "data"
    write_landing_files(data / "landing" / "churn", start, len(days), 12_000, seed=8)
    raw_dir = data / "lake" / "churn" / "raw_events"
    home = prepare_dagster_home(tmp_path / "dagster_home")
    # the backfill daemon looks every 3 s (not 30): the restarted one picks the backfill up sooner, same outcome
    with dagster_servers(home, {"ML_PLATFORM_DATA_DIR": str(data)}, backfill_loop_s=3) as servers:
        backfill_id = launch_partition_backfill(
            servers.url, [keys.raw_events(churn_spec), keys.features(churn_spec)], days
        )
        poll_until(
            lambda: raw_dir.is_dir() and len(list(raw_dir.glob("*.parquet"))) >= 5,
            "the run to start writing",
            timeout=180,
            interval=0.2,
            alive=servers.assert_alive,
            details=lambda: servers.logs(80),
        )
        written_when_killed = len(list(raw_dir.glob("*.parquet")))
        servers.kill_daemon_alone_and_restart()
        backfill = wait_for_backfill(servers.url, backfill_id, timeout=300, alive=servers.assert_alive)
        with servers.instance() as instance:
            materialized = {
                key: instance.get_materialized_partitions(key)
                for key in (keys.raw_events(churn_spec), keys.features(churn_spec))
            }
            runs = instance.get_runs()
        logs = servers.logs(120)
    runs_seen = [(r.run_id[:8], r.status) for r in runs]
    context = f"killed at {written_when_killed} raw days; backfill {backfill}; runs {runs_seen}\n{logs}"
    assert written_when_killed < len(days), "the kill came after the run had finished writing"
    assert backfill["status"] == "COMPLETED_SUCCESS", context
    assert all(partitions == set(days) for partitions in materialized.values()), context
    lake = data / "lake" / "churn"
    assert not list(lake.rglob("*.tmp")), "no temporary file left behind"
    for day in days:
        assert len(pd.read_parquet(raw_dir / f"{day}.parquet")) == len(
            pd.read_parquet(data / "landing" / "churn" / f"{day}.parquet")
        )
        assert (lake / "features" / f"{day}.parquet").is_file()
