"""The daily pipeline steps without Dagster: read, compute and validate one day after another.

Each step yields one `DayResult` per day (the frame to store, or for a raw day larger than a Parquet
row group its batches, read again when stored; and the gate outcomes that decide whether it may be
stored), over a range processed in bounded chunks. The daily assets pass the results through their
`PartitionGate` and store them with `store_day`; `benchmarks/backfill.py` calls the same functions to
measure the work without the orchestrator, so both measure and run one implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml_platform.checks.rules import (
    DRIFT_CHECK,
    CheckOutcome,
    RawEventGates,
    drift_too_few_rows,
    drift_warm_up,
    failed,
    passed,
    unreadable_source,
    validate_drift,
    validate_events,
    validate_features,
    validate_predictions,
)
from ml_platform.features.compute import (
    DAY,
    compute_features,
    entity_day_features,
    feature_input_days,
    filter_only_columns,
    first_complete_day,
    grid_bytes_per_entity,
    known_entities,
    merged_entities,
)
from ml_platform.features.drift import METHOD, SCORE, population_stability
from ml_platform.io.parquet_lake import ROW_GROUP_ROWS, DataLake
from ml_platform.parallel import computed_ahead, ordered_map
from ml_platform.resources.sources import EventSource, SourceError
from ml_platform.resources.sources.base import NoDataForDay
from ml_platform.settings import stage_threads
from ml_platform.spec import ROW_ID, UseCaseSpec

DEFAULT_CHUNK_DAYS = 31
PREDICTED_CLASS = "predicted_class"  # a multiclass prediction: the most probable class (its probability is the score)
# Raw rows one chunk of entity-day features may span (its days plus their lookback): its per-entity daily
# aggregates stay under 2 GB for churn at 1M events/day (~700k rows/day: 8-day chunks; 10 measured 1.95 GB).
WINDOW_ROWS_BUDGET = 25_000_000
# The (window day, entity) grids one features computation may hold (see `grid_bytes_per_entity`): above it the
# entities are split into buckets computed one after another (churn at 16M events a day: ~4.4M customers in a
# 28-day window, 8 buckets; at 1M a range chunk's ~300k customers x 35 days fit in one).
GRID_BYTES_BUDGET = 1_500_000_000


# How a day without events is stored, whatever the source's types: Arrow reads a range of days with the
# first day's schema, so an empty day's columns must carry the types of a day with data (an empty object
# column would be Arrow's null type).
EMPTY_DTYPES = {
    "string": "string",
    "int64": "int64",
    "float64": "float64",
    "bool": "bool",
    "timestamp": "datetime64[ns, UTC]",
}


@dataclass
class DayResult:
    day: str
    frame: pd.DataFrame | None  # what to store if every outcome passed (a day held whole)
    outcomes: list[CheckOutcome]
    note: str | None = None  # why the day is as it is, for its partition's metadata (a day without events)
    # a day larger than one row group, never held whole: its frames in order, read again each call (frame is None)
    batches: Callable[[], Iterator[pd.DataFrame]] | None = None
    rows: int | None = None  # the day's rows (a batched day's; a held day's is its frame's length)

    @property
    def passed(self) -> bool:
        return all(outcome.passed for outcome in self.outcomes)

    @property
    def stored_rows(self) -> int:
        """The rows the day stores: its frame's, or its batches' counted as they were validated."""
        return len(self.frame) if self.frame is not None else self.rows or 0

    @property
    def has_data(self) -> bool:
        """Whether there is anything to store: a frame, or batches to read."""
        return self.frame is not None or self.batches is not None

    def frames(self) -> Iterator[pd.DataFrame]:
        """The day's rows to store, in order: its frame, or its batches read again."""
        if self.frame is not None:
            yield self.frame
        elif self.batches is not None:
            yield from self.batches()

    @property
    def note_metadata(self) -> dict[str, str]:
        """The note as partition metadata: nothing when there is none."""
        return {"note": self.note} if self.note else {}


def store_day(lake: DataLake, asset_key: Any, result: DayResult) -> int:
    """Write a day's rows (its frame or its batches, the same bytes either way) as its partition; the rows."""
    return lake.write_batches(asset_key, result.day, result.frames())


def ingest(
    source: EventSource, spec: UseCaseSpec, days: Sequence[str], threads: int | None = None
) -> Iterator[DayResult]:
    """Each day's source data, read and validated by the raw-event gates (only the spec's columns kept), `threads`
    days at a time (default `stage_threads()`), in day order. With `source.missing_days: empty`, a day the source
    has nothing for (no file, no rows) is a day without events."""
    yield from ordered_map(lambda day: _ingest_day(source, spec, day), days, threads or stage_threads())


def _ingest_day(source: EventSource, spec: UseCaseSpec, day: str) -> DayResult:
    """One day's source data through the raw gates, a batch (a row group) at a time: a day of one batch is held
    and stored as read; a larger day is read again to be stored, so it is never held whole."""
    columns = [c.name for c in spec.columns]
    without_events_ok = spec.missing_days == "empty"
    gates, held = RawEventGates(spec, day), []
    try:
        for frame in source.read_batches(spec, day):
            gates.add(frame)
            held = [frame] if gates.rows <= ROW_GROUP_ROWS else []
    except NoDataForDay as error:
        return (
            day_without_events(spec, day, "no file")
            if without_events_ok
            else DayResult(day, None, unreadable_source(day, str(error)))
        )
    except SourceError as error:
        return DayResult(day, None, unreadable_source(day, str(error)))
    if without_events_ok and gates.rows == 0:
        return day_without_events(spec, day, "0 rows read")

    def read_again() -> Iterator[pd.DataFrame]:
        return source.read_batches(spec, day)

    outcomes = gates.outcomes(lambda: held or read_again())
    if not set(columns) <= set(gates.columns):  # the schema gate names what is missing: nothing to store
        return DayResult(day, held[0] if held else None, outcomes, rows=gates.rows)
    if held:
        return DayResult(day, _stored_events(held[0], spec), outcomes, rows=gates.rows)
    return DayResult(
        day, None, outcomes, batches=lambda: _read_unchanged(read_again(), spec, day, gates.rows), rows=gates.rows
    )


def _read_unchanged(
    frames: Iterator[pd.DataFrame], spec: UseCaseSpec, day: str, validated: int
) -> Iterator[pd.DataFrame]:
    """The day read again to be stored, batch by batch; a day whose row count changed since its gates read it
    fails the write (its temporary file is removed, the stored partition kept)."""
    rows = 0
    for frame in frames:
        rows += len(frame)
        yield _stored_events(frame, spec)
    if rows != validated:
        raise SourceError(f"partition {day}: {rows} rows read to be stored, {validated} validated: the source changed")


def _stored_events(frame: pd.DataFrame, spec: UseCaseSpec) -> pd.DataFrame:
    """A batch of the day's events as stored: the spec's columns (a selection copies, so only when needed), with
    ROW_ID when the spec names no event id."""
    columns = [c.name for c in spec.columns]
    return with_event_ids(frame if list(frame.columns) == columns else frame[columns], spec)


def day_without_events(spec: UseCaseSpec, day: str, reason: str) -> DayResult:
    """An empty raw partition with the spec's columns and types: stored, so feature windows and lineage stay
    complete. Every raw gate reports on it; min_rows_per_day applies to days with events only."""
    frame = empty_events(spec)
    setting = "source.missing_days: empty"
    outcomes = [
        passed("landed", day, f"{reason}: a day without events ({setting})")
        if outcome.check == "landed"
        else passed(
            "min_rows",
            day,
            f"0 rows: a day without events ({setting}); min_rows_per_day applies to days with events",
            observed=0,
            limit=spec.gates.min_rows_per_day,
        )
        if outcome.check == "min_rows"
        else outcome
        for outcome in validate_events(frame, spec, day)
    ]
    return DayResult(day, frame, outcomes, note=without_events_note(day, "stored as an empty day"))


def without_events_note(day: str, consequence: str) -> str:
    return f"no events on {day} (source.missing_days: empty): {consequence}"


def empty_events(spec: UseCaseSpec) -> pd.DataFrame:
    """Zero raw events, typed as a day with events is stored (ROW_ID included when the spec names no event id)."""
    columns = [c.name for c in spec.columns] + ([ROW_ID] if spec.event_id_column is None else [])
    return _empty({name: spec.column(name).dtype for name in columns})


def empty_features(spec: UseCaseSpec) -> pd.DataFrame:
    """Zero feature rows, typed as a day with rows is stored."""
    kinds = {name: spec.column(name).dtype for name in spec.key_columns} | {DAY: "string"}
    kinds |= {f.name: "string" if f.agg in ("category", "text") else "float64" for f in spec.expanded_features}
    return _empty(kinds)


def _empty(kinds: Mapping[str, str]) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=EMPTY_DTYPES[kind]) for name, kind in kinds.items()})


def with_event_ids(frame: pd.DataFrame, spec: UseCaseSpec) -> pd.DataFrame:
    """The day's events with ROW_ID, a hash of the columns that identify an event, when the spec names no
    event id (the same content always gets the same id, so a re-run writes the same file)."""
    if spec.event_id_column is not None:
        return frame
    identity = frame[spec.unique_columns or [c.name for c in spec.columns]]
    ids = pd.util.hash_pandas_object(identity, index=False).map("{:016x}".format)
    return frame.assign(**{ROW_ID: ids.astype("string").to_numpy()})


def build_features(
    lake: DataLake,
    raw_key: Any,
    spec: UseCaseSpec,
    days: Sequence[str],
    chunk_days: int = DEFAULT_CHUNK_DAYS,
    threads: int | None = None,
) -> Iterator[DayResult]:
    """Point-in-time features per day from the raw days of its window, one chunk of days per lake read;
    a window with a raw gap after the first raw day fails `inputs_complete`. With `source.missing_days: empty`
    a raw day without events counts as zero activity in the windows of later days, and has no feature rows
    itself: nothing happened that day to describe or score. Entity-day specs read and reduce `threads` raw
    days at once (default `stage_threads()`); the rows do not depend on it."""
    threads = threads or stage_threads()
    needed = sorted(
        {*spec.key_columns, spec.timestamp_column, spec.label.column}
        | {f.column for f in spec.features if f.column}
        | {f.where.column for f in spec.features if f.where}
    )
    available = set(lake.existing_partitions(raw_key))
    history_start = min(available) if available else None
    categories = filter_only_columns(spec)
    if spec.grain != "event":
        sample = sorted(available & set(feature_input_days(spec, days)))[-7:]
        rows_per_day = max(lake.row_counts(raw_key, sample).values(), default=0)
        chunk_days = features_chunk_days(chunk_days, rows_per_day, spec.lookback_days)

    def day_entities(day: str) -> np.ndarray:
        if spec.entity_column is None:  # entity-day features are keyed by it (the spec requires one)
            raise ValueError(f"{spec.name}: entity-day features need an entity column")
        return known_entities(lake.read(raw_key, [day], columns=[spec.entity_column])[spec.entity_column])

    def day_events(day: str) -> pd.DataFrame:
        return lake.read(raw_key, [day], columns=needed, categories=categories)

    def chunk_features(chunk: list[str]) -> tuple[list[str], pd.DataFrame]:
        """The chunk with its feature rows: the loop unpacks the pair, so `del frame` frees the rows (zipping the
        chunks with the frames would keep the last pair, and so the rows, while the next chunk is computed)."""
        inputs = [day for day in feature_input_days(spec, chunk) if day in available]
        if not inputs:
            return chunk, pd.DataFrame(columns=[*spec.key_columns, DAY])
        if spec.grain == "event":
            events = lake.read(raw_key, inputs, columns=needed, categories=categories)
            return chunk, compute_features(events, spec, chunk)
        # `threads` raw days in memory at a time, each reduced to per-entity daily aggregates as it is read;
        # each day's distinct entities: never a window of ids at once
        entities = merged_entities(list(ordered_map(day_entities, inputs, threads)))
        return chunk, _bucketed_entity_day_features(day_events, inputs, spec, chunk, entities, threads)

    # with threads to spare, an entity-day chunk is computed while the previous chunk's days are validated and
    # stored (one more chunk of rows held; an event-grain chunk holds its whole window of events, so never two)
    ahead = threads > 1 and spec.grain != "event"
    day_chunks = chunks(days, chunk_days)
    for chunk, frame in computed_ahead(chunk_features, day_chunks) if ahead else map(chunk_features, day_chunks):
        bounds = day_bounds(frame)
        empty = frame.iloc[0:0].copy()  # a copy: a zero-row view would keep the whole chunk alive
        without_events = days_without_events(lake, spec, raw_key, chunk)
        for number, day in enumerate(chunk):
            missing = [
                d
                for d in feature_input_days(spec, [day])
                if d not in available and (history_start is None or d >= history_start)
            ]
            start, end = bounds.get(day, (0, 0))
            day_frame = frame.iloc[start:end].copy() if end > start else empty  # a day held never holds the chunk
            note = None
            if day in without_events:
                day_frame, note = empty_features(spec), without_events_note(day, "no feature rows")
            if number == len(chunk) - 1:
                del frame  # the next chunk is computed (or handed out) while only the last day yielded is held
            yield DayResult(day, day_frame, validate_features(day_frame, spec, day, missing), note)


def _bucketed_entity_day_features(
    read_day: Callable[[str], pd.DataFrame],
    inputs: Sequence[str],
    spec: UseCaseSpec,
    chunk: Sequence[str],
    entities: np.ndarray,
    threads: int,
) -> pd.DataFrame:
    """`entity_day_features` over contiguous ranges ("buckets") of the sorted entities, each small enough that its
    (window day, entity) grids fit GRID_BYTES_BUDGET: a day with millions of entities stays in bounded memory at
    the cost of reading its raw days once per bucket. An entity's features depend on its own events only, and
    each bucket's rows come in (day, entity) order, so the rows interleaved day by day are the unbucketed rows."""
    n_days = len(feature_input_days(spec, chunk))
    per_entity = grid_bytes_per_entity(spec, n_days, threads)
    buckets = max(1, -(-len(entities) * per_entity // GRID_BYTES_BUDGET))
    if buckets == 1:
        return entity_day_features(ordered_map(read_day, inputs, threads), spec, chunk, entities, threads)
    parts = []
    for bucket in np.array_split(entities, buckets):
        index = pd.Index(bucket)
        index.get_indexer(index[:1])  # the hash table built once, before threads share it

        def read_bucket(day: str, index: pd.Index = index) -> pd.DataFrame:
            frame = read_day(day)
            return frame[index.get_indexer(pd.Index(frame[spec.entity_column])) >= 0]

        part = entity_day_features(ordered_map(read_bucket, inputs, threads), spec, chunk, bucket, threads)
        if len(part):
            parts.append((part, day_bounds(part)))
    if not parts:
        return part  # no bucket has a row: an empty frame typed as an unbucketed one is
    slices = [
        part.iloc[start:end] for day in chunk for part, bounds in parts for start, end in [bounds.get(day, (0, 0))]
    ]
    return pd.concat(slices, ignore_index=True)


def days_without_events(lake: DataLake, spec: UseCaseSpec, raw_key: Any, days: Sequence[str] | None = None) -> set[str]:
    """The raw days (of `days`, default all) stored without events under `source.missing_days: empty`, from
    their Parquet footers; nothing is read for other use cases."""
    if spec.missing_days != "empty":
        return set()
    days = lake.existing_partitions(raw_key) if days is None else days
    return {day for day, rows in lake.row_counts(raw_key, days).items() if rows == 0}


def score(
    model: Any,
    version: str,
    lake: DataLake,
    features_key: Any,
    spec: UseCaseSpec,
    days: Sequence[str],
    threads: int | None = None,
) -> Iterator[DayResult]:
    """Every row of each day's features scored by `model`, one day's file at a time, a row group at a time for
    scikit-learn models (a day is scored the same in a backfill and a daily run), `threads` days at once (default
    `stage_threads()`; tree ensembles predict without the GIL), in day order; a day without features fails
    `scores_valid`. A day without events (`source.missing_days: empty`: no feature rows) is stored empty, with a
    note."""
    available = set(lake.existing_partitions(features_key))

    def score_day(day: str) -> DayResult:
        if day not in available:
            return DayResult(
                day, None, [failed("scores_valid", day, "features are not materialized", column="features")]
            )
        scored = _score_stored_day(model, lake, features_key, spec, version, day)
        if scored.empty and spec.missing_days == "empty":
            note = without_events_note(day, "nothing to score")
            return DayResult(day, _typed_strings(scored), [passed("scores_valid", day, note)], note)
        return DayResult(day, scored, validate_predictions(scored, spec, day))

    yield from ordered_map(score_day, days, threads or stage_threads())


def _score_stored_day(
    model: Any, lake: DataLake, features_key: Any, spec: UseCaseSpec, version: str, day: str
) -> pd.DataFrame:
    """A stored features day scored a row group at a time when the model scores each row alone (scikit-learn's
    trees), so the day's features are never held whole; other models (torch: a batch changes the last bits of its
    scores) score the day in one call. The scores are the same bytes either way for the models batched."""
    if not spec.model.type.startswith("sklearn"):
        return score_frame(model, lake.read(features_key, [day]), spec, version)
    parts = [score_frame(model, batch, spec, version) for batch in lake.iter_batches(features_key, day)]
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


def score_frame(
    model: Any,
    features: pd.DataFrame,
    spec: UseCaseSpec,
    version: str,
    feature_names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Scores as probabilities of the positive class, whatever the model flavor returns; for a multiclass label,
    the most probable class (`predicted_class`) and its probability. The model reads `feature_names` (default:
    the spec's features; a champion trained on another feature set reads its own)."""
    scored = features[[*spec.key_columns, DAY]].copy()
    if spec.label.task == "multiclass":
        probabilities = (
            class_probabilities(model.predict(features[list(feature_names or spec.feature_names)]), spec.classes)
            if len(features)
            else np.zeros((0, len(spec.classes)))
        )
        scored[PREDICTED_CLASS] = np.asarray(spec.classes, dtype=object)[probabilities.argmax(axis=1)]
        scored["score"] = probabilities.max(axis=1)
    elif features.empty:
        scored["score"] = pd.Series(dtype="float64")
    else:
        raw = np.asarray(model.predict(features[list(feature_names or spec.feature_names)]))
        scored["score"] = (raw[:, -1] if raw.ndim == 2 else raw).astype("float64")
    scored["model_version"] = str(version)
    return scored


def class_probabilities(predicted: Any, classes: Sequence[str]) -> np.ndarray:
    """A multiclass model's answer as an (rows, classes) array in `classes` order: a frame's columns are
    matched by name (a registered model answers with one column per class), an array is taken as it is."""
    if isinstance(predicted, pd.DataFrame):
        missing = [name for name in classes if name not in predicted.columns]
        if missing:
            raise ValueError(
                f"the model answers no probability for class(es) {missing}; it answers {list(predicted.columns)}"
            )
        return predicted[list(classes)].to_numpy(dtype=float)
    return np.asarray(predicted, dtype=float)


def measure_drift(
    lake: DataLake,
    keys: DriftInputs,
    spec: UseCaseSpec,
    reference: dict[str, Any],
    version: str,
    days: Sequence[str],
) -> Iterator[DayResult]:
    """Each day's PSI per feature against the champion's training bins, and of the day's scores against its
    holdout scores when the champion itself scored that day; warm-up days and days without events
    (`source.missing_days: empty`) are stored empty, not measured."""
    features_reference = {name: bins for name, bins in reference.items() if name != SCORE}
    scored_days = set(lake.existing_partitions(keys.predictions))
    complete_from = first_complete_day(spec, lake.existing_partitions(keys.raw_events))
    for day in sorted(days):
        if complete_from is None or day < complete_from:
            yield DayResult(day, _drift_frame(day, {}, version), drift_warm_up(day))
            continue
        features = lake.read(keys.features, [day])
        if features.empty and spec.missing_days == "empty":
            note = without_events_note(day, "no drift measured")
            yield DayResult(day, _drift_frame(day, {}, version), [passed(DRIFT_CHECK, day, note, measured=False)], note)
            continue
        if len(features) < spec.drift.min_rows:
            yield DayResult(
                day, _drift_frame(day, {}, version), drift_too_few_rows(day, len(features), spec.drift.min_rows)
            )
            continue
        psi = population_stability(features_reference, features)
        if SCORE in reference and day in scored_days:
            psi.update(_score_psi(lake, keys.predictions, day, reference[SCORE], version))
        yield DayResult(
            day, _drift_frame(day, psi, version), validate_drift(psi, spec.drift.psi_threshold, day, METHOD)
        )


@dataclass(frozen=True)
class DriftInputs:
    """Where drift reads from: the asset keys of the raw events, features and predictions."""

    raw_events: Any
    features: Any
    predictions: Any


def _typed_strings(frame: pd.DataFrame) -> pd.DataFrame:
    """A zero-row frame's object columns (strings, by the schemas here) as strings: Arrow would store them as null."""
    return frame.astype({name: "string" for name, dtype in frame.dtypes.items() if pd.api.types.is_object_dtype(dtype)})


def _drift_frame(day: str, psi: dict[str, float], version: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            DAY: pd.Series([day] * len(psi), dtype="string"),
            "feature": pd.Series(list(psi), dtype="string"),
            "psi": pd.Series(list(psi.values()), dtype="float64"),
            "champion_version": pd.Series([version] * len(psi), dtype="string"),
        }
    )


def _score_psi(lake: DataLake, predictions_key: Any, day: str, bins: dict[str, Any], version: str) -> dict[str, float]:
    """PSI of the day's scores if the champion itself scored that day (another model's scores say nothing)."""
    scored = lake.read(predictions_key, [day], columns=["score", "model_version"])
    if scored.empty or set(scored["model_version"]) != {version}:
        return {}
    return population_stability({SCORE: bins}, scored.rename(columns={"score": SCORE}))


def day_bounds(frame: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """Each day's row range in a frame ordered by day (a groupby would copy the whole chunk while it is held)."""
    days = frame[DAY].to_numpy()
    if not len(days):  # a chunk without events (days without a file, under missing_days: empty)
        return {}
    if (days[1:] < days[:-1]).any():
        raise ValueError("feature rows must come ordered by day")  # as entity_day_features and _event_rows make them
    starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
    ends = np.r_[starts[1:], len(days)]
    return {days[start]: (int(start), int(end)) for start, end in zip(starts, ends, strict=True)}


def features_chunk_days(requested: int, rows_per_day: int, lookback_days: int) -> int:
    """Days per features chunk: at most `requested`, and few enough that the chunk with its lookback spans
    WINDOW_ROWS_BUDGET raw rows, so a year of 1M-event days runs in the memory of a few weeks."""
    if rows_per_day <= 0:
        return requested
    return max(1, min(requested, WINDOW_ROWS_BUDGET // rows_per_day - (lookback_days - 1)))


def chunks(days: Sequence[str], size: int) -> Iterator[list[str]]:
    """The days in order, `size` at a time: what one lake read and one feature computation cover."""
    ordered = sorted(days)
    for start in range(0, len(ordered), max(1, size)):
        yield ordered[start : start + size]
