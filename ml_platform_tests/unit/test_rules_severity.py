"""Raw-event gates act with the severity the spec gives each check and each column: warn or block."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pytest

from demo.generators.churn import generate_churn_events
from ml_platform.checks.rules import CheckOutcome, validate_events
from ml_platform.definitions import load_specs
from ml_platform.spec import UseCaseSpec

DAY = dt.date(2025, 1, 1)


@pytest.fixture(scope="module")
def churn_day() -> pd.DataFrame:
    [(_, frame)] = list(generate_churn_events(DAY, 1, 400, seed=1))
    return frame.head(200).reset_index(drop=True)  # 200 rows: every n-th row is an exact fraction


def spec_with(name: str = "churn", severity: dict[str, str] | None = None, **columns: dict[str, Any]) -> UseCaseSpec:
    """A shipped spec with `gates.severity` and each named column's fields replaced."""
    data = next(s for s in load_specs() if s.name == name).model_dump(mode="json", exclude_unset=True)
    data["gates"] = {**data["gates"], "severity": severity or {}}
    data["columns"] = [{**c, **columns.get(c["name"], {})} for c in data["columns"]]
    return UseCaseSpec.model_validate(data)


def outcome(frame: pd.DataFrame, spec: UseCaseSpec, check: str) -> CheckOutcome:
    [found] = [o for o in validate_events(frame, spec, DAY.isoformat()) if o.check == check]
    return found


def with_nulls(frame: pd.DataFrame, column: str, every: int) -> pd.DataFrame:
    """Every `every`-th row of `column` null (1/every of the day)."""
    return frame.assign(**{column: frame[column].where(np.arange(len(frame)) % every != 0, None)})


def test_a_warn_column_over_its_null_limit_warns_and_lets_the_day_through(churn_day: pd.DataFrame) -> None:
    spec = spec_with(plan={"max_null_fraction": 0.1, "severity": "warn"})
    result = outcome(with_nulls(churn_day, "plan", 3), spec, "null_fraction")
    assert not result.passed and result.severity == "warn" and not result.blocks
    assert result.message.startswith("partition 2025-01-01: column 'plan' is 33.")
    assert "limit 10.0%" in result.message
    # the same column without its own severity takes the gate's, block by default
    blocking = outcome(with_nulls(churn_day, "plan", 3), spec_with(plan={"max_null_fraction": 0.1}), "null_fraction")
    assert blocking.blocks


def test_a_gate_set_to_warn_warns_unless_a_column_says_block(churn_day: pd.DataFrame) -> None:
    frame = with_nulls(churn_day, "plan", 3)
    assert outcome(frame, spec_with(severity={"null_fraction": "warn"}), "null_fraction").severity == "warn"
    strict = spec_with(severity={"null_fraction": "warn"}, plan={"severity": "block"})
    assert outcome(frame, strict, "null_fraction").blocks


def test_a_block_and_a_warn_column_over_their_limits_block_naming_both_blocking_first(churn_day: pd.DataFrame) -> None:
    frame = with_nulls(with_nulls(churn_day, "plan", 2), "event_type", 4)  # plan 50% null (worse), event_type 25%
    spec = spec_with(plan={"severity": "warn"}, event_type={"severity": "block"})
    result = outcome(frame, spec, "null_fraction")
    assert result.blocks
    blocking, warning = result.message.split("; ")
    assert blocking == "partition 2025-01-01: column 'event_type' is 25.0% null, limit 0.0%"
    assert warning == "column 'plan' is 50.0% null, limit 0.0% (warns)"
    assert result.metadata["column"] == "event_type"
    assert [(v["column"], v["severity"]) for v in result.metadata["violations"]] == [
        ("event_type", "block"),
        ("plan", "warn"),
    ]


def test_value_ranges_names_every_violating_column(churn_day: pd.DataFrame) -> None:
    frame = churn_day.assign(session_minutes=churn_day["session_minutes"].fillna(0.0))
    frame.loc[0, "session_minutes"] = 5_000.0
    frame.loc[1, "customer_id"] = -1
    frame.loc[2, "plan"] = "platinum"
    result = outcome(frame, spec_with(), "value_ranges")
    assert result.blocks
    assert result.message.split("; ") == [
        "partition 2025-01-01: column 'customer_id' minimum -1 is below 0.0",
        "column 'plan' has values ['platinum'] outside ['basic', 'standard', 'premium']",
        "column 'session_minutes' maximum 5000.0 is above 1440.0",
    ]
    # with two of them warning, the one that blocks comes first
    mixed = outcome(frame, spec_with(severity={"value_ranges": "warn"}, plan={"severity": "block"}), "value_ranges")
    assert mixed.blocks and mixed.message.startswith("partition 2025-01-01: column 'plan' has values ['platinum']")
    assert mixed.message.count("(warns)") == 2
    warned = outcome(frame, spec_with(severity={"value_ranges": "warn"}), "value_ranges")
    assert not warned.passed and warned.severity == "warn" and "(warns)" not in warned.message


def test_label_unknown_outcomes_over_the_limit_act_with_the_label_columns_severity(churn_day: pd.DataFrame) -> None:
    frame = with_nulls(churn_day, "cancelled", 5).assign(cancelled=lambda f: f["cancelled"].astype("Int64"))
    lenient = spec_with(cancelled={"max_null_fraction": 0.1, "severity": "warn"})
    result = outcome(frame, lenient, "binary_label")
    assert not result.passed and result.severity == "warn"
    assert "label column 'cancelled' is 20.0% null (unknown outcomes), limit 10.0%" in result.message
    assert outcome(frame, spec_with(cancelled={"max_null_fraction": 0.1}), "binary_label").blocks
    assert (
        outcome(
            frame, spec_with(severity={"binary_label": "warn"}, cancelled={"max_null_fraction": 0.1}), "binary_label"
        ).severity
        == "warn"
    )


def test_invalid_labels_block_whatever_the_severity(churn_day: pd.DataFrame) -> None:
    frame = with_nulls(churn_day, "cancelled", 5).assign(cancelled=lambda f: f["cancelled"].astype("Int64"))
    frame.loc[1, "cancelled"] = 2  # also over its null limit, which alone would only warn
    spec = spec_with(severity={"binary_label": "warn"}, cancelled={"max_null_fraction": 0.1, "severity": "warn"})
    result = outcome(frame, spec, "binary_label")
    assert result.blocks and "non-binary values ['2']" in result.message


def test_a_class_outside_the_labels_allowed_values_blocks_in_value_ranges() -> None:
    """A class label's closed set is label validity: an unknown class would be trained on as a wrong class."""
    spec = spec_with("news", severity={"value_ranges": "warn", "class_label": "warn"}, topic={"severity": "warn"})
    frame = pd.DataFrame(
        {
            "article_id": ["a", "b"],
            "published_at": pd.to_datetime(["2025-01-01 08:00"] * 2, utc=True),
            "text": ["oil up", "new topic"],
            "topic": ["crude", "sports"],
        }
    )
    result = outcome(frame, spec, "value_ranges")
    assert result.blocks and "column 'topic' has values ['sports']" in result.message


@pytest.mark.parametrize("check", ["min_rows", "unique_event_ids", "timestamps_in_partition"])
def test_whole_day_gates_act_with_their_gate_severity(churn_day: pd.DataFrame, check: str) -> None:
    frame = churn_day.copy()
    if check == "min_rows":
        frame = frame.head(3)
    elif check == "unique_event_ids":
        frame.loc[1, "event_id"] = frame.loc[0, "event_id"]
    else:
        frame.loc[0, "event_time"] += pd.Timedelta(days=2)
    assert outcome(frame, spec_with(), check).blocks
    warned = outcome(frame, spec_with(severity={check: "warn"}), check)
    assert not warned.passed and warned.severity == "warn" and warned.message.startswith("partition 2025-01-01: ")


def test_landed_and_schema_always_block(churn_day: pd.DataFrame) -> None:
    every_gate = {
        check: "warn"
        for check in (
            "null_fraction",
            "min_rows",
            "unique_event_ids",
            "value_ranges",
            "timestamps_in_partition",
            "binary_label",
        )
    }
    spec = spec_with(severity=every_gate)
    assert outcome(churn_day.drop(columns=["plan"]), spec, "schema").blocks
    assert outcome(churn_day, spec, "landed").severity == "block"
    # a passed gate says how it would act: warn when every column it checks warns
    assert outcome(churn_day, spec, "null_fraction").severity == "warn"
    assert (
        outcome(churn_day, spec_with(severity=every_gate, plan={"severity": "block"}), "null_fraction").severity
        == "block"
    )
