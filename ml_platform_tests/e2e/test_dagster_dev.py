"""A Dagster user's first habits: `dagster dev` and `dg dev` in a fresh clone with no DAGSTER_HOME set.

Dagster then keeps the instance in a temporary `.tmp_dagster_home_*` directory under the working
directory; the platform's event log storage (named in dagster.yaml) must find its directory there, as
Dagster's own default storage does, and the UI must serve the code location. The repository is a `dg`
project ([tool.dg] in pyproject.toml): `dg check defs`, `dg list defs`, `dg dev` and `dg launch` work
in the clone's root, with no variable set and with DAGSTER_HOME set. `make ui` runs `dg dev` beside the
MLflow UI, and Ctrl-C stops both.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import psutil
import pytest
import requests

from ml_platform_tests.support.graphql import graphql, wait_for_code_location
from ml_platform_tests.support.polling import poll_until
from ml_platform_tests.support.servers import (
    REPO_ROOT,
    free_port,
    kill_process_group,
    open_instance,
    prepare_dagster_home,
    spawn,
    wait_for_server_info,
)

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
# Every asset of each shipped use case's daily step; `dg list defs` must list them all.
DAILY_ASSETS = [
    f"{use_case}/{name}"
    for use_case in ("churn", "fraud", "prices", "news")
    for name in ("raw_events", "features", "predictions", "drift")
]


def _fresh_clone(tmp_path: Path) -> Path:
    """The committed tree plus this working tree's changes, as a clone would have them, without any state."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(clone)], check=True)
    changed = subprocess.run(
        ["git", "ls-files", "-m", "-o", "--exclude-standard"], cwd=REPO_ROOT, check=True, capture_output=True, text=True
    ).stdout.split()
    for name in changed:  # uncommitted work under test travels along
        source, target = REPO_ROOT / name, clone / name
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    return clone


def _bare_env(clone: Path) -> dict[str, str]:
    """No DAGSTER_ or ML_PLATFORM_ variable; the clone's code, not this checkout's editable install."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DAGSTER_", "ML_PLATFORM_"))}
    env["PYTHONPATH"] = str(clone)
    return env


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One fresh clone for the `dg` tests (each leaves no state the others read)."""
    return _fresh_clone(tmp_path_factory.mktemp("dg"))


def _dg(clone: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([str(BIN / "dg"), *args], cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"dg {' '.join(args)}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result


def test_dagster_dev_serves_the_ui_from_a_fresh_clone_without_dagster_home(tmp_path: Path) -> None:
    clone = _fresh_clone(tmp_path)
    env = _bare_env(clone)
    validate = subprocess.run(
        [str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert validate.returncode == 0, validate.stdout[-3000:] + validate.stderr[-3000:]

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "dagster_dev.log"
    process = spawn(
        [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)], env, log, clone
    )
    try:
        assert wait_for_server_info(url, process, timeout=180), log.read_text()[-3000:]
        [location] = wait_for_code_location(url, timeout=180)
        assert location["name"] == "ml_platform"
        assert list(clone.glob(".tmp_dagster_home_*/history/runs")), "the event logs live in Dagster's temporary home"
    finally:
        kill_process_group(process)
    assert "DAGSTER_HOME is not set" not in log.read_text()


@pytest.mark.parametrize("with_home", [False, True], ids=["no_env", "dagster_home"])
def test_dg_check_and_list_defs(clone: Path, tmp_path: Path, with_home: bool) -> None:
    env = _bare_env(clone)
    if with_home:
        env["DAGSTER_HOME"] = str(prepare_dagster_home(tmp_path / "home"))
    assert "All definitions loaded successfully." in _dg(clone, env, "check", "defs").stdout
    listed = json.loads(_dg(clone, env, "list", "defs", "--json").stdout)
    keys = {asset["asset_key"] for asset in listed["assets"]}
    assert set(DAILY_ASSETS) <= keys, sorted(set(DAILY_ASSETS) - keys)


def test_dg_check_defs_names_a_broken_specs_file_and_field(clone: Path, tmp_path: Path) -> None:
    """A use case stays a spec file, not a Component (docs/dagster-native.md): `dg check defs` reports
    its mistakes with the spec's own message."""
    specs = tmp_path / "specs"
    specs.mkdir()
    churn = (clone / "ml_platform" / "use_cases" / "churn.yaml").read_text()
    broken = churn.replace("name: churn", "name: broken", 1).replace(
        "{name: customer_id, dtype: int64,", "{name: customer_id, dtype: int65,", 1
    )
    assert broken.count("int65") == 1
    (specs / "broken.yaml").write_text(broken)
    env = {**_bare_env(clone), "ML_PLATFORM_SPECS_DIR": str(specs)}
    result = subprocess.run(
        [str(BIN / "dg"), "check", "defs"], cwd=clone, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1, result.stdout[-3000:]
    assert (
        f"{specs / 'broken.yaml'}: invalid use-case spec: columns[1].dtype: Input should be"
        in result.stdout + result.stderr
    )


def test_make_ui_serves_dg_dev_and_the_mlflow_ui_and_ctrl_c_stops_both(clone: Path, tmp_path: Path) -> None:
    """`make ui` (`python -m demo ui`): `dg dev` serves the code location and the MLflow UI answers at
    MLFLOW_UI_URL; SIGINT to the launcher alone, as Ctrl-C in a terminal, stops both servers' whole groups."""
    port, mlflow_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "make_ui.log"
    env = {**_bare_env(clone), "MLFLOW_UI_URL": f"http://127.0.0.1:{mlflow_port}"}
    process = spawn([str(BIN / "python"), "-m", "demo", "ui", "--port", str(port)], env, log, clone)
    try:
        assert wait_for_server_info(url, process, timeout=180), log.read_text()[-3000:]
        [location] = wait_for_code_location(url, timeout=180)
        assert location["name"] == "ml_platform"
        nodes = graphql(url, "{ assetNodes { assetKey { path } } }")["assetNodes"]
        assert set(DAILY_ASSETS) <= {"/".join(node["assetKey"]["path"]) for node in nodes}
        poll_until(lambda: _answers(f"http://127.0.0.1:{mlflow_port}/health"), "the MLflow UI", timeout=120)
        servers = [child.pid for child in psutil.Process(process.pid).children()]  # each leads its own group
        assert len(servers) == 2, servers
        members = [proc for proc in psutil.process_iter(["cmdline"]) if _group_of(proc.pid) in servers]
        assert not [proc for proc in members if "huey" in " ".join(proc.info["cmdline"] or [])], "MLflow's job runner"
        os.kill(process.pid, signal.SIGINT)
        assert process.wait(timeout=90) == 0, log.read_text()[-3000:]
        poll_until(  # a killed group's last members may take a moment to be reaped
            lambda: not [proc.pid for proc in psutil.process_iter() if _group_of(proc.pid) in servers],
            "the servers' process groups to be empty",
            timeout=30,
        )
        assert not _answers(url + "/server_info") and not _answers(f"http://127.0.0.1:{mlflow_port}/health")
    finally:
        kill_process_group(process)
    output = log.read_text()
    assert f"Dagster UI on {url}" in output and f"MLflow UI on http://127.0.0.1:{mlflow_port}" in output
    assert "DAGSTER_HOME is not set" not in output


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_dg_launch_a_partition_range_of_landed_days(clone: Path, tmp_path: Path) -> None:
    """Three landed churn days through `dg launch --partition-range`: one run (the daily step's
    single-run backfill policy), in Dagster's temporary home and then in a DAGSTER_HOME that keeps it."""
    env = _bare_env(clone)
    days = ["2026-01-01", "2026-01-02", "2026-01-03"]
    subprocess.run(
        [
            str(BIN / "python"),
            "-m",
            "demo",
            "generate",
            "--use-case",
            "churn",
            "--days",
            "3",
            "--events-per-day",
            "200",
            "--end",
            days[-1],
        ],
        cwd=clone,
        env=env,
        check=True,
        timeout=120,
    )
    launch = ("launch", "--assets", "churn/raw_events", "--partition-range", f"{days[0]}...{days[-1]}")

    _dg(clone, env, *launch)
    lake = clone / "data" / "lake" / "churn" / "raw_events"
    assert sorted(path.stem for path in lake.glob("*.parquet")) == days

    home = prepare_dagster_home(tmp_path / "home")
    _dg(clone, {**env, "DAGSTER_HOME": str(home)}, *launch)
    with open_instance(home) as instance:
        [run] = instance.get_runs()
        assert run.is_success, run.status
        assert (run.tags["dagster/asset_partition_range_start"], run.tags["dagster/asset_partition_range_end"]) == (
            days[0],
            days[-1],
        )
        assert instance.get_materialized_partitions(dg.AssetKey(["churn", "raw_events"])) == set(days)
