"""Postgres instance storage restarting under a range run that is writing (not only at run start).

The run is a separate process on a Dagster instance stored in Postgres; once it has written some day
files, the test restarts the Postgres server itself (`pg_ctlcluster ... restart`, the machine's real
server). Whatever the run made of it (it may ride the restart out, or fail saying why), nothing is
half-written in the lake, and a re-run of the range completes with every day recorded.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from demo.generators.churn import write_landing_files
from ml_platform.assets import keys
from ml_platform.definitions import build_definitions
from ml_platform.runner import materialize_stages
from ml_platform.spec import UseCaseSpec
from ml_platform_tests.support import postgres
from ml_platform_tests.support.fixtures import landing_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
DAYS = 60

RANGE_RUN = """
import os, sys
import dagster as dg
from ml_platform.definitions import build_definitions, load_specs
from ml_platform.runner import materialize_stages
specs = load_specs()
spec = next(s for s in specs if s.name == "churn")
result = materialize_stages(build_definitions(specs), spec, ["raw_events", "features"], dg.DagsterInstance.get(),
                            sys.argv[1].split(","))
print("RUN", result.run_id, result.success)
"""


def restart_postgres() -> None:
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[0]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True, timeout=120)
    engine = postgres.admin_engine(postgres.admin_url())
    deadline = time.monotonic() + 60
    while True:
        try:
            with engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
            return
        except sa.exc.OperationalError:
            assert time.monotonic() < deadline, "Postgres did not come back within 60 s"
            time.sleep(0.5)


@pytest.mark.exclusive  # beside it, another xdist worker's Postgres tests would lose their connections
def test_a_postgres_restart_while_a_range_run_writes_leaves_nothing_half_written(
    data_dir: Path,
    churn_spec: UseCaseSpec,
    postgres_database,
    tmp_path: Path,
) -> None:
    if not Path("/etc/postgresql").is_dir():
        postgres.unavailable("no local Postgres cluster to restart (/etc/postgresql)")
    days = [(churn_spec.start_date + dt.timedelta(days=i)).isoformat() for i in range(DAYS)]
    write_landing_files(landing_dir(data_dir), churn_spec.start_date, DAYS, 12_000, seed=9)
    config = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    config.update(postgres.postgres_instance_storage(postgres_database(), durable_commits=True))
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "DAGSTER_HOME": str(home), "ML_PLATFORM_DATA_DIR": str(data_dir)}
    raw_dir = data_dir / "lake" / "churn" / "raw_events"

    run = subprocess.Popen(
        [sys.executable, "-c", RANGE_RUN, ",".join(days)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 180
    while not (raw_dir.is_dir() and len(list(raw_dir.glob("*.parquet"))) >= 5):
        assert run.poll() is None, f"the run ended before it was interrupted:\n{run.stdout.read()}"
        assert time.monotonic() < deadline, "the run never started writing"
        time.sleep(0.1)
    written_at_restart = len(list(raw_dir.glob("*.parquet")))
    restart_postgres()
    output, _ = run.communicate(timeout=600)
    assert written_at_restart < DAYS, "the restart came after the run had finished writing"
    assert not list((data_dir / "lake").rglob("*.tmp")), "no temporary file left behind"
    for path in raw_dir.glob("*.parquet"):
        assert len(pd.read_parquet(path)) > 0, f"{path} is half-written"

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(home))
        instance = dg.DagsterInstance.from_config(str(home))
        try:
            runs = instance.get_runs()
            assert runs and runs[0].is_finished, f"the interrupted run is not finished: {runs}\n{output[-3000:]}"
            if runs[0].status == dg.DagsterRunStatus.FAILURE:  # it failed: the cause is recorded
                failures = instance.get_records_for_run(runs[0].run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
                assert failures and failures[-1].event_log_entry.message, output[-3000:]
            rerun = materialize_stages(
                build_definitions([churn_spec]), churn_spec, ["raw_events", "features"], instance, days
            )
            assert rerun.success
            for key in (keys.raw_events(churn_spec), keys.features(churn_spec)):
                assert instance.get_materialized_partitions(key) == set(days)
        finally:
            instance.dispose()
    for day in days:
        landed = pd.read_parquet(landing_dir(data_dir) / f"{day}.parquet")
        assert len(pd.read_parquet(raw_dir / f"{day}.parquet")) == len(landed)
