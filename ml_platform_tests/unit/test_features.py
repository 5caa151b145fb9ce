"""Point-in-time features: day D sees only events of D-window+1..D; labels only the horizon after D."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from demo.generators.churn import generate_churn_events, write_landing_files
from demo.generators.prices import generate_price_events
from ml_platform.assets import keys
from ml_platform.definitions import build_definitions, load_specs
from ml_platform.features.compute import (
    DAY,
    compute_features,
    compute_labels,
    entity_day_features,
    feature_input_days,
    known_entities,
    label_input_days,
    merged_entities,
)
from ml_platform.io.parquet_lake import DataLake
from ml_platform.runner import materialize_stages
from ml_platform.steps import WINDOW_ROWS_BUDGET, build_features, features_chunk_days
from ml_platform_tests.support.fixtures import START, day_keys, landing_dir

TARGET = "2025-02-05"


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    return pd.concat([frame for _, frame in generate_churn_events(START, 45, 1_200, seed=11)], ignore_index=True)


def hand_computed(events: pd.DataFrame, spec, customer: int, day: str) -> dict[str, float]:
    """Features of one customer on one day, computed the slow obvious way."""
    end = pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=1)
    mine = events[events["customer_id"] == customer]
    values = {}
    for feature in spec.features:
        start = end - pd.Timedelta(days=feature.window_days)
        window = mine[(mine["event_time"] >= start) & (mine["event_time"] < end)]
        if feature.where is not None:
            window = window[window[feature.where.column] == feature.where.equals]
        if feature.agg == "count":
            values[feature.name] = float(len(window))
        elif feature.agg == "sum":
            values[feature.name] = float(window[feature.column].sum())
        elif feature.agg == "days_since_last":
            if window.empty:
                values[feature.name] = float(feature.window_days)
            else:
                last = window["event_time"].max().normalize()
                values[feature.name] = float((pd.Timestamp(day, tz="UTC") - last).days)
    return values


def test_features_match_a_hand_computation(events: pd.DataFrame, churn_spec) -> None:
    frame = compute_features(events, churn_spec, [TARGET])
    assert len(frame) > 100
    rng = np.random.default_rng(0)
    for customer in rng.choice(frame["customer_id"].to_numpy(), size=15, replace=False):
        row = frame[frame["customer_id"] == customer].iloc[0]
        expected = hand_computed(events, churn_spec, customer, TARGET)
        for name, value in expected.items():
            assert row[name] == pytest.approx(value, abs=1e-6), (customer, name)


def test_future_events_never_change_features(events: pd.DataFrame, churn_spec) -> None:
    cutoff = pd.Timestamp(TARGET, tz="UTC") + pd.Timedelta(days=1)
    past = events[events["event_time"] < cutoff]
    future = events[events["event_time"] >= cutoff].copy()
    future["event_type"] = "login"  # a flood of very different future behaviour
    future["cancelled"] = 1
    tampered = pd.concat([past, future, future.assign(event_id=future["event_id"] + "x")], ignore_index=True)
    original = compute_features(events, churn_spec, [TARGET])
    assert len(original) > 0
    pd.testing.assert_frame_equal(original, compute_features(tampered, churn_spec, [TARGET]))
    pd.testing.assert_frame_equal(original, compute_features(past, churn_spec, [TARGET]))


def test_a_string_flag_label_is_one_where_it_equals_its_positive_value(events: pd.DataFrame, churn_spec) -> None:
    as_text = events.assign(cancelled=events["cancelled"].map({1: "YES", 0: "NO"}))
    spec = churn_spec.model_copy(update={"label": churn_spec.label.model_copy(update={"positive": "YES"})})
    rows = compute_features(events, churn_spec, [TARGET])
    pd.testing.assert_frame_equal(rows, compute_features(as_text, spec, [TARGET]))  # churned customers drop out alike
    labels = compute_labels(events, churn_spec, rows)
    assert 0 < labels.mean() < 1
    pd.testing.assert_series_equal(labels, compute_labels(as_text, spec, rows))


@pytest.mark.parametrize("use_case", ["churn", "prices"])  # counts, sums, days since; last values with 28 lags
def test_a_window_read_day_by_day_gives_the_features_of_one_read(use_case: str) -> None:
    spec = next(s for s in load_specs() if s.name == use_case)
    generate = {
        "churn": lambda: generate_churn_events(START, 45, 1_200, seed=11),
        "prices": lambda: generate_price_events(START, 45, 40, seed=3),
    }[use_case]
    by_day = [frame for _, frame in generate()]  # what build_features reads, one day at a time
    events = pd.concat(by_day, ignore_index=True)
    days = ["2025-02-03", "2025-02-04", "2025-02-05"]
    at_once = compute_features(events, spec, days)
    assert len(at_once) >= 3 * 40
    day_by_day = entity_day_features(iter(by_day), spec, days, known_entities(events[spec.entity_column]))
    pd.testing.assert_frame_equal(at_once, day_by_day)


def test_feature_rows_come_ordered_by_day_and_entity_and_each_day_is_its_own_frame(tmp_path, churn_spec) -> None:
    """Rows are made in (day, entity) order, so the range is split by position; a day held by whoever consumes
    it (the asset writing it, a test) is a frame of its own, never a view that keeps the whole chunk alive."""
    by_day = generate_churn_events(START, 34, 300, seed=5)
    lake = DataLake(base_path=str(tmp_path))
    for day, frame in by_day:
        lake.write_partition(keys.raw_events(churn_spec), day, frame)
    days = day_keys(count=34)[-4:]
    results = list(build_features(lake, keys.raw_events(churn_spec), churn_spec, days, chunk_days=2))
    frames = [result.frame for result in results]
    assert [result.day for result in results] == days and all(len(frame) > 20 for frame in frames)
    together = pd.concat(frames, ignore_index=True)
    ordered = together.sort_values([DAY, churn_spec.entity_column], kind="stable", ignore_index=True)
    pd.testing.assert_frame_equal(together, ordered)
    assert all(set(frame[DAY]) == {day} for day, frame in zip(days, frames, strict=True))
    for frame in frames:  # no block of a day's frame is a view of a larger array
        assert all(
            block.values.base is None or block.values.base.size <= block.values.size
            for block in frame._mgr.blocks
            if isinstance(block.values, np.ndarray)
        )


@pytest.mark.parametrize(
    "days",
    [
        [np.array([5, 3, 9, 3]), np.array([9, 1]), np.array([], dtype=np.int64), np.array([7, 5, 2])],  # integer ids
        [np.array(["b", None, "a"], dtype=object), np.array(["c", "a"], dtype=object)],  # strings, one missing
        [np.array([2.5, np.nan]), np.array([np.nan, 1.0, 2.5])],  # floats with missing values
    ],
)
def test_a_window_s_entities_merged_from_its_days_are_those_of_all_its_events(days: list[np.ndarray]) -> None:
    merged = merged_entities([known_entities(day) for day in days])
    expected = known_entities(np.concatenate(days))
    assert merged.dtype == expected.dtype
    assert pd.Series(merged).equals(pd.Series(expected))  # sorted, each once, missing last
    assert len(merged) == len(pd.unique(np.concatenate(days)))


def test_feature_chunks_shrink_as_days_grow_so_memory_stays_bounded() -> None:
    assert features_chunk_days(31, 70_000, 28) == 31  # 100k churn events a day: the requested chunk
    assert features_chunk_days(31, 700_000, 28) == WINDOW_ROWS_BUDGET // 700_000 - 27 == 8  # 1M events a day
    assert features_chunk_days(31, 5_000_000, 28) == 1  # never less than a day
    assert features_chunk_days(31, 0, 28) == 31  # nothing landed yet


def test_window_and_label_input_days(churn_spec) -> None:
    window = feature_input_days(churn_spec, [TARGET])
    assert window[0] == "2025-01-09" and window[-1] == TARGET and len(window) == 28
    horizon = label_input_days(churn_spec, [TARGET])
    assert horizon == [(dt.date(2025, 2, 6) + dt.timedelta(days=i)).isoformat() for i in range(7)]


def test_labels_come_only_from_the_following_horizon(events: pd.DataFrame, churn_spec) -> None:
    rows = compute_features(events, churn_spec, [TARGET])
    labels = compute_labels(events, churn_spec, rows)
    end = pd.Timestamp(TARGET, tz="UTC") + pd.Timedelta(days=1)
    horizon = events[(events["event_time"] >= end) & (events["event_time"] < end + pd.Timedelta(days=7))]
    cancelled = set(horizon.loc[horizon["cancelled"] == 1, "customer_id"])
    expected = rows["customer_id"].isin(cancelled).astype("int64")
    assert labels.sum() > 0
    assert (labels.to_numpy() == expected.to_numpy()).all()


def test_asset_reads_only_the_window_so_later_raw_days_do_not_leak(data_dir, churn_spec) -> None:
    """Through Dagster: features for D are identical before and after later raw days change."""
    write_landing_files(landing_dir(data_dir), START, 40, 800, seed=5)
    defs = build_definitions(load_specs())
    instance = dg.DagsterInstance.ephemeral()
    days = day_keys(count=40)
    assert materialize_stages(defs, churn_spec, ["raw_events", "features"], instance, days[:30]).success
    lake = DataLake(base_path=str(data_dir / "lake"))
    before = lake.read(keys.features(churn_spec), [days[29]])

    assert materialize_stages(defs, churn_spec, ["raw_events"], instance, days[30:]).success
    assert materialize_stages(defs, churn_spec, ["features"], instance, [days[29]]).success
    pd.testing.assert_frame_equal(before, lake.read(keys.features(churn_spec), [days[29]]))


def test_chunked_range_runs_give_the_same_features_as_one_chunk(data_dir, churn_spec) -> None:
    """Bounded memory on long ranges must not change a single value."""
    write_landing_files(landing_dir(data_dir), START, 20, 500, seed=9)
    defs = build_definitions(load_specs())
    instance = dg.DagsterInstance.ephemeral()
    days = day_keys(count=20)
    lake = DataLake(base_path=str(data_dir / "lake"))
    assert materialize_stages(defs, churn_spec, ["raw_events", "features"], instance, days).success
    whole = lake.read(keys.features(churn_spec), days)
    chunked = {"ops": {"churn__daily": {"config": {"chunk_days": 3}}}}
    assert materialize_stages(defs, churn_spec, ["features"], instance, days, run_config=chunked).success
    pd.testing.assert_frame_equal(whole, lake.read(keys.features(churn_spec), days))
