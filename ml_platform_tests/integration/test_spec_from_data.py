"""Your own files as they come (CSV, a label blank where the outcome is unknown, string categories, no id
column): `new-use-case --from-data` drafts the spec, and materialize, train and predict run it unedited."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ml_platform.cli import main as cli
from ml_platform.resources.sources import source_resource
from ml_platform.spec import load_spec

DAYS = 24
CARRIERS = [f"C{i}" for i in range(12)]
AIRPORTS = [f"AP{i:02d}" for i in range(40)]


def land_flights(directory: Path, seed: int = 5) -> dict[str, int]:
    """Daily CSV exports of flights; `delayed` depends on carrier, distance and hour, blank when unknown.
    Returns the number of unknown outcomes per day."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True)
    unknown = {}
    for offset in range(DAYS):
        day = dt.date(2025, 3, 1) + dt.timedelta(days=offset)
        n = 300
        carrier = rng.choice(CARRIERS, n)
        hour = rng.integers(5, 23, n)
        distance = rng.gamma(3.0, 300.0, n).round(1)
        risk = -2.0 + 0.25 * np.array([CARRIERS.index(c) for c in carrier]) / 3 + 0.12 * (hour - 5) + distance / 2000
        delayed = (rng.random(n) < 1 / (1 + np.exp(-risk))).astype(float)
        blank = rng.random(n) < 0.08
        delayed[blank] = np.nan
        unknown[day.isoformat()] = int(blank.sum())
        stamps = [dt.datetime.combine(day, dt.time(int(h), int(m))).isoformat() + "Z" for h, m in zip(hour, rng.integers(0, 60, n))]
        pd.DataFrame({
            "departure": stamps, "carrier": carrier, "origin": rng.choice(AIRPORTS, n), "distance_km": distance,
            "delayed": pd.array(delayed, dtype="Float64").astype("Int64"),
        }).to_csv(directory / f"{day.isoformat()}.csv", index=False)
    return unknown


def test_a_drafted_spec_infers_dtypes_limits_roles_and_features(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    land_flights(data_dir / "exports" / "flights")
    specs = tmp_path / "specs"
    assert cli(["new-use-case", "flights", "--dir", str(specs), "--from-data", str(data_dir / "exports" / "flights"),
                "--entity", "origin"]) == 0, capsys.readouterr().err
    spec = load_spec(specs / "flights.yaml")
    drafted = yaml.safe_load((specs / "flights.yaml").read_text())
    columns = {c["name"]: c for c in drafted["columns"]}
    assert spec.event_id_column is None and spec.timestamp_column == "departure" and spec.label.column == "delayed"
    assert columns["delayed"]["dtype"] == "int64" and 0 < columns["delayed"]["max_null_fraction"] < 0.5
    assert columns["departure"]["dtype"] == "timestamp" and columns["distance_km"]["min_value"] == 0
    assert {f.name: f.agg for f in spec.features}["carrier"] == "category"

    # the drafted spec running unedited through materialize, train and predict: test_real_data.py, on real data


def test_ambiguous_or_missing_roles_are_named_with_the_option_to_use(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    land_flights(data_dir / "exports" / "flights")
    assert cli(["new-use-case", "flights", "--dir", str(tmp_path), "--from-data", str(data_dir / "exports" / "flights")]) == 2
    assert "several columns could be the entity" in capsys.readouterr().err and not (tmp_path / "flights.yaml").exists()
    assert cli(["new-use-case", "flights", "--dir", str(tmp_path), "--from-data", str(tmp_path)]) == 2
    assert "no day files named YYYY-MM-DD.csv" in capsys.readouterr().err
    assert cli(["new-use-case", "flights", "--dir", str(tmp_path), "--from-data", str(data_dir / "exports" / "flights"),
                "--entity", "origin", "--label", "nope"]) == 2
    assert "--label 'nope' is not a column" in capsys.readouterr().err

    assert cli(["new-use-case", "flights", "--dir", str(tmp_path), "--from-data", str(data_dir / "exports" / "flights"),
                "--entity", "origin", "--label", "delayed", "--positive", "yes"]) == 2
    assert "--positive is for a string label; 'delayed' is int64" in capsys.readouterr().err


def test_month_first_timestamps_are_drafted_with_their_format_and_read_as_written(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
) -> None:
    exports = data_dir / "exports" / "flights"
    land_flights(exports)
    for path in exports.iterdir():  # the same exports as a US system writes them: 03/14/2025 06:05:00
        frame = pd.read_csv(path, dtype=str)
        frame["departure"] = pd.to_datetime(frame["departure"]).dt.strftime("%m/%d/%Y %H:%M:%S")
        frame.to_csv(path, index=False)
    assert cli(["new-use-case", "flights", "--dir", str(tmp_path), "--from-data", str(exports),
                "--entity", "origin"]) == 0, capsys.readouterr().err
    spec = load_spec(tmp_path / "flights.yaml")
    assert spec.source.timestamp_format == "%m/%d/%Y %H:%M:%S" and spec.timestamp_column == "departure"

    day = source_resource(spec, data_dir).read_day(spec, "2025-03-14")
    assert day["departure"].dt.strftime("%Y-%m-%d").eq("2025-03-14").all() and day["departure"].dt.tz is not None

    for path in exports.iterdir():  # the 12th at the latest: 03/04 could be March 4th or April 3rd
        path.unlink() if path.stem > "2025-03-12" else None
    assert cli(["new-use-case", "flights2", "--dir", str(tmp_path), "--from-data", str(exports), "--entity", "origin",
                "--timestamp", "departure"]) == 2
    assert "day-first and month-first both fit" in capsys.readouterr().err
