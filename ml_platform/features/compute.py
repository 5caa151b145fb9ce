"""Point-in-time feature and label computation, vectorised over an entity x day grid.

Events are binned into a dense (day, entity) grid per feature; a rolling
window is a difference of cumulative sums along the day axis, so a feature
for day D sees only days D-window+1..D and never anything later. Labels look
the other way: did the label flag fire in days D+1..D+horizon.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ml_platform.spec import FeatureSpec, UseCaseSpec

DAY = "day"


def feature_input_days(spec: UseCaseSpec, days: Sequence[str]) -> list[str]:
    """Raw-event days needed to compute features for `days` (the window before the first one included)."""
    first = dt.date.fromisoformat(min(days)) - dt.timedelta(days=spec.max_window_days - 1)
    return _day_range(first, dt.date.fromisoformat(max(days)))


def label_input_days(spec: UseCaseSpec, days: Sequence[str]) -> list[str]:
    """Raw-event days that decide the labels of `days`: the horizon after each."""
    first = dt.date.fromisoformat(min(days)) + dt.timedelta(days=1)
    return _day_range(first, dt.date.fromisoformat(max(days)) + dt.timedelta(days=spec.label.horizon_days))


def compute_features(events: pd.DataFrame, spec: UseCaseSpec, days: Sequence[str]) -> pd.DataFrame:
    """One row per (entity active in the longest window, day) with every spec feature."""
    days = sorted(days)
    grid = _Grid(events, spec, dt.date.fromisoformat(days[0]) - dt.timedelta(days=spec.max_window_days - 1), dt.date.fromisoformat(days[-1]))
    target = np.array([grid.day_index(day) for day in days])
    all_events = grid.counts(np.ones(len(events), dtype=bool))
    active = _rolling_sum(all_events, spec.max_window_days)[target] > 0
    flag = events[spec.label.column].fillna(0).to_numpy(dtype=float) > 0 if spec.label.column in events else np.zeros(len(events), bool)
    already_converted = np.maximum.accumulate(grid.counts(flag) > 0, axis=0)[target]
    day_rows, entity_columns = np.nonzero(active & ~already_converted)

    out = pd.DataFrame(
        {spec.entity_column: grid.entities[entity_columns], DAY: np.array(days, dtype=object)[day_rows]}
    )
    for feature in spec.features:
        out[feature.name] = _feature_grid(grid, events, feature)[target][day_rows, entity_columns]
    return out.sort_values([DAY, spec.entity_column], kind="stable").reset_index(drop=True)


def compute_labels(events: pd.DataFrame, spec: UseCaseSpec, rows: pd.DataFrame) -> pd.Series:
    """Label of each (entity, day) row: 1 if the label flag fires within the next horizon_days."""
    if rows.empty:
        return pd.Series([], dtype="int64")
    days = sorted(rows[DAY].unique())
    last = dt.date.fromisoformat(days[-1]) + dt.timedelta(days=spec.label.horizon_days)
    grid = _Grid(events, spec, dt.date.fromisoformat(days[0]), last, extra_entities=rows[spec.entity_column].unique())
    flags = grid.counts(events[spec.label.column].fillna(0).to_numpy(dtype=float) > 0)
    cumulative = np.vstack([np.zeros((1, flags.shape[1])), np.cumsum(flags, axis=0)])
    day_index = np.array([grid.day_index(day) for day in rows[DAY]])
    entity_index = grid.entity_index(rows[spec.entity_column].to_numpy())
    horizon = spec.label.horizon_days
    fired = cumulative[day_index + 1 + horizon, entity_index] - cumulative[day_index + 1, entity_index]
    return pd.Series((fired > 0).astype("int64"), index=rows.index, name="label")


class _Grid:
    """Maps events onto a dense (day, entity) grid spanning [first, last]."""

    def __init__(
        self, events: pd.DataFrame, spec: UseCaseSpec, first: dt.date, last: dt.date, extra_entities: np.ndarray | None = None
    ) -> None:
        self.first = first
        self.n_days = (last - first).days + 1
        stamps = pd.to_datetime(events[spec.timestamp_column], utc=True)
        epoch_days = stamps.dt.tz_localize(None).to_numpy().astype("datetime64[D]")
        offsets = (epoch_days - np.datetime64(first, "D")).astype(np.int64)
        known = events[spec.entity_column].to_numpy()
        if extra_entities is not None:
            known = np.concatenate([known, extra_entities])
        self.entities = np.unique(known)
        self.codes = np.searchsorted(self.entities, events[spec.entity_column].to_numpy())
        self.in_range = (offsets >= 0) & (offsets < self.n_days)
        self.flat = offsets * len(self.entities) + self.codes

    def day_index(self, day: str) -> int:
        return (dt.date.fromisoformat(day) - self.first).days

    def entity_index(self, values: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.entities, values)

    def counts(self, mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        keep = mask & self.in_range
        size = self.n_days * len(self.entities)
        binned = np.bincount(self.flat[keep], weights=None if weights is None else weights[keep], minlength=size)
        return binned.reshape(self.n_days, len(self.entities)).astype(float)


def _feature_grid(grid: _Grid, events: pd.DataFrame, feature: FeatureSpec) -> np.ndarray:
    mask = np.ones(len(events), dtype=bool)
    if feature.where is not None:
        mask = (events[feature.where.column] == feature.where.equals).to_numpy()
    window = feature.window_days
    if feature.agg == "count":
        return _rolling_sum(grid.counts(mask), window)
    if feature.agg == "days_since_last":
        seen = grid.counts(mask) > 0
        day_numbers = np.arange(grid.n_days, dtype=float)[:, None]
        last_seen = np.maximum.accumulate(np.where(seen, day_numbers, -np.inf), axis=0)
        return np.minimum(day_numbers - last_seen, float(window))
    values = events[feature.column].to_numpy(dtype=float)
    valid = mask & ~np.isnan(values)
    if feature.agg in ("sum", "mean"):
        sums = _rolling_sum(grid.counts(valid, np.nan_to_num(values)), window).round(6)
        if feature.agg == "sum":
            return sums
        counts = _rolling_sum(grid.counts(valid), window)
        return np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    extreme = pd.DataFrame({"flat": grid.flat[valid & grid.in_range], "value": values[valid & grid.in_range]})
    extreme = extreme.groupby("flat")["value"].agg(feature.agg)
    daily = np.full(grid.n_days * len(grid.entities), np.nan)
    daily[extreme.index.to_numpy()] = extreme.to_numpy()
    rolled = pd.DataFrame(daily.reshape(grid.n_days, -1)).rolling(window, min_periods=1).agg(feature.agg)
    return rolled.fillna(0.0).to_numpy()


def _rolling_sum(daily: np.ndarray, window: int) -> np.ndarray:
    cumulative = np.vstack([np.zeros((1, daily.shape[1])), np.cumsum(daily, axis=0)])
    lagged = np.vstack([np.zeros((window, daily.shape[1])), cumulative[:-window]])[: daily.shape[0] + 1]
    return (cumulative - lagged)[1:]


def _day_range(first: dt.date, last: dt.date) -> list[str]:
    return [(first + dt.timedelta(days=i)).isoformat() for i in range(max(0, (last - first).days + 1))]
