"""CLI arguments (`ml-platform`, `python -m demo`) are validated with clear errors; generating data never
overwrites landed files. (The `ml-platform` processes themselves: integration/test_cli_processes.py.)"""

from __future__ import annotations

import argparse
from pathlib import Path

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
def test_bad_arguments_exit_2_naming_the_argument(
    main, arguments: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(arguments)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_values_exit_2_with_the_reason(
    data_dir: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(data_dir.parent / "dagster_home"))
    assert demo_cli(["generate", "--use-case", "nope"]) == 2
    assert "python -m demo generate: unknown use case 'nope'" in capsys.readouterr().err
    assert demo_cli(["generate", "--end", "2024-06-01", "--days", "3"]) == 2
    assert "before the spec's start_date 2025-01-01" in capsys.readouterr().err
    assert cli(["rollback", "nope"]) == 2
    assert "unknown use case 'nope'" in capsys.readouterr().err
    capsys.readouterr()


def test_generate_lands_each_day_once_and_keeps_existing_files(data_dir: Path) -> None:
    assert demo_cli(["generate", "--end", "2025-02-03", "--days", "3", "--events-per-day", "200"]) == 0
    landing = data_dir / "landing" / "churn"
    assert sorted(p.name for p in landing.iterdir()) == [
        "2025-02-01.parquet",
        "2025-02-02.parquet",
        "2025-02-03.parquet",
    ]
    first = (landing / "2025-02-02.parquet").read_bytes()
    assert demo_cli(["generate", "--end", "2025-02-03", "--days", "3", "--events-per-day", "999", "--seed", "5"]) == 0
    assert (landing / "2025-02-02.parquet").read_bytes() == first


@pytest.mark.parametrize("build", [build_parser, build_demo_parser])
def test_every_command_and_option_has_help(build) -> None:
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


def test_make_ui_starts_the_partitions_at_the_first_landed_day_and_serves_mlflow_on_the_local_store(
    tmp_path: Path,
) -> None:
    """`python -m demo ui`: the first landed day of any file-sourced use case (hidden and misnamed entries are
    not days), and the MLflow UI on the platform's own store at MLFLOW_UI_URL's port; a URL it cannot serve
    fails naming MLFLOW_UI_URL."""
    from demo.ui import first_landed_day, mlflow_ui_command
    from ml_platform.settings import Settings

    env = {"ML_PLATFORM_DATA_DIR": str(tmp_path), "MLFLOW_UI_URL": "http://127.0.0.1:5077", "HOME": str(tmp_path)}
    settings = Settings.from_env(env)
    assert first_landed_day(settings) is None
    for directory, name in [
        ("churn", "2026-03-04.parquet"),
        ("churn", ".2026-01-01.parquet.tmp"),
        ("churn", "notes.txt"),
        ("fraud", "2026-02-10.csv"),
        ("fraud", "2026-05-01.csv"),
    ]:
        (tmp_path / "landing" / directory).mkdir(parents=True, exist_ok=True)
        (tmp_path / "landing" / directory / name).write_text("")
    assert first_landed_day(settings) == "2026-02-10"

    command = mlflow_ui_command(settings)
    assert command is not None
    assert command[command.index("--backend-store-uri") + 1] == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    assert command[command.index("--port") + 1] == "5077" and command[command.index("--host") + 1] == "127.0.0.1"
    with pytest.raises(ValueError, match="MLFLOW_UI_URL must be http://HOST:PORT"):
        mlflow_ui_command(Settings.from_env({**env, "MLFLOW_UI_URL": "http://127.0.0.1"}))
