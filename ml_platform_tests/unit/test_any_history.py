"""Any real history: the same events give the same features, labels and lake files in any century from 1900
(timestamps before 1970 are negative epochs), and 10,000+ daily partitions are not enumerated on every tick."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from demo.generators import generators
from ml_platform.automation.runs import _keys_through, current_partition_keys
from ml_platform.definitions import load_specs
from ml_platform.features.compute import DAY, compute_features, compute_labels
from ml_platform.io.parquet_lake import DataLake
from ml_platform.spec import UseCaseSpec

START = dt.date(2025, 1, 1)
DAYS = 45
# a window across 1970-01-01 (negative to positive epochs), the earliest start allowed, across 2000-01-01
MOVED_TO = [dt.date(1969, 12, 1), dt.date(1900, 1, 1), dt.date(1999, 12, 1)]


@pytest.fixture(scope="module")
def specs() -> dict[str, UseCaseSpec]:
    return {spec.name: spec for spec in load_specs()}


def events_of(use_case: str) -> pd.DataFrame:
    days = generators()[use_case](START, DAYS, 400, 3)
    return pd.concat([frame for _, frame in days], ignore_index=True)


def moved(frame: pd.DataFrame, spec: UseCaseSpec, days: int) -> pd.DataFrame:
    return frame.assign(**{spec.timestamp_column: frame[spec.timestamp_column] + pd.Timedelta(days=days)})


def day_strings(first: dt.date, count: int) -> list[str]:
    return [(first + dt.timedelta(days=offset)).isoformat() for offset in range(count)]


@pytest.mark.parametrize("use_case", ["churn", "fraud", "prices"])
@pytest.mark.parametrize("first", MOVED_TO, ids=str)
def test_features_and_labels_are_the_same_in_any_century(
    specs: dict[str, UseCaseSpec], use_case: str, first: dt.date
) -> None:
    spec, events = specs[use_case], events_of(use_case)
    shift = (first - START).days
    scored = slice(spec.lookback_days, DAYS - spec.label.horizon_days)  # whole windows, labels known
    expected = compute_features(events, spec, day_strings(START, DAYS)[scored])
    actual = compute_features(moved(events, spec, shift), spec, day_strings(first, DAYS)[scored])

    assert len(actual) == len(expected) > 0
    assert actual[DAY].tolist() == [
        (dt.date.fromisoformat(day) + dt.timedelta(days=shift)).isoformat() for day in expected[DAY]
    ]
    pd.testing.assert_frame_equal(actual.drop(columns=DAY), expected.drop(columns=DAY))
    pd.testing.assert_series_equal(
        compute_labels(moved(events, spec, shift), spec, actual), compute_labels(events, spec, expected)
    )


def test_the_lake_keeps_timestamps_before_1970(tmp_path: Path) -> None:
    lake = DataLake(base_path=str(tmp_path))
    key = dg.AssetKey(["history", "raw_events"])
    stamps = pd.to_datetime(
        ["1900-01-01T00:00:00Z", "1969-12-31T23:59:59.999Z", "1970-01-01T00:00:00.001Z"], utc=True, format="ISO8601"
    )
    frame = pd.DataFrame({"event_time": stamps, "value": [1.0, 2.0, 3.0]})
    for day in ("1900-01-01", "1969-12-31"):
        lake.write_partition(key, day, frame)

    assert lake.existing_partitions(key) == ["1900-01-01", "1969-12-31"]
    back = lake.read(key, ["1900-01-01"])
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    assert back["event_time"].dt.tz is not None and back["event_time"].iloc[0].value < 0  # a negative epoch


def test_partitions_from_1900_are_enumerated_once_per_new_day(monkeypatch: pytest.MonkeyPatch) -> None:
    partitions = dg.DailyPartitionsDefinition(start_date="1900-01-01")
    expected = partitions.get_partition_keys()
    enumerations = []
    original = dg.DailyPartitionsDefinition.get_partition_keys_in_range

    def counted(self, *args, **kwargs):
        enumerations.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(dg.DailyPartitionsDefinition, "get_partition_keys_in_range", counted)
    _keys_through.cache_clear()
    assert current_partition_keys(partitions) == expected and expected[0] == "1900-01-01" and len(expected) > 46_000
    assert current_partition_keys(partitions) == expected
    assert len(enumerations) == 1
    assert current_partition_keys(dg.DailyPartitionsDefinition(start_date=f"{dt.date.today().year + 1}-01-01")) == []
