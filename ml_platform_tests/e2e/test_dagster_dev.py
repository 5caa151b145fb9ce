"""A Dagster user's first habit: `dagster dev` in a fresh clone with no DAGSTER_HOME set.

Dagster then keeps the instance in a temporary `.tmp_dagster_home_*` directory under the working
directory; the platform's event log storage (named in dagster.yaml) must find its directory there, as
Dagster's own default storage does, and the UI must serve the code location.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ml_platform_tests.support.graphql import wait_for_code_location
from ml_platform_tests.support.servers import REPO_ROOT, free_port, kill_process_group, spawn, wait_for_server_info

pytestmark = pytest.mark.slow


def _fresh_clone(tmp_path: Path) -> Path:
    """The committed tree plus this working tree's changes, as a clone would have them, without any state."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(clone)], check=True)
    changed = subprocess.run(["git", "ls-files", "-m", "-o", "--exclude-standard"], cwd=REPO_ROOT, check=True,
                             capture_output=True, text=True).stdout.split()
    for name in changed:  # uncommitted work under test travels along
        source, target = REPO_ROOT / name, clone / name
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    return clone


def test_dagster_dev_serves_the_ui_from_a_fresh_clone_without_dagster_home(tmp_path: Path) -> None:
    clone = _fresh_clone(tmp_path)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DAGSTER_", "ML_PLATFORM_"))}
    env["PYTHONPATH"] = str(clone)  # the clone's code, not this checkout's editable install
    validate = subprocess.run([str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
                              cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    assert validate.returncode == 0, validate.stdout[-3000:] + validate.stderr[-3000:]

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "dagster_dev.log"
    process = spawn([str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1",
                     "-p", str(port)], env, log, clone)
    try:
        assert wait_for_server_info(url, process, timeout=180), log.read_text()[-3000:]
        [location] = wait_for_code_location(url, timeout=180)
        assert location["name"] == "ml_platform"
        assert list(clone.glob(".tmp_dagster_home_*/history/runs")), "the event logs live in Dagster's temporary home"
    finally:
        kill_process_group(process)
    assert "DAGSTER_HOME is not set" not in log.read_text()
