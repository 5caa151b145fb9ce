"""Data quality gates: pure functions from (frame, spec, day) to check outcomes.

Each outcome names the partition, the column, the observed value and the
limit, so a failed gate in the UI says exactly what to fix. The functions know
nothing of Dagster; `gate.py` turns their outcomes into asset check events.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas.api import types as ptypes

from ml_platform.spec import LABEL_CHECKS, ColumnSpec, Severity, UseCaseSpec

RAW_CHECKS: dict[str, str] = {
    "landed": "The day's source data exists and parses.",
    "schema": "Every spec column is present with the declared dtype.",
    "null_fraction": "No column has more nulls than its max_null_fraction.",
    "min_rows": "The day has at least gates.min_rows_per_day events.",
    "unique_event_ids": "No event id appears twice.",
    "value_ranges": "Values lie within min/max and allowed categories.",
    "label_values": "The label column holds valid labels: only 0/1 for classifiers, finite numbers for forecasts, "
    "at most max_null_fraction unknown (a class label's values are checked by value_ranges).",
    "timestamps_in_partition": "Every event timestamp falls inside the partition's day.",
}

FEATURE_CHECKS: dict[str, str] = {
    "inputs_complete": "Every raw day in the feature window is materialized (no silent gaps).",
    "feature_schema": "Entity, day and every spec feature are present and numeric.",
    "feature_nulls": "No feature value is null.",
    "feature_finite": "No feature value is infinite.",
}

PREDICTION_CHECKS: dict[str, str] = {
    "scores_valid": "Every score is finite (a probability in [0, 1] for classifiers) and each row is scored once.",
}


@dataclass(frozen=True)
class CheckOutcome:
    check: str
    passed: bool
    message: str
    metadata: dict[str, Any] = field(default_factory=dict)
    severity: Severity = "block"  # a failed `warn` outcome is recorded as a warning and lets the day through

    @property
    def blocks(self) -> bool:
        """This outcome keeps its day from being written (and from everything downstream)."""
        return not self.passed and self.severity == "block"


def failed(check: str, day: str, message: str, **metadata: Any) -> CheckOutcome:
    return CheckOutcome(check, False, f"partition {day}: {message}", {"partition": day, **metadata})


def passed(check: str, day: str, message: str = "ok", **metadata: Any) -> CheckOutcome:
    return CheckOutcome(check, True, f"partition {day}: {message}", {"partition": day, **metadata})


def validate_events(frame: pd.DataFrame, spec: UseCaseSpec, day: str) -> list[CheckOutcome]:
    """Run every raw-event gate on one day's frame, each outcome with the severity the spec gives it."""
    gates = RawEventGates(spec, day)
    gates.add(frame)
    return gates.outcomes(lambda: [frame])


class RawEventGates:
    """The raw-event gates over a day read in batches, in order: what each gate judges is summed batch by batch
    (rows, nulls, values outside ranges, label values, timestamps outside the day), so the day is never held
    whole. Unique ids keep a 64-bit hash per row (8 bytes); rows whose hashes collide are compared exactly on a
    second read of the day (`recheck`), so a duplicate is reported exactly as on the whole day."""

    def __init__(self, spec: UseCaseSpec, day: str) -> None:
        self.spec, self.day = spec, day
        self.rows = 0
        self.schema: CheckOutcome | None = None  # the first batch's schema failure, if any
        self.columns: list[str] = []  # the first batch's columns
        self.nulls = dict.fromkeys((c.name for c in spec.columns), 0)
        self.mistyped: set[str] = set()  # columns whose dtype does not match in some batch: no range checked
        self.unexpected: dict[str, set[str]] = {}
        self.minimum: dict[str, Any] = {}
        self.maximum: dict[str, Any] = {}
        self.id_hashes: list[np.ndarray] = []
        self.label = _LabelSums()
        self.timestamps_problem: CheckOutcome | None = None
        self.outside_count, self.outside_example = 0, ""

    def add(self, frame: pd.DataFrame) -> None:
        """Judge the day's next batch."""
        if not self.rows and not self.columns:
            self.columns = list(frame.columns)
        self.rows += len(frame)
        schema = _check_schema(frame, self.spec, self.day)
        if self.schema is None and not schema.passed:
            self.schema = schema
        for column in self.spec.columns:
            if column.name in frame.columns:
                self.nulls[column.name] += int(frame[column.name].isna().sum())
        self._add_ranges(frame)
        identity = self._identity_columns(frame)
        if identity:
            self.id_hashes.append(identity_hashes(frame, identity))
        if self.spec.label.column in frame.columns:
            self.label.add(frame[self.spec.label.column], self.spec)
        self._add_timestamps(frame)

    def _identity_columns(self, frame: pd.DataFrame) -> list[str]:
        """The columns whose values identify an event: the event id, else `unique_columns` (else every column)."""
        if self.spec.event_id_column is not None:
            return [self.spec.event_id_column] if self.spec.event_id_column in frame.columns else []
        names = self.spec.unique_columns or [c.name for c in self.spec.columns]
        return [name for name in names if name in frame.columns]

    def _add_ranges(self, frame: pd.DataFrame) -> None:
        for column in self.spec.columns:
            if column.name not in frame.columns or not _dtype_matches(frame[column.name], column.dtype):
                self.mistyped.add(column.name)
                continue
            values = frame[column.name].dropna()
            if column.allowed_values is not None:
                found = {str(value) for value in values.unique()} - set(column.allowed_values)
                self.unexpected.setdefault(column.name, set()).update(found)
            if len(values) and column.min_value is not None:
                low = values.min()
                self.minimum[column.name] = min(self.minimum.get(column.name, low), low)
            if len(values) and column.max_value is not None:
                high = values.max()
                self.maximum[column.name] = max(self.maximum.get(column.name, high), high)

    def _add_timestamps(self, frame: pd.DataFrame) -> None:
        column = self.spec.timestamp_column
        if column not in frame.columns or not ptypes.is_datetime64_any_dtype(frame[column]):
            self.timestamps_problem = self.timestamps_problem or failed(
                "timestamps_in_partition",
                self.day,
                f"column '{column}' is missing or not a timestamp",
                column=column,
            )
            return
        start = pd.Timestamp(dt.date.fromisoformat(self.day), tz="UTC")
        stamps = frame[column]
        stamps = stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")
        outside = (stamps < start) | (stamps >= start + pd.Timedelta(days=1)) | stamps.isna()
        count = int(outside.sum())
        if count and not self.outside_count:
            self.outside_example = str(stamps[outside].iloc[0])
        self.outside_count += count

    def outcomes(self, recheck: Callable[[], Iterable[pd.DataFrame]]) -> list[CheckOutcome]:
        """Every gate's outcome for the batches added; `recheck` reads the day's batches again (only when two
        rows' identity hashes collide)."""
        minimum, rows = self.spec.gates.min_rows_per_day, self.rows
        outcomes = [
            passed("landed", self.day, f"{rows} rows read"),
            self.schema or passed("schema", self.day, f"{len(self.spec.columns)} columns as declared"),
            self._null_outcome(),
            passed("min_rows", self.day, f"{rows} rows", observed=rows, limit=minimum)
            if rows >= minimum
            else failed(
                "min_rows", self.day, f"{rows} rows, expected at least {minimum}", observed=rows, limit=minimum
            ),
            self._unique_outcome(recheck),
            self._range_outcome(),
            self.label.outcome(self.spec, self.day, rows, self.columns),
            self._timestamps_outcome(),
        ]
        return [
            replace(o, severity=self.spec.check_severity(o.check)) if o.check in WHOLE_DAY_CHECKS else o
            for o in outcomes
        ]

    def _null_outcome(self) -> CheckOutcome:
        """Every column over its null limit is named (blocking first, then worst first)."""
        over: list[tuple[float, ColumnSpec]] = []
        for column in self.spec.columns:
            if column.name not in self.columns or not self.rows:
                continue
            fraction = self.nulls[column.name] / self.rows
            if fraction > column.max_null_fraction:
                over.append((fraction, column))
        over.sort(key=lambda item: -item[0])
        violations = [
            ColumnViolation(
                c.name,
                f"column '{c.name}' is {f:.1%} null, limit {c.max_null_fraction:.1%}",
                self.spec.column_severity(c, "null_fraction"),
                {"observed": round(f, 6), "limit": c.max_null_fraction},
            )
            for f, c in over
        ]
        severities = [self.spec.column_severity(c, "null_fraction") for c in self.spec.columns]
        return _column_gate(
            "null_fraction", self.day, violations, _strictest(severities), "all columns within their null limits"
        )

    def _unique_outcome(self, recheck: Callable[[], Iterable[pd.DataFrame]]) -> CheckOutcome:
        column = self.spec.event_id_column
        if column is not None and column not in self.columns:
            return failed("unique_event_ids", self.day, f"column '{column}' is missing", column=column)
        hashes = np.concatenate(self.id_hashes) if self.id_hashes else np.zeros(0, dtype=np.uint64)
        ordered = np.sort(hashes)
        colliding = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
        del ordered
        suspects = self._rows_with_hashes(recheck, colliding) if len(colliding) else pd.DataFrame()
        if column is None:
            return _check_unique_rows(suspects, self.spec, self.day, self.rows, self.columns)
        return _check_unique_ids(suspects, column, self.day, self.rows)

    def _rows_with_hashes(self, recheck: Callable[[], Iterable[pd.DataFrame]], wanted: np.ndarray) -> pd.DataFrame:
        """The rows, in day order, whose identity hash is one of `wanted` (a day's duplicates, and any rows that
        merely share a hash with another), from a second read of the day."""
        parts = []
        for frame in recheck():
            identity = self._identity_columns(frame)
            hashes = identity_hashes(frame, identity)
            parts.append(frame.loc[np.isin(hashes, wanted), identity])
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    def _range_outcome(self) -> CheckOutcome:
        """Every column outside its closed set or min/max is named (blocking first). A label's allowed values are
        label validity: a value outside them always blocks (it would become a wrong class or a silent negative)."""
        violations: list[ColumnViolation] = []
        for column in self.spec.columns:
            if column.name in self.mistyped:
                continue
            severity = self.spec.column_severity(column, "value_ranges")
            unexpected = sorted(self.unexpected.get(column.name, set()))
            if column.allowed_values is not None and unexpected:
                violations.append(
                    ColumnViolation(
                        column.name,
                        f"column '{column.name}' has values {unexpected[:5]} outside {column.allowed_values}",
                        "block" if column.name == self.spec.label.column else severity,
                        {"observed": unexpected[:5], "expected": column.allowed_values},
                    )
                )
            low, high = self.minimum.get(column.name), self.maximum.get(column.name)
            if column.min_value is not None and low is not None and low < column.min_value:
                violations.append(
                    ColumnViolation(
                        column.name,
                        f"column '{column.name}' minimum {low} is below {column.min_value}",
                        severity,
                        {"observed": float(low), "limit": column.min_value},
                    )
                )
            if column.max_value is not None and high is not None and high > column.max_value:
                violations.append(
                    ColumnViolation(
                        column.name,
                        f"column '{column.name}' maximum {high} is above {column.max_value}",
                        severity,
                        {"observed": float(high), "limit": column.max_value},
                    )
                )
        severities = [self.spec.column_severity(c, "value_ranges") for c in self.spec.columns]
        return _column_gate(
            "value_ranges", self.day, violations, _strictest(severities), "all values within declared ranges"
        )

    def _timestamps_outcome(self) -> CheckOutcome:
        column = self.spec.timestamp_column
        if self.timestamps_problem is not None:
            return self.timestamps_problem
        if self.outside_count:
            return failed(
                "timestamps_in_partition",
                self.day,
                f"column '{column}' has {self.outside_count} timestamp(s) outside the day, e.g. {self.outside_example}",
                column=column,
                observed=self.outside_count,
                limit=0,
                example=self.outside_example,
            )
        return passed("timestamps_in_partition", self.day, "all timestamps inside the day", column=column)


# gates that judge the day as a whole and act with gates.severity; the per-column gates (null_fraction,
# value_ranges, the label gate) resolve each column's severity themselves; landed and schema always block
WHOLE_DAY_CHECKS = ("min_rows", "unique_event_ids", "timestamps_in_partition")


class ColumnViolation(NamedTuple):
    """One column over one of its limits, and how that acts (the column's severity in the gate)."""

    column: str
    message: str
    severity: Severity
    details: dict[str, Any]


def _column_gate(
    check: str, day: str, violations: list[ColumnViolation], severity_if_passed: Severity, ok: str
) -> CheckOutcome:
    """One outcome for a per-column gate: blocking if any violating column blocks, a warning if all only warn.

    Every violating column is named, the blocking ones first, so one fix-and-rerun cycle is enough; in a
    blocking outcome the columns that only warn say so."""
    if not violations:
        return replace(passed(check, day, ok), severity=severity_if_passed)
    ordered = sorted(violations, key=lambda v: v.severity != "block")  # stable: each group keeps its order
    first = ordered[0]
    outcome = failed(
        check,
        day,
        "; ".join(
            v.message + (" (warns)" if first.severity == "block" and v.severity == "warn" else "") for v in ordered
        ),
        column=first.column,
        **first.details,
        violations=[{"column": v.column, **v.details, "severity": v.severity} for v in ordered],
    )
    return replace(outcome, severity=first.severity)


def _strictest(severities: list[Severity]) -> Severity:
    """A passed per-column gate's severity: what a violation could do at most."""
    return "warn" if severities and all(s == "warn" for s in severities) else "block"


def unreadable_source(day: str, message: str) -> list[CheckOutcome]:
    return [CheckOutcome("landed", False, message, {"partition": day})]


def _dtype_matches(series: pd.Series, dtype: str) -> bool:
    if dtype == "string":
        return ptypes.is_string_dtype(series) or (
            ptypes.is_object_dtype(series) and bool(series.dropna().map(lambda value: type(value) is str).all())
        )
    if dtype == "int64":
        return ptypes.is_integer_dtype(series)
    if dtype == "float64":
        return ptypes.is_float_dtype(series) or ptypes.is_integer_dtype(series)
    if dtype == "bool":
        return ptypes.is_bool_dtype(series)
    return ptypes.is_datetime64_any_dtype(series)


def _dtype_name(series: pd.Series) -> str:
    """A column's dtype in the spec's words where it has one (Arrow-backed strings are "string")."""
    if isinstance(series.dtype, (pd.ArrowDtype, pd.StringDtype)) and ptypes.is_string_dtype(series):
        return "string"
    return str(series.dtype)


def _check_schema(frame: pd.DataFrame, spec: UseCaseSpec, day: str) -> CheckOutcome:
    missing = [c.name for c in spec.columns if c.name not in frame.columns]
    if missing:
        return failed(
            "schema", day, f"missing column(s) {missing}", column=missing[0], observed="absent", expected="present"
        )
    for column in spec.columns:
        if not _dtype_matches(frame[column.name], column.dtype):
            observed = _dtype_name(frame[column.name])
            return failed(
                "schema",
                day,
                f"column '{column.name}' has dtype {observed}, expected {column.dtype}",
                column=column.name,
                observed=observed,
                expected=column.dtype,
            )
    return passed("schema", day, f"{len(spec.columns)} columns as declared")


def identity_hashes(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """A 64-bit hash per row of `columns`' values, the same for the same values in any batch (equal values, equal
    hash; a collision of different values is possible, so a caller compares the colliding rows exactly)."""
    hashes = np.zeros(len(frame), dtype=np.uint64)
    for column in columns:
        values = frame[column]
        if isinstance(values.dtype, pd.ArrowDtype) and pa.types.is_string(values.dtype.pyarrow_dtype):
            column_hashes = _arrow_string_hashes(values)  # no Python string per value (pandas' hash makes them)
        else:
            column_hashes = pd.util.hash_pandas_object(values, index=False).to_numpy()
        hashes = _mix(hashes ^ column_hashes)
    return hashes


def _arrow_string_hashes(values: pd.Series) -> np.ndarray:
    """Each Arrow string's bytes hashed 8 at a time, vectorized over the rows (nulls hash alike)."""
    array = pa.array(values)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    array = array.cast(pa.large_string())
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[array.offset : array.offset + len(array) + 1]
    starts, lengths = offsets[:-1], np.diff(offsets)
    width = int(lengths.max(initial=0))
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    data = np.concatenate([data, np.zeros(width + 8, np.uint8)])  # every 8-byte read stays inside
    hashes = _mix(lengths.astype(np.uint64))
    for word in range(0, width, 8):
        positions = np.arange(word, word + 8)
        chunk = data[starts[:, None] + positions]
        chunk[positions[None, :] >= lengths[:, None]] = 0  # past a string's end: the next string's bytes
        hashes = np.where(lengths > word, _mix(hashes ^ chunk.view(np.uint64).ravel()), hashes)  # its own words only
    if array.null_count:
        hashes[np.asarray(array.is_null())] = 0
    return hashes


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: every input bit moves every output bit (uint64 arithmetic wraps)."""
    values = values + np.uint64(0x9E3779B97F4A7C15)
    values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


def _check_unique_ids(suspects: pd.DataFrame, column: str, day: str, rows: int) -> CheckOutcome:
    """Duplicated ids among `suspects`, the day's rows whose id hashes collide (every duplicate is among them)."""
    if len(suspects):
        duplicated = suspects[column].duplicated(keep=False)
        count = int(suspects.loc[duplicated, column].nunique())
        if count:
            example = str(suspects.loc[duplicated, column].iloc[0])
            return failed(
                "unique_event_ids",
                day,
                f"column '{column}' has {count} duplicated id(s), e.g. '{example}'",
                column=column,
                observed=count,
                limit=0,
                example=example,
            )
    return passed("unique_event_ids", day, f"{rows} unique ids", column=column)


def _check_unique_rows(
    suspects: pd.DataFrame, spec: UseCaseSpec, day: str, rows: int, present: list[str]
) -> CheckOutcome:
    """Without an event id, an event is its content: the same `unique_columns` (or whole row) twice is a duplicate.
    `suspects` are the day's rows whose content hashes collide (every repeat is among them)."""
    columns = [name for name in spec.unique_columns or [c.name for c in spec.columns] if name in present]
    what = f"columns {spec.unique_columns}" if spec.unique_columns else "every column"
    duplicated = int(suspects.duplicated(columns).sum()) if len(suspects) else 0
    if duplicated:
        return failed(
            "unique_event_ids",
            day,
            f"{duplicated} row(s) repeat an earlier row in {what}; if such repeats are "
            "distinct events, name an event_id_column or the unique_columns that tell them apart",
            column=columns[0],
            observed=duplicated,
            limit=0,
        )
    return passed("unique_event_ids", day, f"{rows} distinct rows ({what})")


def raw_checks(spec: UseCaseSpec) -> dict[str, str]:
    """The raw-event gates of a spec; the label gate is named for the task (binary_label for classifiers)."""
    label_check = LABEL_CHECKS[spec.label.task]
    return {(label_check if name == "label_values" else name): text for name, text in RAW_CHECKS.items()}


BINARY_VALUES = frozenset({"0", "1", "True", "False", "0.0", "1.0"})


class _LabelSums:
    """The label column over a day's batches: unknown (null) outcomes, and what the known labels say for the task.
    Invalid labels always block (they would be trained on); more unknown outcomes than the label column's null
    limit act with that column's severity (rows whose outcome is unknown are scored, not trained on)."""

    def __init__(self) -> None:
        self.unknown = self.known = self.non_finite = 0
        self.total = 0.0  # the sum of the known labels (a forecast's values, a classifier's positives)
        self.counts: Counter[str] = Counter()
        self.non_binary: set[str] = set()

    def add(self, values: pd.Series, spec: UseCaseSpec) -> None:
        check = LABEL_CHECKS[spec.label.task]
        known = values.dropna()
        self.unknown += len(values) - len(known)
        self.known += len(known)
        if check == "class_label":  # that every known class is one of the allowed values is the value_ranges gate's
            self.counts.update({str(name): int(count) for name, count in known.value_counts().items()})
        elif check == "finite_label":
            numeric = pd.to_numeric(known, errors="coerce").to_numpy(dtype=float)
            self.non_finite += int((~np.isfinite(numeric)).sum())
            self.total += float(numeric.sum())
        else:
            if spec.label.positive is not None:  # a string flag: its two values are the column's allowed_values gate
                known = known.eq(spec.label.positive)
            self.non_binary |= {str(v) for v in known.unique()} - BINARY_VALUES
            if not self.non_binary:
                self.total += float(known.astype(float).sum())

    def outcome(self, spec: UseCaseSpec, day: str, rows: int, present: list[str]) -> CheckOutcome:
        column = spec.label.column
        check = LABEL_CHECKS[spec.label.task]
        if column not in present:
            return failed(check, day, f"label column '{column}' is missing", column=column)
        limit = spec.column(column).max_null_fraction
        unknown = self.unknown / rows if rows else 0.0
        outcome = self._known_outcome(spec, check, day, unknown)
        if outcome.passed and unknown > limit:
            outcome = failed(
                check,
                day,
                f"label column '{column}' is {unknown:.1%} null (unknown outcomes), limit {limit:.1%}; "
                "raise the column's max_null_fraction if unknown outcomes are expected",
                column=column,
                observed=round(unknown, 6),
                limit=limit,
            )
            return replace(outcome, severity=spec.column_severity(spec.column(column), check))
        return outcome

    def _known_outcome(self, spec: UseCaseSpec, check: str, day: str, unknown: float) -> CheckOutcome:
        """The known labels' validity for the task (a blocking failure), else what they look like."""
        column = spec.label.column
        if check == "class_label":
            counts = dict(self.counts.most_common())
            return passed(
                check,
                day,
                f"{len(counts)} of {len(spec.classes)} classes present"
                + (f", {unknown:.1%} unknown" if unknown else ""),
                column=column,
                counts=counts,
                unknown=round(unknown, 6),
            )
        if check == "finite_label":
            if self.non_finite:
                return failed(
                    check,
                    day,
                    f"label column '{column}' has {self.non_finite} non-finite value(s)",
                    column=column,
                    observed=self.non_finite,
                    limit=0,
                )
            mean = self.total / self.known if self.known else 0
            return passed(check, day, f"mean {mean:.4f}", column=column, unknown=round(unknown, 6))
        observed = sorted(self.non_binary)
        if observed:
            return failed(
                check,
                day,
                f"label column '{column}' has non-binary values {observed[:5]}, expected 0/1",
                column=column,
                observed=observed[:5],
                expected=[0, 1],
            )
        rate = self.total / self.known if self.known else 0.0
        return passed(
            check,
            day,
            f"positive rate {rate:.4f}" + (f", {unknown:.1%} unknown" if unknown else ""),
            column=column,
            unknown=round(unknown, 6),
        )


def validate_features(
    frame: pd.DataFrame, spec: UseCaseSpec, day: str, missing_inputs: list[str]
) -> list[CheckOutcome]:
    """Gates on one day of features; `missing_inputs` are raw days of the window that are absent."""
    outcomes = [
        failed(
            "inputs_complete",
            day,
            f"raw_events missing for {missing_inputs[:5]} inside the feature window",
            observed=missing_inputs[:10],
            expected="every window day materialized",
        )
        if missing_inputs
        else passed("inputs_complete", day, f"{spec.lookback_days}-day lookback complete")
    ]
    expected = [*spec.key_columns, "day", *spec.feature_names]
    absent = [name for name in expected if name not in frame.columns]
    non_numeric = [
        name
        for name in spec.numeric_feature_names
        if name in frame.columns and not ptypes.is_numeric_dtype(frame[name])
    ]
    if absent or non_numeric:
        column = (absent or non_numeric)[0]
        outcomes.append(
            failed(
                "feature_schema",
                day,
                f"feature column '{column}' is {'missing' if absent else 'not numeric'}",
                column=column,
            )
        )
    else:
        outcomes.append(passed("feature_schema", day, f"{len(spec.feature_names)} features"))
    present = [name for name in spec.numeric_feature_names if name in frame.columns and name not in non_numeric]
    nulls = {name: int(frame[name].isna().sum()) for name in present}
    worst = max(nulls, key=nulls.__getitem__, default=None)
    if worst is not None and nulls[worst]:
        outcomes.append(
            failed(
                "feature_nulls",
                day,
                f"feature '{worst}' has {nulls[worst]} null(s)",
                column=worst,
                observed=nulls[worst],
                limit=0,
            )
        )
    else:
        outcomes.append(passed("feature_nulls", day, "no nulls"))
    infinite = {name: int(np.isinf(frame[name].to_numpy(dtype=float)).sum()) for name in present}
    worst = max(infinite, key=infinite.__getitem__, default=None)
    if worst is not None and infinite[worst]:
        outcomes.append(
            failed(
                "feature_finite",
                day,
                f"feature '{worst}' has {infinite[worst]} infinite value(s)",
                column=worst,
                observed=infinite[worst],
                limit=0,
            )
        )
    else:
        outcomes.append(passed("feature_finite", day, "all finite"))
    return outcomes


def validate_predictions(frame: pd.DataFrame, spec: UseCaseSpec, day: str) -> list[CheckOutcome]:
    scores = frame["score"]
    duplicates = int(frame.duplicated(spec.key_columns).sum())
    out_of_range = spec.label.task != "regression" and bool(((scores < 0) | (scores > 1)).any())
    if scores.isna().any() or np.isinf(scores).any() or out_of_range or duplicates:
        return [
            failed(
                "scores_valid",
                day,
                f"{int(scores.isna().sum())} null score(s), "
                f"range [{scores.min()}, {scores.max()}], {duplicates} duplicated row(s)",
                column="score",
            )
        ]
    return [passed("scores_valid", day, f"{len(frame)} rows scored")]


DRIFT_CHECK = "psi_within_limit"


def validate_drift(psi: dict[str, float], limit: float, day: str, method: str) -> list[CheckOutcome]:
    """Every feature's (and the scores') PSI at most `limit`; a warning, the drift sensor decides retraining."""
    worst = max(psi.values(), default=0.0)
    drifted = {name: round(value, 4) for name, value in psi.items() if value > limit}
    metadata = {"max_psi": worst, "limit": limit, "drifted": drifted, "method": method}
    if drifted:
        return [failed(DRIFT_CHECK, day, f"PSI above {limit} for {drifted}", **metadata)]
    return [passed(DRIFT_CHECK, day, f"max PSI {worst:.3f}", **metadata)]


def drift_warm_up(day: str) -> list[CheckOutcome]:
    return [
        passed(
            DRIFT_CHECK,
            day,
            "warm-up day, its feature windows reach before the first raw day; not measured",
            measured=False,
        )
    ]


def drift_too_few_rows(day: str, rows: int, min_rows: int) -> list[CheckOutcome]:
    return [
        passed(
            DRIFT_CHECK,
            day,
            f"{rows} row(s), fewer than drift.min_rows {min_rows}: too few for a stable PSI; not measured",
            measured=False,
            rows=rows,
            min_rows=min_rows,
        )
    ]
