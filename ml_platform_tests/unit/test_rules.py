"""Every public gate rule of `checks/rules.py`, one table row per rule and outcome, on small hand-made frames.

Each row names the check, the expected pass/fail, the exact message after "partition <day>: " and the
metadata a failure carries (column, observed, limit), so a changed limit or comparison fails a row here
without a Dagster run. How warn/block severities combine is test_rules_severity.py's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ml_platform.checks.rules import (
    CheckOutcome,
    drift_too_few_rows,
    drift_warm_up,
    raw_checks,
    unreadable_source,
    validate_drift,
    validate_events,
    validate_features,
    validate_predictions,
)
from ml_platform.settings import SHIPPED_SPECS_DIR
from ml_platform.spec import UseCaseSpec, load_spec

DAY = "2025-01-01"
UNKNOWN_HINT = "; raise the column's max_null_fraction if unknown outcomes are expected"
REPEAT_HINT = (
    "; if such repeats are distinct events, name an event_id_column or the unique_columns that tell them apart"
)


def spec(
    name: str = "churn",
    top: dict[str, Any] | None = None,
    label: dict[str, Any] | None = None,
    **columns: dict[str, Any],
) -> UseCaseSpec:
    """A shipped spec with top-level fields, label fields and each named column's fields replaced."""
    data = load_spec(SHIPPED_SPECS_DIR / f"{name}.yaml").model_dump(mode="json", exclude_unset=True)
    data.update(top or {})
    data["label"] = {**data["label"], **(label or {})}
    data["columns"] = [{**c, **columns.get(c["name"], {})} for c in data["columns"]]
    return UseCaseSpec.model_validate(data)


def hours(n: int) -> pd.DatetimeIndex:
    return pd.date_range(f"{DAY} 00:00", periods=n, freq="h", tz="UTC")


def churn_events(n: int = 10) -> pd.DataFrame:
    """`n` valid churn events of DAY (10 is the spec's min_rows_per_day); customer 0 cancels."""
    return pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "customer_id": np.arange(n, dtype="int64"),
            "event_time": hours(n),
            "event_type": ["login"] * n,
            "plan": ["basic"] * n,
            "session_minutes": np.full(n, 30.0),
            "amount": np.full(n, 10.0),
            "cancelled": np.array([1] + [0] * (n - 1), dtype="int64")[:n],
        }
    )


def prices_events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "observation_id": ["o0", "o1", "o2"],
            "series_id": np.array([1, 2, 3], dtype="int64"),
            "event_time": hours(3),
            "price": [1.0, 2.0, 3.0],
            "dataset_version": ["v1"] * 3,
        }
    )


def news_events(topics: list[str | None]) -> pd.DataFrame:
    n = len(topics)
    return pd.DataFrame(
        {"article_id": [f"a{i}" for i in range(n)], "published_at": hours(n), "text": ["oil up"] * n, "topic": topics}
    )


def churn_with(**changes: Callable[[pd.DataFrame], Any]) -> pd.DataFrame:
    """churn_events() with each named column replaced by a function of the frame."""
    return churn_events().assign(**changes)


def at(frame: pd.DataFrame, column: str, rows: list[int] | slice, value: Any) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[rows, column] = value
    return frame


STRING_FLAG = {"cancelled": {"dtype": "string", "allowed_values": ["YES", "NO"]}}

RAW_CASES = [
    # (id, spec, frame, check, passed, message, metadata subset, severity)
    ("landed", spec(), churn_events(), "landed", True, "10 rows read", {}, "block"),
    ("schema_ok", spec(), churn_events(), "schema", True, "8 columns as declared", {}, "block"),
    (
        "schema_missing_column",
        spec(),
        churn_events().drop(columns=["plan"]),
        "schema",
        False,
        "missing column(s) ['plan']",
        {"column": "plan", "observed": "absent", "expected": "present"},
        "block",
    ),
    (
        "schema_wrong_dtype",
        spec(),
        churn_with(customer_id=lambda f: f["customer_id"].astype(float)),
        "schema",
        False,
        "column 'customer_id' has dtype float64, expected int64",
        {"column": "customer_id", "observed": "float64", "expected": "int64"},
        "block",
    ),
    (
        "schema_arrow_string_is_named_string",
        spec(),
        churn_with(customer_id=lambda f: f["customer_id"].astype("string[pyarrow]")),
        "schema",
        False,
        "column 'customer_id' has dtype string, expected int64",
        {"observed": "string"},
        "block",
    ),
    (
        "schema_arrow_string_as_read_from_parquet",
        spec(),
        churn_with(customer_id=lambda f: f["customer_id"].astype(str).astype(pd.ArrowDtype(pa.string()))),
        "schema",
        False,
        "column 'customer_id' has dtype string, expected int64",
        {"observed": "string"},
        "block",
    ),
    (
        "schema_mixed_object_is_not_string",
        spec(),
        at(churn_events().astype({"event_id": object}), "event_id", [0], 7),
        "schema",
        False,
        "column 'event_id' has dtype object, expected string",
        {"column": "event_id"},
        "block",
    ),
    ("nulls_ok", spec(), churn_events(), "null_fraction", True, "all columns within their null limits", {}, "block"),
    (
        "nulls_over_limit",
        spec(),
        at(churn_events(), "plan", [0, 1, 2], None),
        "null_fraction",
        False,
        "column 'plan' is 30.0% null, limit 0.0%",
        {"column": "plan", "observed": 0.3, "limit": 0.0},
        "block",
    ),
    (
        "nulls_at_limit",
        spec(plan={"max_null_fraction": 0.3}),
        at(churn_events(), "plan", [0, 1, 2], None),
        "null_fraction",
        True,
        "all columns within their null limits",
        {},
        "block",
    ),
    ("min_rows_at_limit", spec(), churn_events(), "min_rows", True, "10 rows", {"observed": 10, "limit": 10}, "block"),
    (
        "min_rows_below",
        spec(),
        churn_events(9),
        "min_rows",
        False,
        "9 rows, expected at least 10",
        {"observed": 9, "limit": 10},
        "block",
    ),
    (
        "min_rows_empty_day",
        spec(),
        churn_events().iloc[0:0],
        "min_rows",
        False,
        "0 rows, expected at least 10",
        {"observed": 0},
        "block",
    ),
    ("ids_unique", spec(), churn_events(), "unique_event_ids", True, "10 unique ids", {"column": "event_id"}, "block"),
    (
        "ids_duplicated",
        spec(),
        at(churn_events(), "event_id", [5], "e4"),
        "unique_event_ids",
        False,
        "column 'event_id' has 1 duplicated id(s), e.g. 'e4'",
        {"column": "event_id", "observed": 1, "limit": 0, "example": "e4"},
        "block",
    ),
    (
        "ids_column_missing",
        spec(),
        churn_events().drop(columns=["event_id"]),
        "unique_event_ids",
        False,
        "column 'event_id' is missing",
        {"column": "event_id"},
        "block",
    ),
    (
        "rows_distinct_by_unique_columns",
        spec(top={"event_id_column": None, "unique_columns": ["customer_id", "event_time"]}),
        churn_events(),
        "unique_event_ids",
        True,
        "10 distinct rows (columns ['customer_id', 'event_time'])",
        {},
        "block",
    ),
    (
        "rows_repeat_unique_columns",
        spec(top={"event_id_column": None, "unique_columns": ["customer_id", "event_time"]}),
        at(at(churn_events(), "customer_id", [1], 0), "event_time", [1], hours(1)[0]),
        "unique_event_ids",
        False,
        "1 row(s) repeat an earlier row in columns ['customer_id', 'event_time']" + REPEAT_HINT,
        {"column": "customer_id", "observed": 1, "limit": 0},
        "block",
    ),
    (
        "rows_repeat_every_column",
        spec(top={"event_id_column": None}),
        pd.concat([churn_events(), churn_events(1)], ignore_index=True),
        "unique_event_ids",
        False,
        "1 row(s) repeat an earlier row in every column" + REPEAT_HINT,
        {"column": "event_id", "observed": 1},
        "block",
    ),
    (
        "ranges_ok_at_bounds",
        spec(),
        at(at(churn_events(), "session_minutes", [0], 1440.0), "customer_id", [1], 0),
        "value_ranges",
        True,
        "all values within declared ranges",
        {},
        "block",
    ),
    (
        "ranges_below_min",
        spec(),
        at(churn_events(), "customer_id", [1], -1),
        "value_ranges",
        False,
        "column 'customer_id' minimum -1 is below 0.0",
        {"column": "customer_id", "observed": -1.0, "limit": 0.0},
        "block",
    ),
    (
        "ranges_above_max",
        spec(),
        at(churn_events(), "session_minutes", [0], 1441.0),
        "value_ranges",
        False,
        "column 'session_minutes' maximum 1441.0 is above 1440.0",
        {"column": "session_minutes", "observed": 1441.0, "limit": 1440.0},
        "block",
    ),
    (
        "ranges_outside_allowed",
        spec(),
        at(churn_events(), "plan", [2], "gold"),
        "value_ranges",
        False,
        "column 'plan' has values ['gold'] outside ['basic', 'standard', 'premium']",
        {"column": "plan", "observed": ["gold"], "expected": ["basic", "standard", "premium"]},
        "block",
    ),
    (
        "ranges_skip_a_wrong_dtype_column",
        spec(),
        churn_with(customer_id=lambda f: f["customer_id"].astype(float).where(f.index != 1, -1.0)),
        "value_ranges",
        True,
        "all values within declared ranges",
        {},
        "block",
    ),
    (
        "ranges_flag_value_outside_blocks_though_column_warns",
        spec(label={"positive": "YES"}, cancelled={**STRING_FLAG["cancelled"], "severity": "warn"}),
        churn_with(cancelled=lambda f: ["YES", "MAYBE"] + ["NO"] * 8),
        "value_ranges",
        False,
        "column 'cancelled' has values ['MAYBE'] outside ['YES', 'NO']",
        {"column": "cancelled"},
        "block",
    ),
    (
        "binary_label_ok",
        spec(),
        churn_events(),
        "binary_label",
        True,
        "positive rate 0.1000",
        {"column": "cancelled", "unknown": 0.0},
        "block",
    ),
    (
        "binary_label_non_binary",
        spec(),
        at(churn_events(), "cancelled", [0, 1, 2], 2),
        "binary_label",
        False,
        "label column 'cancelled' has non-binary values ['2'], expected 0/1",
        {"column": "cancelled", "observed": ["2"], "expected": [0, 1]},
        "block",
    ),
    (
        "binary_label_unknown_within_limit",
        spec(cancelled={"max_null_fraction": 0.1}),
        churn_with(cancelled=lambda f: f["cancelled"].astype("Int64").where(f.index != 5)),
        "binary_label",
        True,
        "positive rate 0.1111, 10.0% unknown",
        {"unknown": 0.1},
        "block",
    ),
    (
        "binary_label_unknown_over_limit",
        spec(cancelled={"max_null_fraction": 0.1}),
        churn_with(cancelled=lambda f: f["cancelled"].astype("Int64").where(f.index < 8)),
        "binary_label",
        False,
        "label column 'cancelled' is 20.0% null (unknown outcomes), limit 10.0%" + UNKNOWN_HINT,
        {"column": "cancelled", "observed": 0.2, "limit": 0.1},
        "block",
    ),
    (
        "binary_label_missing",
        spec(),
        churn_events().drop(columns=["cancelled"]),
        "binary_label",
        False,
        "label column 'cancelled' is missing",
        {"column": "cancelled"},
        "block",
    ),
    (
        "binary_label_string_flag",
        spec(label={"positive": "YES"}, **STRING_FLAG),
        churn_with(cancelled=lambda f: ["YES", "YES"] + ["NO"] * 8),
        "binary_label",
        True,
        "positive rate 0.2000",
        {},
        "block",
    ),
    (
        "finite_label_ok",
        spec("prices"),
        prices_events(),
        "finite_label",
        True,
        "mean 2.0000",
        {"column": "price", "unknown": 0.0},
        "block",
    ),
    (
        "finite_label_infinite",
        spec("prices"),
        at(prices_events(), "price", [1], np.inf),
        "finite_label",
        False,
        "label column 'price' has 1 non-finite value(s)",
        {"column": "price", "observed": 1, "limit": 0},
        "block",
    ),
    (
        "finite_label_unknown_warns",
        spec("prices", price={"severity": "warn"}),
        at(prices_events(), "price", [1], np.nan),
        "finite_label",
        False,
        "label column 'price' is 33.3% null (unknown outcomes), limit 0.0%" + UNKNOWN_HINT,
        {"column": "price", "limit": 0.0},
        "warn",
    ),
    (
        "class_label_ok",
        spec("news"),
        news_events(["crude", "crude", "earn", None, "acq"]),
        "class_label",
        True,
        "3 of 8 classes present, 20.0% unknown",
        {"counts": {"crude": 2, "earn": 1, "acq": 1}, "unknown": 0.2},
        "block",
    ),
    (
        "class_label_unknown_over_limit",
        spec("news"),
        news_events(["crude", None, "earn", None, "acq"]),
        "class_label",
        False,
        "label column 'topic' is 40.0% null (unknown outcomes), limit 30.0%" + UNKNOWN_HINT,
        {"column": "topic", "observed": 0.4, "limit": 0.3},
        "block",
    ),
    (
        "timestamps_ok",
        spec(),
        churn_events(),
        "timestamps_in_partition",
        True,
        "all timestamps inside the day",
        {"column": "event_time"},
        "block",
    ),
    (
        "timestamps_naive_read_as_utc",
        spec(),
        churn_with(event_time=lambda f: f["event_time"].dt.tz_localize(None)),
        "timestamps_in_partition",
        True,
        "all timestamps inside the day",
        {},
        "block",
    ),
    (
        "timestamps_last_instant",
        spec(),
        at(churn_events(), "event_time", [9], pd.Timestamp(f"{DAY} 23:59:59.999", tz="UTC")),
        "timestamps_in_partition",
        True,
        "all timestamps inside the day",
        {},
        "block",
    ),
    (
        "timestamps_next_midnight",
        spec(),
        at(churn_events(), "event_time", [9], pd.Timestamp("2025-01-02", tz="UTC")),
        "timestamps_in_partition",
        False,
        "column 'event_time' has 1 timestamp(s) outside the day, e.g. 2025-01-02 00:00:00+00:00",
        {"column": "event_time", "observed": 1, "limit": 0, "example": "2025-01-02 00:00:00+00:00"},
        "block",
    ),
    (
        "timestamps_other_zone_converted",
        spec(),
        churn_with(event_time=lambda f: f["event_time"].dt.tz_convert("Etc/GMT-2")).pipe(
            at, "event_time", [0], pd.Timestamp(f"{DAY} 01:00", tz="Etc/GMT-2")
        ),
        "timestamps_in_partition",
        False,
        "column 'event_time' has 1 timestamp(s) outside the day, e.g. 2024-12-31 23:00:00+00:00",
        {"observed": 1},
        "block",
    ),
    (
        "timestamps_missing_value",
        spec(),
        at(churn_events(), "event_time", [3], pd.NaT),
        "timestamps_in_partition",
        False,
        "column 'event_time' has 1 timestamp(s) outside the day, e.g. NaT",
        {"observed": 1},
        "block",
    ),
    (
        "timestamps_not_datetime",
        spec(),
        churn_with(event_time=lambda f: f["event_time"].astype(str)),
        "timestamps_in_partition",
        False,
        "column 'event_time' is missing or not a timestamp",
        {"column": "event_time"},
        "block",
    ),
]


def assert_outcome(
    outcome: CheckOutcome, passed: bool, message: str, metadata: dict[str, Any], severity: str | None
) -> None:
    assert (outcome.passed, outcome.message) == (passed, f"partition {DAY}: {message}")
    assert outcome.metadata["partition"] == DAY
    assert {key: outcome.metadata.get(key) for key in metadata} == metadata
    if severity is not None:
        assert outcome.severity == severity


@pytest.mark.parametrize(
    ("use_case", "frame", "check", "passed", "message", "metadata", "severity"),
    [pytest.param(*row[1:], id=row[0]) for row in RAW_CASES],
)
def test_raw_gate(
    use_case: UseCaseSpec,
    frame: pd.DataFrame,
    check: str,
    passed: bool,
    message: str,
    metadata: dict[str, Any],
    severity: str,
) -> None:
    outcomes = validate_events(frame, use_case, DAY)
    assert [o.check for o in outcomes] == list(raw_checks(use_case)), (
        "one outcome per raw gate, in the documented order"
    )
    assert_outcome(next(o for o in outcomes if o.check == check), passed, message, metadata, severity)


def with_nulls(frame: pd.DataFrame) -> pd.DataFrame:
    frame["plan"] = frame["plan"].where(np.arange(len(frame)) % 3 != 0, None)
    return frame


def with_future_events(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[:9, "event_time"] = frame.loc[:9, "event_time"] + pd.Timedelta(days=3)
    return frame


def with_label(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[:2, "cancelled"] = 2
    return frame


# Moved from integration/test_bad_inputs.py: bad landing files whose only difference from the cases kept there
# is which rule fails (gate.py blocks a day on any blocking outcome alike), with that test's expected messages.
BAD_INPUT_CASES = {
    "nulls_above_limit": (with_nulls, "null_fraction", "column 'plan' is 33.", "plan"),
    "non_binary_label": (
        with_label,
        "binary_label",
        "label column 'cancelled' has non-binary values ['2']",
        "cancelled",
    ),
    "future_dated_events": (
        with_future_events,
        "timestamps_in_partition",
        "column 'event_time' has 10 timestamp(s) outside the day",
        "event_time",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT_CASES))
def test_bad_landing_file_fails_its_blocking_gate(case: str) -> None:
    corrupt, check, message, column = BAD_INPUT_CASES[case]
    [failed] = [o for o in validate_events(corrupt(churn_events(21)), spec(), DAY) if not o.passed]
    assert (failed.check, failed.blocks, failed.metadata["partition"], failed.metadata["column"]) == (
        check,
        True,
        DAY,
        column,
    )
    assert failed.message.startswith(f"partition {DAY}: {message}")


@pytest.mark.parametrize(
    ("name", "label_check"),
    [("churn", "binary_label"), ("fraud", "binary_label"), ("prices", "finite_label"), ("news", "class_label")],
)
def test_raw_checks_name_the_label_gate_for_the_task(name: str, label_check: str) -> None:
    checks = raw_checks(spec(name))
    assert label_check in checks and "label_values" not in checks and len(checks) == 8


def test_an_unreadable_source_fails_landed_with_the_readers_message() -> None:
    [outcome] = unreadable_source(DAY, "cannot parse landing/churn/2025-01-01.parquet")
    assert (outcome.check, outcome.passed, outcome.blocks) == ("landed", False, True)
    assert outcome.message == "cannot parse landing/churn/2025-01-01.parquet" and outcome.metadata == {"partition": DAY}


def churn_features() -> pd.DataFrame:
    names = spec().feature_names
    return pd.DataFrame({"customer_id": [1, 2], "day": [DAY, DAY], **{name: [1.0, 2.0] for name in names}})


FEATURE_CASES = [
    # (id, spec, frame, missing raw days, check, passed, message, metadata subset)
    ("window_complete", spec(), churn_features(), [], "inputs_complete", True, "28-day lookback complete", {}),
    (
        "window_gap",
        spec(),
        churn_features(),
        ["2024-12-30", "2024-12-31"],
        "inputs_complete",
        False,
        "raw_events missing for ['2024-12-30', '2024-12-31'] inside the feature window",
        {"observed": ["2024-12-30", "2024-12-31"], "expected": "every window day materialized"},
    ),
    ("schema_ok", spec(), churn_features(), [], "feature_schema", True, "10 features", {}),
    (
        "schema_feature_missing",
        spec(),
        churn_features().drop(columns=["logins_7d"]),
        [],
        "feature_schema",
        False,
        "feature column 'logins_7d' is missing",
        {"column": "logins_7d"},
    ),
    (
        "schema_day_missing",
        spec(),
        churn_features().drop(columns=["day"]),
        [],
        "feature_schema",
        False,
        "feature column 'day' is missing",
        {"column": "day"},
    ),
    (
        "schema_not_numeric",
        spec(),
        churn_features().astype({"spend_28d": str}),
        [],
        "feature_schema",
        False,
        "feature column 'spend_28d' is not numeric",
        {"column": "spend_28d"},
    ),
    (
        "schema_text_feature_of_news",
        spec("news"),
        pd.DataFrame({"article_id": ["a0"], "day": [DAY], "article_text": ["oil"]}),
        [],
        "feature_schema",
        True,
        "1 features",
        {},
    ),
    ("nulls_ok", spec(), churn_features(), [], "feature_nulls", True, "no nulls", {}),
    (
        "nulls_worst_named",
        spec(),
        at(at(churn_features(), "spend_28d", [0, 1], np.nan), "logins_7d", [0], np.nan),
        [],
        "feature_nulls",
        False,
        "feature 'spend_28d' has 2 null(s)",
        {"column": "spend_28d", "observed": 2, "limit": 0},
    ),
    ("finite_ok", spec(), churn_features(), [], "feature_finite", True, "all finite", {}),
    (
        "finite_negative_infinity",
        spec(),
        at(churn_features(), "days_since_login", [1], -np.inf),
        [],
        "feature_finite",
        False,
        "feature 'days_since_login' has 1 infinite value(s)",
        {"column": "days_since_login", "observed": 1, "limit": 0},
    ),
]


@pytest.mark.parametrize(
    ("use_case", "frame", "missing", "check", "passed", "message", "metadata"),
    [pytest.param(*row[1:], id=row[0]) for row in FEATURE_CASES],
)
def test_feature_gate(
    use_case: UseCaseSpec,
    frame: pd.DataFrame,
    missing: list[str],
    check: str,
    passed: bool,
    message: str,
    metadata: dict[str, Any],
) -> None:
    outcomes = validate_features(frame, use_case, DAY, missing)
    assert [o.check for o in outcomes] == ["inputs_complete", "feature_schema", "feature_nulls", "feature_finite"]
    assert_outcome(next(o for o in outcomes if o.check == check), passed, message, metadata, "block")


PREDICTION_CASES = [
    # (id, spec, frame, passed, message)
    ("probabilities_ok", spec(), pd.DataFrame({"customer_id": [1, 2], "score": [0.0, 1.0]}), True, "2 rows scored"),
    (
        "null_score",
        spec(),
        pd.DataFrame({"customer_id": [1, 2], "score": [0.5, np.nan]}),
        False,
        "1 null score(s), range [0.5, 0.5], 0 duplicated row(s)",
    ),
    (
        "probability_above_one",
        spec(),
        pd.DataFrame({"customer_id": [1, 2], "score": [0.2, 1.5]}),
        False,
        "0 null score(s), range [0.2, 1.5], 0 duplicated row(s)",
    ),
    (
        "infinite_score",
        spec(),
        pd.DataFrame({"customer_id": [1, 2], "score": [0.2, np.inf]}),
        False,
        "0 null score(s), range [0.2, inf], 0 duplicated row(s)",
    ),
    (
        "row_scored_twice",
        spec(),
        pd.DataFrame({"customer_id": [1, 1], "score": [0.2, 0.3]}),
        False,
        "0 null score(s), range [0.2, 0.3], 1 duplicated row(s)",
    ),
    (
        "forecast_any_finite_number",
        spec("prices"),
        pd.DataFrame({"series_id": [1, 2], "score": [-3.0, 42.0]}),
        True,
        "2 rows scored",
    ),
    (
        "fraud_key_is_transaction_and_card",
        spec("fraud"),
        pd.DataFrame({"transaction_id": ["t1", "t1"], "card_id": [1, 2], "score": [0.1, 0.2]}),
        True,
        "2 rows scored",
    ),
    (
        "fraud_same_transaction_and_card",
        spec("fraud"),
        pd.DataFrame({"transaction_id": ["t1", "t1"], "card_id": [1, 1], "score": [0.1, 0.2]}),
        False,
        "0 null score(s), range [0.1, 0.2], 1 duplicated row(s)",
    ),
]


@pytest.mark.parametrize(
    ("use_case", "frame", "passed", "message"), [pytest.param(*row[1:], id=row[0]) for row in PREDICTION_CASES]
)
def test_prediction_gate(use_case: UseCaseSpec, frame: pd.DataFrame, passed: bool, message: str) -> None:
    [outcome] = validate_predictions(frame, use_case, DAY)
    assert outcome.check == "scores_valid"
    assert_outcome(outcome, passed, message, {} if passed else {"column": "score"}, "block")


DRIFT_CASES = [
    # (id, outcomes, passed, message, metadata subset)
    (
        "within_limit",
        validate_drift({"a": 0.1, "b": 0.25}, 0.25, DAY, "psi"),
        True,
        "max PSI 0.250",
        {"max_psi": 0.25, "limit": 0.25, "drifted": {}, "method": "psi"},
    ),
    (
        "above_limit_named",
        validate_drift({"a": 0.1, "b": 0.31234, "score": 0.4}, 0.25, DAY, "psi"),
        False,
        "PSI above 0.25 for {'b': 0.3123, 'score': 0.4}",
        {"max_psi": 0.4, "drifted": {"b": 0.3123, "score": 0.4}},
    ),
    ("nothing_measured", validate_drift({}, 0.25, DAY, "psi"), True, "max PSI 0.000", {"max_psi": 0.0}),
    (
        "warm_up",
        drift_warm_up(DAY),
        True,
        "warm-up day, its feature windows reach before the first raw day; not measured",
        {"measured": False},
    ),
    (
        "too_few_rows",
        drift_too_few_rows(DAY, 12, 200),
        True,
        "12 row(s), fewer than drift.min_rows 200: too few for a stable PSI; not measured",
        {"measured": False, "rows": 12, "min_rows": 200},
    ),
]


@pytest.mark.parametrize(
    ("outcomes", "passed", "message", "metadata"), [pytest.param(*row[1:], id=row[0]) for row in DRIFT_CASES]
)
def test_drift_gate(outcomes: list[CheckOutcome], passed: bool, message: str, metadata: dict[str, Any]) -> None:
    [outcome] = outcomes
    assert outcome.check == "psi_within_limit"
    assert_outcome(outcome, passed, message, metadata, None)
