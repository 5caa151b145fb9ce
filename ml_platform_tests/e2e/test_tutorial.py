"""docs/add-your-own-use-case.md, as a reader runs it: every ```bash block of the tutorial, verbatim and in
order, in one shell in a copy of the repository (its .venv shared, already installed)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ml_platform_tests.support.servers import REPO_ROOT

TUTORIAL = REPO_ROOT / "docs" / "add-your-own-use-case.md"


def tutorial_commands() -> str:
    blocks = re.findall(r"```bash\n(.*?)```", TUTORIAL.read_text(), flags=re.S)
    assert len(blocks) >= 4, "the tutorial's shell blocks moved: update this test's reading of them"
    return "\n".join(blocks)


def copy_of_repository(target: Path) -> Path:
    """The tracked files with their timestamps (so make sees the shared .venv as up to date)."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in tracked:
        if (REPO_ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, target / name)
    (target / ".venv").symlink_to(REPO_ROOT / ".venv")
    return target


@pytest.mark.slow
def test_the_tutorial_commands_run_verbatim_and_end_with_a_champion_and_predictions(tmp_path: Path) -> None:
    repo = copy_of_repository(tmp_path / "repo")
    up_to_date = subprocess.run(["make", "-q", ".venv/.installed"], cwd=repo)
    assert up_to_date.returncode == 0, "run `make install` first: this test must not reinstall the shared .venv"
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("ML_PLATFORM_", "DAGSTER_", "MLFLOW_"))
    }
    result = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + tutorial_commands()],
        cwd=repo,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "champion: MLflow model 'machine_failures' version 1" in output, output[-2000:]
    predictions = sorted((repo / "data" / "lake" / "machine_failures" / "predictions").glob("*.parquet"))
    assert len(predictions) == 7, output[-2000:]
