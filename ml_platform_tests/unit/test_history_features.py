"""History by several keys and as-of windows at event grain, tested for leakage like the day windows: a
later event never changes an earlier event's features, and an event never counts itself."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ml_platform.definitions import load_specs
from ml_platform.features.compute import compute_features
from ml_platform.spec import UseCaseSpec

DAY = "2025-03-10"


def fraud_with(features: list[dict]) -> UseCaseSpec:
    fraud = next(spec for spec in load_specs() if spec.name == "fraud").model_dump()
    return UseCaseSpec.model_validate(
        {**fraud, "features": [{"name": "log_amount", "agg": "value", "column": "amount"}, *features]}
    )


def events(rows: list[tuple[str, int, str, str, float]]) -> pd.DataFrame:
    """(transaction id, card, merchant category, ISO time, amount)."""
    frame = pd.DataFrame(rows, columns=["transaction_id", "card_id", "merchant_category", "event_time", "amount"])
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True)
    return frame.assign(channel="pos", device_new=0, distance_km=1.0, is_fraud=0)


AS_OF = [
    {"name": "card_txns_1h_asof", "agg": "count", "window_days": 1, "window_ends": "event"},
    {"name": "card_spend_asof", "agg": "sum", "column": "amount", "window_days": 1, "window_ends": "event"},
    {"name": "merchant_txns_7d", "agg": "count", "window_days": 7, "by": ["merchant_category", "channel"]},
]
HISTORY = [
    ("t0", 1, "travel", "2025-03-09T20:00:00", 10.0),  # the day before, within 24 h of t2..t4
    ("t1", 2, "travel", "2025-03-09T08:00:00", 99.0),  # another card, same merchant category
    ("t2", 1, "grocery", f"{DAY}T09:00:00", 20.0),
    ("t3", 1, "grocery", f"{DAY}T09:00:00", 30.0),  # same instant as t2: neither sees the other
    ("t4", 1, "travel", f"{DAY}T15:00:00", 40.0),
]


def features_of(frame: pd.DataFrame, spec: UseCaseSpec) -> pd.DataFrame:
    return compute_features(frame, spec, [DAY]).set_index("transaction_id")


def test_as_of_windows_include_earlier_events_of_the_same_day_and_never_the_event_itself() -> None:
    spec = fraud_with(AS_OF)
    features = features_of(events(HISTORY), spec)
    assert features.loc[["t2", "t3", "t4"], "card_txns_1h_asof"].tolist() == [1.0, 1.0, 3.0]
    assert features.loc[["t2", "t3", "t4"], "card_spend_asof"].tolist() == [10.0, 10.0, 60.0]


def test_later_events_never_change_earlier_features() -> None:
    spec = fraud_with(AS_OF)
    before = features_of(events(HISTORY), spec)
    later = [*HISTORY, ("t5", 1, "travel", f"{DAY}T23:59:00", 500.0), ("t6", 1, "grocery", "2025-03-11T01:00:00", 7.0)]
    after = features_of(events(later), spec)
    pd.testing.assert_frame_equal(after.loc[before.index, before.columns], before)


def test_history_by_a_composite_key_counts_that_key_up_to_the_day_before() -> None:
    features = features_of(events(HISTORY), fraud_with(AS_OF))
    # (travel, pos) had t0 and t1 the day before; (grocery, pos) had none
    assert features.loc[["t2", "t4"], "merchant_txns_7d"].tolist() == [0.0, 2.0]


@pytest.mark.parametrize(
    ("feature", "words"),
    [
        (
            {"name": "x", "agg": "max", "column": "amount", "window_ends": "event"},
            "as-of windows (window_ends: event) support",
        ),
        ({"name": "x", "agg": "count", "by": ["nope"]}, "by: unknown column 'nope'"),
        (
            {"name": "x", "agg": "value", "column": "amount", "by": ["card_id"]},
            "by/window_ends are for window aggregates",
        ),
    ],
)
def test_history_options_are_validated(feature: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        fraud_with([feature])


def test_as_of_windows_scale_to_many_keys_without_mixing_them() -> None:
    rng = np.random.default_rng(0)
    n = 5_000
    start = dt.datetime(2025, 3, 10)
    rows = [
        (f"e{i}", int(rng.integers(0, 300)), "retail", (start + dt.timedelta(seconds=int(s))).isoformat(), 1.0)
        for i, s in enumerate(rng.integers(0, 86_000, n))
    ]
    frame = events(rows)
    features = features_of(frame, fraud_with(AS_OF[:1]))
    brute = {
        row.transaction_id: int(((frame["card_id"] == row.card_id) & (frame["event_time"] < row.event_time)).sum())
        for row in frame.sample(200, random_state=1).itertuples()
    }
    assert {tid: int(features.loc[tid, "card_txns_1h_asof"]) for tid in brute} == brute


def test_an_event_grain_with_no_entity_keys_rows_by_the_event_and_histories_by_their_own_keys() -> None:
    fraud = next(spec for spec in load_specs() if spec.name == "fraud").model_dump()
    by_card = {"name": "card_txns_1d", "agg": "count", "window_days": 1, "window_ends": "event", "by": ["card_id"]}
    spec = UseCaseSpec.model_validate(
        {
            **fraud,
            "entity_column": None,
            "features": [{"name": "log_amount", "agg": "value", "column": "amount"}, by_card],
        }
    )
    assert spec.key_columns == ["transaction_id"]
    features = compute_features(events(HISTORY), spec, [DAY]).set_index("transaction_id")
    assert list(features.columns) == ["day", "log_amount", "card_txns_1d"]
    assert features.loc[["t2", "t3", "t4"], "card_txns_1d"].tolist() == [1.0, 1.0, 3.0]
    with pytest.raises(ValueError, match="with no entity_column, a window feature needs by"):
        UseCaseSpec.model_validate({**fraud, "entity_column": None})
    churn = next(spec for spec in load_specs() if spec.name == "churn").model_dump()
    with pytest.raises(ValueError, match="entity_column: Field required"):
        UseCaseSpec.model_validate({**churn, "entity_column": None})
