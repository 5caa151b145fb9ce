"""The `ml-platform` command as a process: champion changes that cannot happen fail fast, naming the reason."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import dagster as dg


def test_champion_changes_that_cannot_happen_fail_fast_without_a_run(data_dir: Path, tmp_path: Path) -> None:
    """One clear line and exit code 2, no Dagster run (so nothing for metrics and alerts to count), no trace."""
    home = tmp_path / "dagster_home"
    env = {**os.environ, "DAGSTER_HOME": str(home), "ML_PLATFORM_DATA_DIR": str(data_dir)}
    cli_path = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "ml-platform"
    for arguments, message in [
        (
            ["rollback", "churn"],
            "ml-platform rollback: churn: no 'previous_champion' alias to roll back to; pass a version with --to",
        ),
        (
            ["promote", "churn", "99", "--reason", "try"],
            "ml-platform promote: churn: no registered version '99' (versions: none)",
        ),
    ]:
        done = subprocess.run([str(cli_path), *arguments], env=env, capture_output=True, text=True, timeout=120)
        assert (done.returncode, done.stdout, done.stderr.strip()) == (2, "", message), done.stderr
    assert not home.exists() or not dg.DagsterInstance.from_config(str(home)).get_runs(), "no run was launched"
