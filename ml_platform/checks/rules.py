"""Data quality gates: pure functions from (frame, spec, day) to check outcomes.

Each outcome names the partition, the column, the observed value and the
limit, so a failed gate in the UI says exactly what to fix. The functions know
nothing of Dagster; `gate.py` turns their outcomes into asset check events.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
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
    minimum = spec.gates.min_rows_per_day
    outcomes = [
        passed("landed", day, f"{len(frame)} rows read"),
        _check_schema(frame, spec, day),
        _check_nulls(frame, spec, day),
        passed("min_rows", day, f"{len(frame)} rows", observed=len(frame), limit=minimum)
        if len(frame) >= minimum
        else failed(
            "min_rows", day, f"{len(frame)} rows, expected at least {minimum}", observed=len(frame), limit=minimum
        ),
        _check_unique_ids(frame, spec, day),
        _check_value_ranges(frame, spec, day),
        _check_label(frame, spec, day),
        _check_timestamps(frame, spec, day),
    ]
    return [replace(o, severity=spec.check_severity(o.check)) if o.check in WHOLE_DAY_CHECKS else o for o in outcomes]


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


def _check_nulls(frame: pd.DataFrame, spec: UseCaseSpec, day: str) -> CheckOutcome:
    """Every column over its null limit is named (blocking first, then worst first)."""
    over: list[tuple[float, ColumnSpec]] = []
    for column in spec.columns:
        if column.name not in frame.columns or frame.empty:
            continue
        fraction = float(frame[column.name].isna().mean())
        if fraction > column.max_null_fraction:
            over.append((fraction, column))
    over.sort(key=lambda item: -item[0])
    violations = [
        ColumnViolation(
            c.name,
            f"column '{c.name}' is {f:.1%} null, limit {c.max_null_fraction:.1%}",
            spec.column_severity(c, "null_fraction"),
            {"observed": round(f, 6), "limit": c.max_null_fraction},
        )
        for f, c in over
    ]
    severities = [spec.column_severity(c, "null_fraction") for c in spec.columns]
    return _column_gate(
        "null_fraction", day, violations, _strictest(severities), "all columns within their null limits"
    )


def _check_unique_ids(frame: pd.DataFrame, spec: UseCaseSpec, day: str) -> CheckOutcome:
    if spec.event_id_column is None:
        return _check_unique_rows(frame, spec, day)
    column = spec.event_id_column
    if column not in frame.columns:
        return failed("unique_event_ids", day, f"column '{column}' is missing", column=column)
    if frame[column].is_unique:  # one hash pass; the duplicates are located only when there are some
        return passed("unique_event_ids", day, f"{len(frame)} unique ids", column=column)
    duplicated = frame[column].duplicated(keep=False)
    count = int(frame.loc[duplicated, column].nunique())
    if count:
        example = str(frame.loc[duplicated, column].iloc[0])
        return failed(
            "unique_event_ids",
            day,
            f"column '{column}' has {count} duplicated id(s), e.g. '{example}'",
            column=column,
            observed=count,
            limit=0,
            example=example,
        )
    return passed("unique_event_ids", day, f"{len(frame)} unique ids", column=column)


def _check_unique_rows(frame: pd.DataFrame, spec: UseCaseSpec, day: str) -> CheckOutcome:
    """Without an event id, an event is its content: the same `unique_columns` (or whole row) twice is a duplicate."""
    columns = [name for name in spec.unique_columns or [c.name for c in spec.columns] if name in frame.columns]
    what = f"columns {spec.unique_columns}" if spec.unique_columns else "every column"
    duplicated = int(frame.duplicated(columns).sum())
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
    return passed("unique_event_ids", day, f"{len(frame)} distinct rows ({what})")


def _check_value_ranges(frame: pd.DataFrame, spec: UseCaseSpec, day: str) -> CheckOutcome:
    """Every column outside its closed set or min/max is named (blocking first). A label's allowed values are
    label validity: a value outside them always blocks (it would become a wrong class or a silent negative)."""
    violations: list[ColumnViolation] = []
    for column in spec.columns:
        if column.name not in frame.columns or not _dtype_matches(frame[column.name], column.dtype):
            continue
        severity = spec.column_severity(column, "value_ranges")
        values = frame[column.name].dropna()
        if column.allowed_values is not None:
            unexpected = sorted({str(value) for value in values.unique()} - set(column.allowed_values))
            if unexpected:
                violations.append(
                    ColumnViolation(
                        column.name,
                        f"column '{column.name}' has values {unexpected[:5]} outside {column.allowed_values}",
                        "block" if column.name == spec.label.column else severity,
                        {"observed": unexpected[:5], "expected": column.allowed_values},
                    )
                )
        if column.min_value is not None and len(values) and values.min() < column.min_value:
            violations.append(
                ColumnViolation(
                    column.name,
                    f"column '{column.name}' minimum {values.min()} is below {column.min_value}",
                    severity,
                    {"observed": float(values.min()), "limit": column.min_value},
                )
            )
        if column.max_value is not None and len(values) and values.max() > column.max_value:
            violations.append(
                ColumnViolation(
                    column.name,
                    f"column '{column.name}' maximum {values.max()} is above {column.max_value}",
                    severity,
                    {"observed": float(values.max()), "limit": column.max_value},
                )
            )
    severities = [spec.column_severity(c, "value_ranges") for c in spec.columns]
    return _column_gate("value_ranges", day, violations, _strictest(severities), "all values within declared ranges")


def raw_checks(spec: UseCaseSpec) -> dict[str, str]:
    """The raw-event gates of a spec; the label gate is named for the task (binary_label for classifiers)."""
    label_check = LABEL_CHECKS[spec.label.task]
    return {(label_check if name == "label_values" else name): text for name, text in RAW_CHECKS.items()}


def _check_label(frame: pd.DataFrame, spec: UseCaseSpec, day: str) -> CheckOutcome:
    """Invalid labels always block (they would be trained on); more unknown outcomes than the label column's
    null limit act with that column's severity (rows whose outcome is unknown are scored, not trained on)."""
    column = spec.label.column
    check = LABEL_CHECKS[spec.label.task]
    if column not in frame.columns:
        return failed(check, day, f"label column '{column}' is missing", column=column)
    values, limit = frame[column], spec.column(column).max_null_fraction
    unknown = float(values.isna().mean()) if len(values) else 0.0
    outcome = _label_values(values.dropna(), spec, check, day, unknown)
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


def _label_values(known: pd.Series, spec: UseCaseSpec, check: str, day: str, unknown: float) -> CheckOutcome:
    """The known labels' validity for the task (a blocking failure), else what they look like."""
    column = spec.label.column
    if check == "class_label":  # that every known class is one of the allowed values is the value_ranges gate's
        counts = {str(name): int(count) for name, count in known.value_counts().items()}
        return passed(
            check,
            day,
            f"{len(counts)} of {len(spec.classes)} classes present" + (f", {unknown:.1%} unknown" if unknown else ""),
            column=column,
            counts=counts,
            unknown=round(unknown, 6),
        )
    if check == "finite_label":
        numeric = pd.to_numeric(known, errors="coerce").to_numpy(dtype=float)
        bad = int((~np.isfinite(numeric)).sum())
        if bad:
            return failed(
                check,
                day,
                f"label column '{column}' has {bad} non-finite value(s)",
                column=column,
                observed=bad,
                limit=0,
            )
        return passed(
            check, day, f"mean {numeric.mean() if len(numeric) else 0:.4f}", column=column, unknown=round(unknown, 6)
        )
    if spec.label.positive is not None:  # a string flag: its two values are the column's allowed_values gate
        known = known.eq(spec.label.positive)
    observed = sorted({str(v) for v in known.unique()} - {"0", "1", "True", "False", "0.0", "1.0"})
    if observed:
        return failed(
            check,
            day,
            f"label column '{column}' has non-binary values {observed[:5]}, expected 0/1",
            column=column,
            observed=observed[:5],
            expected=[0, 1],
        )
    rate = float(known.astype(float).mean()) if len(known) else 0.0
    return passed(
        check,
        day,
        f"positive rate {rate:.4f}" + (f", {unknown:.1%} unknown" if unknown else ""),
        column=column,
        unknown=round(unknown, 6),
    )


def _check_timestamps(frame: pd.DataFrame, spec: UseCaseSpec, day: str) -> CheckOutcome:
    column = spec.timestamp_column
    if column not in frame.columns or not ptypes.is_datetime64_any_dtype(frame[column]):
        return failed("timestamps_in_partition", day, f"column '{column}' is missing or not a timestamp", column=column)
    start = pd.Timestamp(dt.date.fromisoformat(day), tz="UTC")
    stamps = frame[column]
    stamps = stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")
    outside = (stamps < start) | (stamps >= start + pd.Timedelta(days=1)) | stamps.isna()
    count = int(outside.sum())
    if count:
        example = str(stamps[outside].iloc[0])
        return failed(
            "timestamps_in_partition",
            day,
            f"column '{column}' has {count} timestamp(s) outside the day, e.g. {example}",
            column=column,
            observed=count,
            limit=0,
            example=example,
        )
    return passed("timestamps_in_partition", day, "all timestamps inside the day", column=column)


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
