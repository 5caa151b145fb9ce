"""`source.missing_days: empty`: a day the source definitely has nothing for is a typed, empty day that counts as
zero activity, is not scored or measured, and is not counted by the training window; anything else still fails."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml_platform import steps
from ml_platform.assets import keys
from ml_platform.automation.landed_data import _days_without_file
from ml_platform.checks.rules import DRIFT_CHECK
from ml_platform.definitions import load_specs
from ml_platform.io.parquet_lake import DataLake
from ml_platform.models.training_set import choose_window
from ml_platform.resources.sources import EventSource
from ml_platform.spec import ROW_ID, UseCaseSpec
from ml_platform_tests.support.irregular import START, land_business_days, landing, weekday_spec

FRIDAY, SATURDAY, SUNDAY, MONDAY = "2025-01-03", "2025-01-04", "2025-01-05", "2025-01-06"


def day(offset: int) -> str:
    return (START + dt.timedelta(days=offset)).isoformat()


def ingested(data_dir: Path, spec: UseCaseSpec, days: list[str]) -> dict[str, steps.DayResult]:
    return {result.day: result for result in steps.ingest(EventSource(data_dir=str(data_dir)), spec, days)}


def stored_lake(data_dir: Path, spec: UseCaseSpec, days: list[str]) -> DataLake:
    """Every day ingested and written to the lake as the raw_events asset would (all must pass)."""
    lake = DataLake(base_path=str(data_dir / "lake"))
    for result in ingested(data_dir, spec, days).values():
        assert all(outcome.passed for outcome in result.outcomes), result.outcomes
        lake.write_partition(keys.raw_events(spec), result.day, result.frame)
    return lake


def stored_schema(lake: DataLake, key: object, day: str) -> object:
    """The day's Arrow schema as the lake stored it: what a range read that starts on that day reads with."""
    return pq.read_schema(lake.partition_path(key, day)).remove_metadata()


def test_a_day_without_a_file_is_stored_as_an_empty_day_typed_like_a_day_with_events(tmp_path: Path) -> None:
    spec = weekday_spec()
    days = land_business_days(tmp_path, 6, 300)
    results = ingested(tmp_path, spec, days)

    weekend = results[SATURDAY]
    assert (
        weekend.frame is not None
        and weekend.frame.empty
        and list(weekend.frame.columns) == [c.name for c in spec.columns]
    )
    assert all(outcome.passed for outcome in weekend.outcomes)
    assert {outcome.check for outcome in weekend.outcomes} == {outcome.check for outcome in results[FRIDAY].outcomes}
    messages = {outcome.check: outcome.message for outcome in weekend.outcomes}
    assert messages["landed"] == f"partition {SATURDAY}: no file: a day without events (source.missing_days: empty)"
    assert "min_rows_per_day applies to days with events" in messages["min_rows"]
    assert weekend.note == f"no events on {SATURDAY} (source.missing_days: empty): stored as an empty day"
    assert results[FRIDAY].note is None and len(results[FRIDAY].frame) > 0

    lake = stored_lake(tmp_path, spec, days)
    key = keys.raw_events(spec)
    assert stored_schema(lake, key, SATURDAY) == stored_schema(lake, key, FRIDAY), "a range read takes its first day's"
    weekend_first = lake.read(key, [SATURDAY, SUNDAY, MONDAY])
    assert len(weekend_first) == len(results[MONDAY].frame)
    assert weekend_first.dtypes.to_dict() == lake.read(key, [MONDAY]).dtypes.to_dict()


def shipped_without_a_file(name: str, event_id: bool = True) -> UseCaseSpec:
    spec = next(spec for spec in load_specs() if spec.name == name).model_dump()
    spec["source"]["missing_days"] = "empty"
    if not event_id:
        spec["columns"] = [c for c in spec["columns"] if c["name"] != spec["event_id_column"]]
        spec["event_id_column"] = None
    return UseCaseSpec.model_validate(spec)


@pytest.mark.parametrize(
    ("name", "event_id"), [("churn", True), ("fraud", True), ("fraud", False), ("prices", True), ("news", True)]
)
def test_every_shipped_shape_stores_a_day_without_events_with_typed_columns(
    name: str, event_id: bool, tmp_path: Path
) -> None:
    spec = shipped_without_a_file(name, event_id)
    result = steps.day_without_events(spec, SATURDAY, "no file")
    assert all(outcome.passed for outcome in result.outcomes), [o.message for o in result.outcomes if not o.passed]
    assert (ROW_ID in result.frame.columns) is not event_id
    lake = DataLake(base_path=str(tmp_path))
    for key, frame in ((keys.raw_events(spec), result.frame), (keys.features(spec), steps.empty_features(spec))):
        lake.write_partition(key, SATURDAY, frame)
        assert not [field.name for field in stored_schema(lake, key, SATURDAY) if pa.types.is_null(field.type)]
    assert list(steps.empty_features(spec).columns) == [*spec.key_columns, "day", *spec.feature_names]


def test_without_missing_days_empty_a_day_without_a_file_still_fails_landed(tmp_path: Path) -> None:
    days = land_business_days(tmp_path, 6, 300)
    weekend = ingested(tmp_path, weekday_spec("fail"), days)[SATURDAY]
    [landed] = weekend.outcomes
    assert weekend.frame is None and not landed.passed and landed.check == "landed"
    assert f"partition {SATURDAY}: no landed file" in landed.message


def test_a_file_without_rows_is_a_day_without_events_too(tmp_path: Path) -> None:
    days = land_business_days(tmp_path, 6, 300)
    path = landing(tmp_path) / f"{FRIDAY}.parquet"
    pd.read_parquet(path).iloc[0:0].to_parquet(path, index=False)
    friday = ingested(tmp_path, weekday_spec(), days)[FRIDAY]
    assert friday.frame.empty and all(outcome.passed for outcome in friday.outcomes)
    assert "0 rows read: a day without events" in friday.outcomes[0].message


def _directory_missing(directory: Path, other: Path) -> None:
    for path in directory.iterdir():
        path.unlink()
    directory.rmdir()


UNAVAILABLE: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "landing directory missing": (_directory_missing, "does not exist"),
    "landing directory is a file": (
        lambda directory, other: (_directory_missing(directory, other), directory.write_text("x")),
        "is not a directory",
    ),
    "landed in the other format": (
        lambda directory, other: (directory / f"{SATURDAY}.csv").write_text("event_id\n1\n"),
        f"no {SATURDAY}.parquet, but {SATURDAY}.csv landed",
    ),
    "dangling symlink": (
        lambda directory, other: (directory / f"{SATURDAY}.parquet").symlink_to(directory / "gone.parquet"),
        "not a regular file",
    ),
    "symlink out of the landing directory": (
        lambda directory, other: (directory / f"{SATURDAY}.parquet").symlink_to(other),
        "outside the landing directory",
    ),
    "a directory named like the day": (
        lambda directory, other: (directory / f"{SATURDAY}.parquet").mkdir(),
        "not a regular file",
    ),
    "unparsable file": (
        lambda directory, other: (directory / f"{SATURDAY}.parquet").write_bytes(b"PAR1 no"),
        "cannot parse",
    ),
}


@pytest.mark.parametrize("case", sorted(UNAVAILABLE))
def test_only_a_definite_absence_is_a_day_without_events(case: str, tmp_path: Path) -> None:
    """Absent is not unavailable: an entry that is there but cannot be read, or no landing directory, fails loudly."""
    days = land_business_days(tmp_path, 6, 300)
    other = tmp_path / "elsewhere.parquet"
    other.write_bytes((landing(tmp_path) / f"{FRIDAY}.parquet").read_bytes())
    damage, reason = UNAVAILABLE[case]
    damage(landing(tmp_path), other)
    saturday = ingested(tmp_path, weekday_spec(), days)[SATURDAY]
    [landed] = saturday.outcomes
    assert saturday.frame is None and landed.check == "landed" and not landed.passed
    assert f"partition {SATURDAY}" in landed.message and reason in landed.message, landed.message


def test_a_day_without_events_is_zero_activity_in_later_windows_and_has_no_feature_rows(tmp_path: Path) -> None:
    spec = weekday_spec()
    days = land_business_days(tmp_path, 13, 600)
    lake = stored_lake(tmp_path, spec, days)
    results = {r.day: r for r in steps.build_features(lake, keys.raw_events(spec), spec, days, chunk_days=4)}
    assert all(outcome.passed for result in results.values() for outcome in result.outcomes)

    key = keys.features(spec)
    for result in results.values():
        lake.write_partition(key, result.day, result.frame)
    for weekend_day in (SATURDAY, SUNDAY, day(10), day(11)):
        result = results[weekend_day]
        assert (
            result.frame.empty
            and result.note == f"no events on {weekend_day} (source.missing_days: empty): no feature rows"
        )
        assert stored_schema(lake, key, weekend_day) == stored_schema(lake, key, MONDAY)
    assert len(lake.read(key, [SATURDAY, SUNDAY, MONDAY])) == len(results[MONDAY].frame) > 0

    events = lake.read(keys.raw_events(spec), days)
    events["day"] = events["event_time"].dt.strftime("%Y-%m-%d")
    logins = events[events["event_type"] == "login"]
    monday = results[MONDAY].frame.set_index("customer_id")
    week = logins[logins["day"].between(day(-1), MONDAY)]  # the 7 days ending Monday, two of them without events
    expected = week.groupby("customer_id").size().reindex(monday.index, fill_value=0)
    assert (monday["logins_7d"] == expected).all()
    last_login = logins[logins["day"] <= MONDAY].groupby("customer_id")["day"].max().reindex(monday.index)
    since = (pd.Timestamp(MONDAY) - pd.to_datetime(last_login)).dt.days.fillna(14).clip(upper=14)
    assert (monday["days_since_login"] == since).all()
    assert (monday.loc[last_login == FRIDAY, "days_since_login"] == 3).all() and (last_login == FRIDAY).any()


@pytest.mark.parametrize("name", ["churn", "fraud", "news"])
def test_a_chunk_of_days_without_events_has_empty_feature_days_whatever_the_grain(name: str, tmp_path: Path) -> None:
    """A field campaign's month without a file: whole feature chunks without a single event."""
    spec = shipped_without_a_file(name)
    lake = DataLake(base_path=str(tmp_path))
    days = [day(offset) for offset in range(6)]
    for each in days:
        lake.write_partition(keys.raw_events(spec), each, steps.empty_events(spec))
    results = list(steps.build_features(lake, keys.raw_events(spec), spec, days, chunk_days=3))
    assert [result.day for result in results] == days and all(result.frame.empty and result.note for result in results)
    assert all(outcome.passed for result in results for outcome in result.outcomes)


class NeverCalled:
    def predict(self, features: pd.DataFrame) -> np.ndarray:
        raise AssertionError("a day without events is not scored")


def test_a_day_without_events_gets_empty_predictions_and_no_drift_with_a_note(tmp_path: Path) -> None:
    spec = weekday_spec()
    lake = DataLake(base_path=str(tmp_path / "lake"))
    lake.write_partition(keys.raw_events(spec), SATURDAY, steps.empty_events(spec))
    lake.write_partition(keys.features(spec), SATURDAY, steps.empty_features(spec))

    [scored] = steps.score(NeverCalled(), "4", lake, keys.features(spec), spec, [SATURDAY])
    assert scored.frame.empty and object not in set(scored.frame.dtypes), "strings stay typed: Arrow would store null"
    [outcome] = scored.outcomes
    assert outcome.passed and outcome.check == "scores_valid"
    assert (
        scored.note
        == outcome.message.removeprefix(f"partition {SATURDAY}: ")
        == (f"no events on {SATURDAY} (source.missing_days: empty): nothing to score")
    )

    inputs = steps.DriftInputs(keys.raw_events(spec), keys.features(spec), keys.predictions(spec))
    lake.write_partition(keys.raw_events(spec), "2024-12-01", steps.empty_events(spec))  # far before: no warm-up
    [drift] = steps.measure_drift(lake, inputs, spec, {}, "4", [SATURDAY])
    [measured] = drift.outcomes
    assert drift.frame.empty and measured.passed and measured.check == DRIFT_CHECK
    assert measured.metadata["measured"] is False and drift.note.endswith("): no drift measured")


def test_the_training_window_and_its_holdout_count_days_with_events() -> None:
    spec = weekday_spec()  # window 20 days, holdout 5, label horizon 7 calendar days
    raw = [day(offset) for offset in range(70)]
    weekends = {d for d in raw if dt.date.fromisoformat(d).weekday() >= 5}
    window = choose_window(spec, raw, raw, weekends)
    assert not set(window.days) & weekends
    assert len(window.days) <= 20 and len(window.holdout) == 5
    assert (dt.date.fromisoformat(window.holdout[0]) - dt.date.fromisoformat(window.train[-1])).days > 7, (
        "purge in calendar days"
    )
    calendar = choose_window(spec, raw, raw)
    assert set(calendar.holdout) & weekends, "counted by calendar, the holdout would hold days without rows"


def test_a_landed_day_brings_the_unstored_days_without_a_file_since_the_landed_day_before_it() -> None:
    keys_ = [day(offset) for offset in range(20)]
    landed = [day(2), day(5), day(9), day(12)]
    assert _days_without_file(landed, [day(9)], stored={day(6)}, partition_keys=keys_) == [day(7), day(8)]
    assert _days_without_file(landed, [day(2)], stored=set(), partition_keys=keys_) == [], (
        "before the first file: no history"
    )
    assert _days_without_file(landed, [day(5), day(12)], stored=set(), partition_keys=keys_) == [
        day(3),
        day(4),
        day(10),
        day(11),
    ]
