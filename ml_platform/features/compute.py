"""Point-in-time feature and label computation, vectorised over an entity x day grid.

Events are reduced to per-(day, entity) aggregates (counts, sums, last values, extremes, each where a
feature's filter holds), one raw day at a time when the window is read day by day; a rolling window is
a difference of cumulative sums along the day axis, so a feature for day D sees only days up to D
(entity-day rows) or up to D-1 (event rows: a transaction's velocity features describe the card before
that day). Labels look the other way: the horizon after D, or the event's own flag.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_integer_dtype

from ml_platform.parallel import ordered_map
from ml_platform.spec import EVENT_AGGS, EventFilter, FeatureSpec, UseCaseSpec

DAY = "day"


def feature_input_days(spec: UseCaseSpec, days: Sequence[str]) -> list[str]:
    """Raw-event days needed to compute features for `days` (their lookback included)."""
    first = dt.date.fromisoformat(min(days)) - dt.timedelta(days=spec.lookback_days - 1)
    return _day_range(first, dt.date.fromisoformat(max(days)))


def first_complete_day(spec: UseCaseSpec, raw_days: Sequence[str]) -> str | None:
    """The first day whose feature window lies entirely within the raw history (earlier days are warm-up)."""
    if not raw_days:
        return None
    return (dt.date.fromisoformat(min(raw_days)) + dt.timedelta(days=spec.lookback_days - 1)).isoformat()


def label_input_days(spec: UseCaseSpec, days: Sequence[str]) -> list[str]:
    """Raw-event days that decide the labels of `days`: the horizon after each, or the days themselves."""
    horizon = spec.label.horizon_days
    first = dt.date.fromisoformat(min(days)) + dt.timedelta(days=1 if horizon else 0)
    return _day_range(first, dt.date.fromisoformat(max(days)) + dt.timedelta(days=horizon))


def _plain_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """Nullable integer and boolean columns (a CSV column of ints with blanks, say) as numpy dtypes: float64
    with NaN where a value is missing, else int64 / bool. The numpy code below reads numpy arrays, and a
    missing value stays missing."""
    conversions = {
        name: "float64" if frame[name].isna().any() else ("bool" if is_bool_dtype(dtype) else "int64")
        for name, dtype in frame.dtypes.items()
        if isinstance(dtype, pd.api.extensions.ExtensionDtype) and (is_integer_dtype(dtype) or is_bool_dtype(dtype))
    }
    return frame.astype(conversions) if conversions else frame


def numeric_events(events: pd.DataFrame, spec: UseCaseSpec) -> pd.DataFrame:
    """`_plain_numbers`, with a string flag label ("YES"/"NO") as 1.0/0.0 and NaN where the outcome is unknown."""
    events = _plain_numbers(events)
    positive = spec.label.positive
    if positive is None or spec.label.column not in events.columns:
        return events
    label = events[spec.label.column]
    return events.assign(**{spec.label.column: label.eq(positive).astype("float64").mask(label.isna())})


def compute_features(events: pd.DataFrame, spec: UseCaseSpec, days: Sequence[str]) -> pd.DataFrame:
    """Feature rows for `days`: one per (active entity, day), or one per event for event-grain specs."""
    days = sorted(days)
    if spec.grain == "event":
        events = _prepared(events, spec)
        first = dt.date.fromisoformat(days[0]) - dt.timedelta(days=spec.lookback_days - 1)
        return _event_rows(events, spec, _Grid(events, spec, first, dt.date.fromisoformat(days[-1])), days)
    return entity_day_features([events], spec, days)


def entity_day_features(
    frames: Iterable[pd.DataFrame],
    spec: UseCaseSpec,
    days: Sequence[str],
    entities: np.ndarray | None = None,
    threads: int = 1,
) -> pd.DataFrame:
    """Entity-day feature rows for `days` from the raw events of their windows, given as frames of whole days
    in day order (one frame, or one per day to hold a single day of events in memory at a time). Each frame
    is reduced to per-(day, entity) aggregates at once; windows roll over those. `entities`: every entity of
    the frames, sorted (default: those of the only frame). With `entities` given, `threads` frames are reduced
    at once and `threads` features rolled at once; aggregates are added in frame order, so the rows are the
    same for any `threads`."""
    days = sorted(days)
    first = dt.date.fromisoformat(days[0]) - dt.timedelta(days=spec.lookback_days - 1)
    n_days = (dt.date.fromisoformat(days[-1]) - first).days + 1
    daily = _DailyAggregates(n_days)
    index = None if entities is None else pd.Index(entities)

    def reduce(frame: pd.DataFrame) -> tuple[range, dict[AggregateKey, np.ndarray]] | None:
        frame = _prepared(frame, spec)
        if frame.empty:
            return None
        span = _day_span(frame, spec, first, n_days)
        grid = _Grid(
            frame, spec, first + dt.timedelta(days=span.start), first + dt.timedelta(days=span.stop - 1), entities=index
        )
        found = {**_activity(grid, frame, spec), **_aggregates(grid, frame, spec.expanded_features)}
        return span, {key: values.astype(_DailyAggregates.dtype(key), copy=False) for key, values in found.items()}

    if index is None:  # one frame: its own entities
        frames = list(frames)
        if frames:
            entities = known_entities(_prepared(frames[0], spec)[spec.entity_column])
            index = pd.Index(entities)
        threads = 1
    if index is not None:  # pandas builds an index's hash table on first lookup: once, before threads share it
        index.get_indexer(index[:1])
    for reduced in ordered_map(reduce, frames, threads):
        if reduced is not None:
            daily.add(*reduced)
    if entities is None or not daily.arrays:
        return pd.DataFrame(columns=[spec.entity_column, DAY, *spec.feature_names])
    target = np.array([(dt.date.fromisoformat(day) - first).days for day in days])
    active = _rolling_sum(daily.arrays[ACTIVITY], spec.lookback_days)[target] > 0
    if spec.label.terminal:  # an entity whose flag already fired (a churned customer) is not scored again
        active &= ~_accumulate_days(np.maximum, daily.arrays[FIRED] > 0)[target]
    # np.nonzero walks the grid row by row: the rows come ordered by day, then entity (`entities` is sorted),
    # so the frame needs no sort (a sort would copy every column while the aggregates are still held)
    day_rows, entity_columns = np.nonzero(active)
    out = pd.DataFrame({spec.entity_column: entities[entity_columns], DAY: np.array(days, dtype=object)[day_rows]})

    def column(feature: FeatureSpec) -> np.ndarray:
        values = _roll(feature, daily.arrays.__getitem__)[target][day_rows, entity_columns]
        return _transform(values.astype(float), feature)

    for feature, values in zip(
        spec.expanded_features, ordered_map(column, spec.expanded_features, threads), strict=True
    ):
        out[feature.name] = values
    return out


def grid_bytes_per_entity(spec: UseCaseSpec, n_days: int, threads: int) -> int:
    """What one entity costs `entity_day_features` over `n_days` window days: its per-day aggregates (4 bytes
    a count, 8 other kinds), and the temporaries (~24 bytes a day: cumulative sums) of the `threads` features
    rolled at once."""
    aggregates = {key for feature in spec.expanded_features for key in _aggregate_keys(feature)}
    stored = sum(4 if key[0] in COUNTED else 8 for key in aggregates) + 4 + 4 * int(spec.label.terminal)
    return n_days * (stored + 24 * threads)


def known_entities(values: pd.Series | np.ndarray) -> np.ndarray:
    """The distinct entities, sorted (missing included, last): the columns of the (day, entity) grids."""
    values = np.asarray(values)
    if values.dtype.kind in "iu":  # no missing value to place: a hash pass and a sort of the distinct ids
        return np.sort(pd.unique(values))
    return np.asarray(pd.factorize(values, sort=True, use_na_sentinel=False)[1])


def merged_entities(parts: Sequence[np.ndarray]) -> np.ndarray:
    """`known_entities` of the concatenated `parts`, each already `known_entities` (one raw day's, computed in
    its reading thread): integer ids merge the sorted runs (timsort finds them: about a quarter of hashing the
    window's ids again, in the one thread that waits for every day); others are factorized."""
    values = np.concatenate(parts)
    if values.dtype.kind not in "iu":
        return known_entities(values)
    merged = np.sort(values, kind="stable")
    first = np.ones(len(merged), dtype=bool)
    np.not_equal(merged[1:], merged[:-1], out=first[1:])
    return merged[first]


def _prepared(events: pd.DataFrame, spec: UseCaseSpec) -> pd.DataFrame:
    return _where_columns_as_categories(numeric_events(events, spec), spec)


def _day_span(frame: pd.DataFrame, spec: UseCaseSpec, first: dt.date, n_days: int) -> range:
    """The window's day indexes a frame's events fall on (clipped to the window)."""
    stamps = _utc_stamps(frame, spec)
    offsets = (
        stamps.to_numpy(dtype=f"datetime64[{stamps.dt.unit}]").astype("datetime64[D]") - np.datetime64(first, "D")
    ).astype(np.int64)
    return range(int(np.clip(offsets.min(), 0, n_days - 1)), int(np.clip(offsets.max(), 0, n_days - 1)) + 1)


def compute_labels(events: pd.DataFrame, spec: UseCaseSpec, rows: pd.DataFrame) -> pd.Series:
    """The label of each feature row (NaN where the label's source data is absent; a class name for event_class)."""
    if rows.empty:
        return pd.Series([], dtype="float64", name="label")
    if spec.label.kind == "event_class":  # the event's own class, a string (null where unknown)
        classes = events.set_index(spec.event_key)[spec.label.column]
        return pd.Series(rows[spec.event_key].map(classes).to_numpy(dtype=object), index=rows.index, name="label")
    events = numeric_events(events, spec)
    if spec.label.kind == "event_flag":
        flag_of = events.set_index(spec.event_key)[spec.label.column]
        return pd.Series(rows[spec.event_key].map(flag_of).to_numpy(dtype=float), index=rows.index, name="label")
    days = sorted(rows[DAY].unique())
    horizon = spec.label.horizon_days
    last = dt.date.fromisoformat(days[-1]) + dt.timedelta(days=horizon)
    grid = _Grid(events, spec, dt.date.fromisoformat(days[0]), last, extra_entities=rows[spec.entity_column].unique())
    day_index = np.array([grid.day_index(day) for day in rows[DAY]])
    entity_index = grid.entity_index(rows[spec.entity_column].to_numpy())
    if spec.label.kind == "next_value":
        last_values = grid.last_values(events[spec.label.column].to_numpy(dtype=float))
        return pd.Series(last_values[day_index + horizon, entity_index], index=rows.index, name="label")
    flags = grid.counts(events[spec.label.column].fillna(0).to_numpy(dtype=float) > 0)
    cumulative = np.vstack([np.zeros((1, flags.shape[1])), np.cumsum(flags, axis=0)])
    fired = cumulative[day_index + 1 + horizon, entity_index] - cumulative[day_index + 1, entity_index]
    return pd.Series((fired > 0).astype("float64"), index=rows.index, name="label")


class _Grid:
    """Maps events onto a dense (day, entity) grid spanning [first, last]."""

    def __init__(
        self,
        events: pd.DataFrame,
        spec: UseCaseSpec,
        first: dt.date,
        last: dt.date,
        extra_entities: np.ndarray | None = None,
        keys: np.ndarray | None = None,
        entities: pd.Index | None = None,
    ) -> None:
        """`keys`: each event's entity (default the spec's entity column; a `by` feature's key codes).
        `entities`: the grid's columns, sorted, when they are known beyond these events (a window read day by day)."""
        self.first = first
        self.n_days = (last - first).days + 1
        stamps = _utc_stamps(events, spec)
        self.stamps = stamps
        epoch_days = stamps.to_numpy(dtype=f"datetime64[{stamps.dt.unit}]").astype(
            "datetime64[D]"
        )  # UTC, no copy via objects
        self.offsets = (epoch_days - np.datetime64(first, "D")).astype(np.int64)
        if keys is None:  # the entity's events; with no entity, one history for all (only day offsets are used)
            keys = (
                events[spec.entity_column].to_numpy() if spec.entity_column else np.zeros(len(events), dtype=np.int64)
            )
        if entities is not None:  # a hash lookup: searchsorted's random probes into a large sorted array are slower
            self.entities, self.codes = entities.to_numpy(), entities.get_indexer(pd.Index(keys))
        else:
            known = keys if extra_entities is None else np.concatenate([keys, extra_entities])
            codes, uniques = pd.factorize(
                known, sort=True, use_na_sentinel=False
            )  # one hash pass, sorted like np.unique
            self.entities, self.codes = np.asarray(uniques), codes[: len(keys)]
        self.in_range = (self.offsets >= 0) & (self.offsets < self.n_days)
        self.all_in_range = bool(self.in_range.all())  # usual: the read covered exactly the grid's days
        self.flat = self.offsets * len(self.entities) + self.codes

    def day_index(self, day: str) -> int:
        return (dt.date.fromisoformat(day) - self.first).days

    def entity_index(self, values: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.entities, values)

    def counts(self, mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Events per (day, entity) where `mask` holds (int64), or the sum of their `weights` (float64)."""
        keep = mask if self.all_in_range else mask & self.in_range
        size = self.n_days * len(self.entities)
        if keep.all():  # every event counts: no gather copy of the (large) flat index
            binned = np.bincount(self.flat, weights=weights, minlength=size)
        else:
            binned = np.bincount(self.flat[keep], weights=None if weights is None else weights[keep], minlength=size)
        return binned.reshape(self.n_days, len(self.entities))

    def last_values(self, values: np.ndarray) -> np.ndarray:
        """Each entity's last non-null value of each day (NaN where it has none that day)."""
        keep = self.in_range & ~np.isnan(values)
        order = np.argsort(self.stamps.to_numpy()[keep], kind="stable")
        daily = np.full(self.n_days * len(self.entities), np.nan)
        daily[self.flat[keep][order]] = values[keep][order]  # later events overwrite earlier ones
        return daily.reshape(self.n_days, len(self.entities))


# What a window feature needs per (day, entity), keyed (kind, column, where column, where value): the
# additive kinds are summed over frames; "last", "max" and "min" are filled where a frame has a value.
AggregateKey = tuple[Any, ...]
ADDITIVE = {"count", "sum", "valid", "activity", "fired"}
COUNTED = {"count", "valid", "activity", "fired"}  # stored as int32: exact, and half the memory of float64
ACTIVITY, FIRED = ("activity",), ("fired",)  # any event at all; the label's flag (terminal labels)


def _aggregate_keys(feature: FeatureSpec) -> list[AggregateKey]:
    where = (feature.where.column, feature.where.equals) if feature.where else (None, None)
    if feature.agg in ("count", "days_since_last"):
        return [("count", None, *where)]
    if feature.agg == "mean":
        return [("sum", feature.column, *where), ("valid", feature.column, *where)]
    return [(feature.agg, feature.column, *where)]  # sum, last, max, min


def _aggregates(grid: _Grid, events: pd.DataFrame, features: Sequence[FeatureSpec]) -> dict[AggregateKey, np.ndarray]:
    """Each aggregate the features need, as a (day, entity) grid of the events' days (each computed once)."""
    found: dict[AggregateKey, np.ndarray] = {}
    for key in dict.fromkeys(key for feature in features for key in _aggregate_keys(feature)):
        kind, column, where_column, equals = key
        mask = _matches(events, EventFilter(column=where_column, equals=equals) if where_column else None)
        if kind == "count":
            found[key] = grid.counts(mask)
            continue
        values = events[column].to_numpy(dtype=float)
        valid = mask & ~np.isnan(values)
        if kind == "last":
            found[key] = grid.last_values(np.where(mask, values, np.nan))
        elif kind == "sum":
            found[key] = grid.counts(valid, np.nan_to_num(values))
        elif kind == "valid":
            found[key] = grid.counts(valid)
        else:  # max, min
            cells = pd.DataFrame({"flat": grid.flat[valid & grid.in_range], "value": values[valid & grid.in_range]})
            extreme = cells.groupby("flat")["value"].agg(kind)
            daily = np.full(grid.n_days * len(grid.entities), np.nan)
            daily[extreme.index.to_numpy()] = extreme.to_numpy()
            found[key] = daily.reshape(grid.n_days, -1)
    return found


def _activity(grid: _Grid, events: pd.DataFrame, spec: UseCaseSpec) -> dict[AggregateKey, np.ndarray]:
    """Who had any event each day, and (terminal labels) whose flag fired."""
    found = {ACTIVITY: grid.counts(np.ones(len(events), dtype=bool))}
    if spec.label.terminal:
        found[FIRED] = grid.counts(events[spec.label.column].fillna(0).to_numpy(dtype=float) > 0)
    return found


class _DailyAggregates:
    """The window's per-(day, entity) aggregates, filled frame by frame (each frame covers its own days; every
    frame with events yields every aggregate, so all are present once one frame was added)."""

    def __init__(self, n_days: int) -> None:
        self.n_days = n_days
        self.arrays: dict[AggregateKey, np.ndarray] = {}

    @staticmethod
    def dtype(key: AggregateKey) -> type:
        """How an aggregate is stored; a frame's reduction casts to it in its own thread, so adding it (in frame
        order, in the one thread that collects every frame) is a bare in-place sum."""
        return np.int32 if key[0] in COUNTED else np.float64

    def add(self, span: range, found: dict[AggregateKey, np.ndarray]) -> None:
        for key, values in found.items():
            stored = self.arrays.get(key)
            if stored is None:
                shape = (self.n_days, values.shape[1])
                stored = self.arrays[key] = (
                    np.zeros(shape, dtype=self.dtype(key)) if key[0] in ADDITIVE else np.full(shape, np.nan)
                )
            part = stored[span.start : span.stop]
            if key[0] in ADDITIVE:
                part += values
            else:
                np.copyto(part, values, where=~np.isnan(values))


def _roll(feature: FeatureSpec, aggregate: Callable[[AggregateKey], np.ndarray]) -> np.ndarray:
    """A (day, entity) grid of the feature as of the end of each day, from its daily aggregates."""
    keys, window = _aggregate_keys(feature), feature.window_days
    daily = aggregate(keys[0])
    if feature.agg == "count":
        return _rolling_sum(daily, window)
    if feature.agg == "days_since_last":
        day_numbers = np.arange(daily.shape[0], dtype=float)[:, None]
        last_seen = _accumulate_days(np.maximum, np.where(daily > 0, day_numbers, -np.inf))
        return np.minimum(day_numbers - last_seen, float(window))
    if feature.agg == "last":
        return _lagged_last(daily, feature.lag_days)
    if feature.agg in ("sum", "mean"):
        sums = _rolling_sum(daily, window).round(6)
        if feature.agg == "sum":
            return sums
        counts = _rolling_sum(aggregate(keys[1]), window)
        return np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    rolled = pd.DataFrame(daily).rolling(window, min_periods=1).agg(feature.agg)
    return rolled.fillna(0.0).to_numpy()


def _window_grid(grid: _Grid, events: pd.DataFrame, feature: FeatureSpec) -> np.ndarray:
    """A (day, entity) grid of the feature as of the end of each day, from events in memory (event grain)."""
    return _roll(feature, _aggregates(grid, events, [feature]).__getitem__)


def _lagged_last(daily: np.ndarray, lag: int) -> np.ndarray:
    """Last known value `lag` days back; before an entity's history starts, its first value as of the day."""
    carried = pd.DataFrame(daily).ffill().to_numpy()
    lagged = np.vstack([np.full((lag, daily.shape[1]), np.nan), carried[: daily.shape[0] - lag]]) if lag else carried
    return np.where(np.isnan(lagged), carried, lagged)  # no value `lag` days back yet: fall back to the latest known


def _event_rows(events: pd.DataFrame, spec: UseCaseSpec, grid: _Grid, days: list[str]) -> pd.DataFrame:
    day_of_event = (np.datetime64(grid.first, "D") + grid.offsets.astype("timedelta64[D]")).astype(str).astype(object)
    rows = np.flatnonzero(np.isin(day_of_event, days))
    out = pd.DataFrame(
        {
            **{column: events[column].to_numpy()[rows] for column in spec.key_columns},
            DAY: day_of_event[rows],
        }
    )
    previous_day = grid.offsets[rows] - 1  # velocity describes the entity before the event's day
    keyed: dict[tuple[str, ...], _Grid] = {}  # one grid per `by` key, built once
    codes: dict[tuple[str, ...], np.ndarray] = {}  # one integer per event and key, computed once
    for feature in spec.expanded_features:
        if feature.agg in ("category", "text"):  # the model reads it as it is; missing stays missing
            out[feature.name] = pd.array(events[feature.column].to_numpy(dtype=object)[rows], dtype="string")
            continue
        if feature.agg in EVENT_AGGS:
            values = _event_attribute(events, spec, feature)[rows]
        elif feature.window_ends == "event":
            by = tuple(feature.by) if feature.by else _entity_key(spec)
            codes.setdefault(by, _key_codes(events, list(by)))
            values = _as_of_window(events, spec, feature, codes[by])[rows]
        elif feature.by:
            by = tuple(feature.by)
            if by not in keyed:
                codes.setdefault(by, _key_codes(events, list(by)))
                keyed[by] = _Grid(
                    events, spec, grid.first, grid.first + dt.timedelta(days=grid.n_days - 1), keys=codes[by]
                )
            values = (
                _window_grid(keyed[by], events, feature)[previous_day, keyed[by].codes[rows]]
                if len(rows)
                else np.array([])
            )
        else:
            values = _window_grid(grid, events, feature)[previous_day, grid.codes[rows]] if len(rows) else np.array([])
        out[feature.name] = _transform(np.asarray(values, dtype=float), feature)
    return out.sort_values([DAY, spec.event_key], kind="stable").reset_index(drop=True)


def _key_codes(events: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """One integer per distinct combination of `columns` (a composite key), missing values included."""
    return events.groupby(columns, sort=False, dropna=False).ngroup().to_numpy()


def _as_of_window(events: pd.DataFrame, spec: UseCaseSpec, feature: FeatureSpec, keys: np.ndarray) -> np.ndarray:
    """Per event: the count/sum/mean over its key's events in [t - window, t), t its own timestamp: history
    up to the instant before the event (earlier the same day included), never the event itself or later."""
    stamps = _utc_stamps(events, spec).dt.tz_localize(None).to_numpy()
    millis = (
        (stamps - stamps.min()).astype("timedelta64[ms]").astype(np.int64) if len(stamps) else np.array([], np.int64)
    )
    span = int(millis.max()) + feature.window_days * 86_400_000 + 1 if len(millis) else 1
    position = keys.astype(np.int64) * span + millis  # sorted by key, then time; keys never overlap
    order = np.argsort(position, kind="stable")
    sorted_position = position[order]
    mask = _matches(events, feature.where)
    values = np.ones(len(events)) if feature.agg == "count" else events[feature.column].to_numpy(dtype=float)
    included = mask & ~np.isnan(values)
    totals = np.concatenate([[0.0], np.cumsum(np.where(included, values, 0.0)[order])])
    counts = np.concatenate([[0.0], np.cumsum(included[order])])
    start = np.searchsorted(sorted_position, position - feature.window_days * 86_400_000, side="left")
    end = np.searchsorted(sorted_position, position, side="left")  # strictly before the event's instant
    total, count = totals[end] - totals[start], counts[end] - counts[start]
    if feature.agg == "mean":
        return np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return total.round(6)


def _event_attribute(events: pd.DataFrame, spec: UseCaseSpec, feature: FeatureSpec) -> np.ndarray:
    if feature.agg == "value":
        return events[feature.column].to_numpy(dtype=float)
    if feature.agg == "flag":
        return _matches(events, feature.where).astype(float)
    return _utc_stamps(events, spec).dt.hour.to_numpy(dtype=float)


def _matches(events: pd.DataFrame, where: EventFilter | None) -> np.ndarray:
    """Which events pass a feature's `where` (all when it has none)."""
    if where is None:
        return np.ones(len(events), dtype=bool)
    return (events[where.column] == where.equals).to_numpy(dtype=bool)


def filter_only_columns(spec: UseCaseSpec) -> list[str]:
    """String columns that only `where` filters read: read and compared as categories, a filter compares
    integer codes instead of every event's string (ten filters on event_type: ten passes over strings)."""
    other_uses = {
        *spec.key_columns,
        *(f.column for f in spec.features if f.column),
        *(column for f in spec.features for column in f.by or []),
    }
    filtered = {f.where.column for f in spec.expanded_features if f.where} - other_uses
    return sorted(column.name for column in spec.columns if column.name in filtered and column.dtype == "string")


def _where_columns_as_categories(events: pd.DataFrame, spec: UseCaseSpec) -> pd.DataFrame:
    columns = [c for c in filter_only_columns(spec) if c in events.columns and events[c].dtype == object]
    return events.astype({c: "category" for c in columns}) if columns else events


def _utc_stamps(events: pd.DataFrame, spec: UseCaseSpec) -> pd.Series:
    """The event timestamps as UTC datetimes; the lake already stores them so, and `pd.to_datetime` on a
    datetime column still hashes every value (about 0.1 s per million events)."""
    stamps = events[spec.timestamp_column]
    if isinstance(stamps.dtype, pd.DatetimeTZDtype) and str(stamps.dtype.tz) == "UTC":
        return stamps
    return pd.to_datetime(stamps, utc=True)


def _transform(values: np.ndarray, feature: FeatureSpec) -> np.ndarray:
    return np.log1p(np.maximum(values, 0.0)) if feature.transform == "log1p" else values


def _rolling_sum(daily: np.ndarray, window: int) -> np.ndarray:
    """Each row's sum over itself and the `window - 1` rows before it (one cumulative sum, one subtraction)."""
    rolled = _accumulate_days(np.add, daily)
    rolled[window:] -= rolled[:-window].copy()
    return rolled


def _accumulate_days(ufunc: np.ufunc, daily: np.ndarray) -> np.ndarray:
    """`ufunc.accumulate(daily, axis=0)` (a running sum or maximum over the day axis) one day-row at a time:
    along axis 0 numpy walks each entity's column a whole row apart (a cache miss per value: seconds on a
    35-day x 300k-entity grid), a row at a time is contiguous. The same operations in the same order."""
    out = np.empty(daily.shape, dtype=ufunc.accumulate(daily[:1], axis=0).dtype)
    if len(daily):
        out[0] = daily[0]
    for row in range(1, len(daily)):
        ufunc(out[row - 1], daily[row], out=out[row])
    return out


def _day_range(first: dt.date, last: dt.date) -> list[str]:
    return [(first + dt.timedelta(days=i)).isoformat() for i in range(max(0, (last - first).days + 1))]


def _entity_key(spec: UseCaseSpec) -> tuple[str, ...]:
    """The columns an event's own history is keyed by when a feature names none: its entity."""
    if spec.entity_column is None:
        raise ValueError(f"{spec.name}: a feature windowed per event needs `by` or an entity column")
    return (spec.entity_column,)
