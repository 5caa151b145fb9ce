"""CLI arguments (`ml-platform`, `ml-platform-demo`) are validated with clear errors; generating data never
overwrites landed files."""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from demo.cli import build_parser as build_demo_parser
from demo.cli import main as demo_cli
from ml_platform.cli import build_parser
from ml_platform.cli import main as cli


@pytest.mark.parametrize(
    ("main", "arguments", "message"),
    [
        (demo_cli, ["generate", "--days", "0"], "expected a positive integer, got 0"),
        (demo_cli, ["generate", "--end", "2025-13-40"], "expected a date as YYYY-MM-DD, got '2025-13-40'"),
        (demo_cli, ["generate", "--events-per-day", "many"], "expected a positive integer, got 'many'"),
        (demo_cli, ["run", "--format", "xlsx"], "invalid choice: 'xlsx'"),
        (cli, ["rollback", "churn", "--to", "0"], "expected a positive integer, got 0"),
        (cli, ["promote", "churn", "2"], "the following arguments are required: --reason"),
    ],
)
def test_bad_arguments_exit_2_naming_the_argument(main, arguments: list[str], message: str, capsys: pytest.CaptureFixture) -> None:  # noqa: ANN001
    with pytest.raises(SystemExit) as exited:
        main(arguments)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_values_exit_2_with_the_reason(data_dir: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(data_dir.parent / "dagster_home"))
    assert demo_cli(["generate", "--use-case", "nope"]) == 2
    assert "ml-platform-demo generate: unknown use case 'nope'" in capsys.readouterr().err
    assert demo_cli(["generate", "--end", "2024-06-01", "--days", "3"]) == 2
    assert "before the spec's start_date 2025-01-01" in capsys.readouterr().err
    assert cli(["rollback", "nope"]) == 2
    assert "unknown use case 'nope'" in capsys.readouterr().err
    capsys.readouterr()


def test_champion_changes_that_cannot_happen_fail_fast_without_a_run(data_dir: Path, tmp_path: Path) -> None:
    """One clear line and exit code 2, no Dagster run (so nothing for metrics and alerts to count), no trace."""
    home = tmp_path / "dagster_home"
    env = {**os.environ, "DAGSTER_HOME": str(home), "ML_PLATFORM_DATA_DIR": str(data_dir)}
    cli_path = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "ml-platform"
    for arguments, message in [
        (["rollback", "churn"], "ml-platform rollback: churn: no 'previous_champion' alias to roll back to; pass a version with --to"),
        (["promote", "churn", "99", "--reason", "try"], "ml-platform promote: churn: no registered version '99' (versions: none)"),
    ]:
        done = subprocess.run([str(cli_path), *arguments], env=env, capture_output=True, text=True, timeout=120)
        assert (done.returncode, done.stdout, done.stderr.strip()) == (2, "", message), done.stderr
    assert not home.exists() or not dg.DagsterInstance.from_config(str(home)).get_runs(), "no run was launched"


def test_generate_lands_each_day_once_and_keeps_existing_files(data_dir: Path) -> None:
    assert demo_cli(["generate", "--end", "2025-02-03", "--days", "3", "--events-per-day", "200"]) == 0
    landing = data_dir / "landing" / "churn"
    assert sorted(p.name for p in landing.iterdir()) == ["2025-02-01.parquet", "2025-02-02.parquet", "2025-02-03.parquet"]
    first = (landing / "2025-02-02.parquet").read_bytes()
    assert demo_cli(["generate", "--end", "2025-02-03", "--days", "3", "--events-per-day", "999", "--seed", "5"]) == 0
    assert (landing / "2025-02-02.parquet").read_bytes() == first


@pytest.mark.parametrize("build", [build_parser, build_demo_parser])
def test_every_command_and_option_has_help(build) -> None:  # noqa: ANN001
    parser = build()
    [commands] = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    undocumented = [
        f"{name} {'/'.join(action.option_strings) or action.dest}"
        for name, command in commands.choices.items()
        for action in command._actions
        if not isinstance(action, argparse._HelpAction) and not action.help
    ]
    assert not undocumented, undocumented
    assert all(choice.help for choice in commands._choices_actions)
