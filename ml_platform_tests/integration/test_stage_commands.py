"""`ml-platform materialize | train | predict`: the stages from a shell, exit 1 naming each failed gate."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from demo.generators.churn import write_landing_files
from ml_platform.cli import main as cli
from ml_platform_tests.support.fixtures import START, day_keys, landing_dir


def test_a_failed_gate_exits_1_naming_day_and_reason_and_good_days_are_kept(
    data_dir: Path, dagster_home: Path, capsys: pytest.CaptureFixture
) -> None:
    files = write_landing_files(landing_dir(data_dir), START, 3, 300, seed=4)
    broken = pd.read_parquet(files[1]).drop(columns=["plan"])
    broken.to_parquet(files[1], index=False)
    assert cli(["materialize", "churn", "--stages", "raw_events"]) == 1
    output = capsys.readouterr()
    first, _, last = day_keys(count=3)
    assert f"churn: 3 day(s) {first}..{last}: FAILED" in output.out
    assert (
        f"raw_events {files[1].stem} failed: schema: partition {files[1].stem}: missing column(s) ['plan']"
        in output.err
    )
    assert "raw_events: 2 day(s) done, 1 failed" in output.out
    assert sorted(p.stem for p in (data_dir / "lake" / "churn" / "raw_events").glob("*.parquet")) == [
        files[0].stem,
        files[2].stem,
    ]


def test_the_deployments_partitions_start_bounds_the_days_a_materialize_runs(
    data_dir: Path, dagster_home: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ML_PLATFORM_PARTITIONS_START (`make ui` sets it to the demo's first landed day): landed days before it
    are not partitions, so the CLI runs the days from it, as the UI would."""
    write_landing_files(landing_dir(data_dir), START, 4, 300, seed=4)
    days = day_keys(count=4)
    monkeypatch.setenv("ML_PLATFORM_PARTITIONS_START", days[2])
    assert cli(["materialize", "churn", "--stages", "raw_events"]) == 0
    assert f"churn: 2 day(s) {days[2]}..{days[3]}: ok" in capsys.readouterr().out
    assert sorted(p.stem for p in (data_dir / "lake" / "churn" / "raw_events").glob("*.parquet")) == days[2:]
    assert cli(["materialize", "churn", "--to", days[1]]) == 2
    assert f"the source has no day in the start..{days[1]} within the partitions (from {days[2]})" in (
        capsys.readouterr().err
    )


def test_days_are_bounded_by_from_and_to_and_a_range_without_data_is_a_clear_error(
    data_dir: Path, dagster_home: Path, capsys: pytest.CaptureFixture
) -> None:
    write_landing_files(landing_dir(data_dir), START, 4, 300, seed=4)
    _, second, third, _ = day_keys(count=4)
    assert cli(["materialize", "churn", "--stages", "raw_events,features", "--from", second, "--to", third]) == 0
    assert f"churn: 2 day(s) {second}..{third}: ok" in capsys.readouterr().out
    assert cli(["materialize", "churn", "--from", "2030-01-01"]) == 2
    assert "the source has no day in 2030-01-01..the latest partition" in capsys.readouterr().err
    assert cli(["predict", "fraud"]) == 2
    assert "no feature days yet; run `ml-platform materialize fraud` first" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli(["materialize", "churn", "--stages", "raw_events,scores"])
