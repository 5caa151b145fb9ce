"""Rows whose outcome is unknown: a CSV label column with blanks is read as integers with gaps, held to the
column's own max_null_fraction, left out of training and holdout (and counted), and still scored."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd

from ml_platform.assets import keys
from ml_platform.definitions import build_definitions
from ml_platform.io.parquet_lake import DataLake
from ml_platform.runner import materialize_stages
from ml_platform.spec import UseCaseSpec
from ml_platform_tests.support.fraud_csv import DAYS, UNKNOWN_SHARE, csv_fraud_spec, land_with_unknown_labels


def test_unknown_labels_are_scored_not_trained_on_and_counted(data_dir: Path) -> None:
    spec = csv_fraud_spec(max_null_fraction=0.5)
    unknown = land_with_unknown_labels(data_dir, UNKNOWN_SHARE)
    days = sorted(unknown)
    defs = build_definitions([spec])
    daily = materialize_stages(defs, spec, ["raw_events", "features"], dg.DagsterInstance.ephemeral(), days)
    assert daily.success
    label_checks = [e for e in daily.get_asset_check_evaluations() if e.check_name == "binary_label"]
    assert len(label_checks) == DAYS and all(e.passed for e in label_checks)
    assert all(0.1 < e.metadata["unknown"].value < 0.3 for e in label_checks)

    lake = DataLake(base_path=str(data_dir / "lake"))
    raw = lake.read(keys.raw_events(spec), [days[-1]])
    assert pd.api.types.is_integer_dtype(raw["is_fraud"]) and raw["is_fraud"].isna().sum() == len(unknown[days[-1]])
    features = lake.read(keys.features(spec), [days[-1]])
    assert unknown[days[-1]] <= set(features["transaction_id"]), "rows with an unknown label still get features"

    training = materialize_stages(defs, spec, ["training_set"], dg.DagsterInstance.ephemeral())
    assert training.success
    frame = lake.read(keys.training_set(spec), None)
    assert frame["label"].notna().all() and set(frame["label"]) <= {0.0, 1.0}
    window = sorted(frame["day"].unique())
    expected_unknown = sum(len(unknown[day]) for day in window)
    [materialization] = training.asset_materializations_for_node("fraud_csv__training_set")
    assert materialization.metadata["unlabelled_rows"].value == expected_unknown
    assert not set(frame["transaction_id"]) & set().union(*(unknown[day] for day in window))


def test_more_unknown_labels_than_the_column_allows_fail_the_label_gate_naming_the_limit(data_dir: Path) -> None:
    spec = csv_fraud_spec(max_null_fraction=0.05)
    unknown = land_with_unknown_labels(data_dir, UNKNOWN_SHARE)
    day = sorted(unknown)[0]
    result = materialize_stages(build_definitions([spec]), spec, ["raw_events"], dg.DagsterInstance.ephemeral(), [day])
    assert not result.success
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "binary_label"]
    assert not check.passed
    assert (
        "label column 'is_fraud' is" in check.description and "null (unknown outcomes), limit 5.0%" in check.description
    )
    assert "max_null_fraction" in check.description
    assert DataLake(base_path=str(data_dir / "lake")).existing_partitions(keys.raw_events(spec)) == []


def without_event_id(spec: UseCaseSpec, **options: object) -> UseCaseSpec:
    """The spec with no id column: events are identified by their content."""
    data = spec.model_dump()
    columns = [c for c in data["columns"] if c["name"] != "transaction_id"]
    return UseCaseSpec.model_validate({**data, "columns": columns, "event_id_column": None, **options})


def test_events_without_an_id_are_identified_by_their_content_and_repeats_are_refused(data_dir: Path) -> None:
    spec = without_event_id(csv_fraud_spec(max_null_fraction=0.5))
    unknown = land_with_unknown_labels(data_dir, UNKNOWN_SHARE)
    landing = data_dir / "landing" / "fraud_csv"
    for path in landing.glob("*.csv"):
        pd.read_csv(path).drop(columns=["transaction_id"]).to_csv(path, index=False)
    days = sorted(unknown)
    defs = build_definitions([spec])
    assert materialize_stages(defs, spec, ["raw_events", "features"], dg.DagsterInstance.ephemeral(), days).success
    lake = DataLake(base_path=str(data_dir / "lake"))
    raw = lake.read(keys.raw_events(spec), [days[-1]])
    features = lake.read(keys.features(spec), [days[-1]])
    assert raw["row_id"].is_unique and set(features["row_id"]) == set(raw["row_id"])
    again = materialize_stages(defs, spec, ["raw_events"], dg.DagsterInstance.ephemeral(), [days[-1]])
    assert again.success and lake.read(keys.raw_events(spec), [days[-1]])["row_id"].tolist() == raw["row_id"].tolist()
    assert materialize_stages(defs, spec, ["training_set"], dg.DagsterInstance.ephemeral()).success
    assert lake.read(keys.training_set(spec), None)["label"].notna().all()

    repeated = landing / f"{days[0]}.csv"
    frame = pd.read_csv(repeated)
    pd.concat([frame, frame.head(3)]).to_csv(repeated, index=False)
    result = materialize_stages(defs, spec, ["raw_events"], dg.DagsterInstance.ephemeral(), [days[0]])
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "unique_event_ids"]
    assert not check.passed and "3 row(s) repeat an earlier row in every column" in check.description
    assert "name an event_id_column or the unique_columns" in check.description


def test_a_window_whose_outcomes_are_all_unknown_fails_the_training_set_saying_so(data_dir: Path) -> None:
    """Every label blank (a field survey whose outcome is recorded later): the training set says there is no
    labelled row to train on, instead of handing the trainer nothing."""
    spec = csv_fraud_spec(max_null_fraction=1.0)
    days = sorted(land_with_unknown_labels(data_dir, share=1.0))
    defs = build_definitions([spec])
    assert materialize_stages(defs, spec, ["raw_events", "features"], dg.DagsterInstance.ephemeral(), days).success
    training = materialize_stages(defs, spec, ["training_set"], dg.DagsterInstance.ephemeral())
    assert not training.success
    failure = next(event for event in training.all_events if event.is_step_failure)
    assert "no labelled row in the train days" in str(failure.event_specific_data.error)
