"""CLI arguments are validated with clear errors; generating data never overwrites landed files."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_platform.cli import main as cli


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["generate", "--days", "0"], "expected a positive integer, got 0"),
        (["generate", "--end", "2025-13-40"], "expected a date as YYYY-MM-DD, got '2025-13-40'"),
        (["generate", "--events-per-day", "many"], "expected a positive integer, got 'many'"),
        (["generate", "--format", "xlsx"], "invalid choice: 'xlsx'"),
        (["rollback", "churn", "--to", "0"], "expected a positive integer, got 0"),
        (["promote", "churn", "2"], "the following arguments are required: --reason"),
    ],
)
def test_bad_arguments_exit_2_naming_the_argument(arguments: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exited:
        cli(arguments)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_values_exit_2_with_the_reason(data_dir: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(data_dir.parent / "dagster_home"))
    assert cli(["generate", "--use-case", "nope"]) == 2
    assert "unknown use case 'nope'" in capsys.readouterr().err
    assert cli(["generate", "--end", "2024-06-01", "--days", "3"]) == 2
    assert "before the spec's start_date 2025-01-01" in capsys.readouterr().err
    assert cli(["rollback", "nope"]) == 2
    assert "unknown use case 'nope'" in capsys.readouterr().err
    assert cli(["rollback", "churn"]) == 1, "the rollback job runs, and fails saying why"
    assert "no 'previous_champion' alias to roll back to" in capsys.readouterr().err


def test_generate_lands_each_day_once_and_keeps_existing_files(data_dir: Path) -> None:
    assert cli(["generate", "--end", "2025-02-03", "--days", "3", "--events-per-day", "200"]) == 0
    landing = data_dir / "landing" / "churn"
    assert sorted(p.name for p in landing.iterdir()) == ["2025-02-01.parquet", "2025-02-02.parquet", "2025-02-03.parquet"]
    first = (landing / "2025-02-02.parquet").read_bytes()
    assert cli(["generate", "--end", "2025-02-03", "--days", "3", "--events-per-day", "999", "--seed", "5"]) == 0
    assert (landing / "2025-02-02.parquet").read_bytes() == first
