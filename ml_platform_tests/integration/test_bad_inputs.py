"""The bad-input matrix: each bad landing file fails its blocking check and loses nothing.

For every case a day that already has good raw events, features and
predictions is re-delivered broken and re-run through raw -> features ->
predictions. The named check must fail with a message naming partition and
column; nothing downstream of the day may materialize (its features and
predictions fail naming it); the landed file, the previous good lake files and
the champion must all stay exactly as they were.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from ml_platform.assets import keys
from ml_platform.definitions import build_definitions, load_specs
from ml_platform.resources import default_resources
from ml_platform.resources.mlflow_resource import CHAMPION
from ml_platform.runner import DAILY_STAGES, materialize_stages
from ml_platform_tests.support.fixtures import landing_dir
from ml_platform_tests.support.results import daily_step, materializations

BAD_DAY = "2025-02-15"
UNLANDED_DAY = "2025-03-10"


def rewrite(transform: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        transform(pd.read_parquet(path)).to_parquet(path, index=False)

    return apply


def with_duplicate_ids(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[5, "event_id"] = frame.loc[4, "event_id"]
    return frame


# One case per path a bad file takes: the reader, the schema (Parquet's dtypes), an empty day, a blocking gate.
# Which rule fails for which bad value (nulls, labels, timestamps, ...) is unit/test_rules.py's table.
CASES = {
    "missing_column": (rewrite(lambda f: f.drop(columns=["plan"])), "schema", "missing column(s) ['plan']", "plan"),
    "wrong_dtype": (
        rewrite(lambda f: f.assign(customer_id=f["customer_id"].astype(str))),
        "schema",
        "column 'customer_id' has dtype string, expected int64",
        "customer_id",
    ),
    "duplicate_ids": (
        rewrite(with_duplicate_ids),
        "unique_event_ids",
        "column 'event_id' has 1 duplicated id",
        "event_id",
    ),
    "empty_file": (rewrite(lambda f: f.iloc[0:0]), "min_rows", "0 rows, expected at least 10", None),
    "unparsable_file": (lambda path: path.write_bytes(b"PAR1 this is not parquet"), "landed", "cannot parse", None),
}


def digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def lake_file(data: Path, key: dg.AssetKey, day: str) -> Path:
    return data / "lake" / Path(*key.path) / f"{day}.parquet"


def check_evaluations(result: dg.ExecuteInProcessResult, check: str) -> list:
    return [e for e in result.get_asset_check_evaluations() if e.check_name == check]


def run_day(day: str, spec) -> dg.ExecuteInProcessResult:
    return materialize_stages(
        build_definitions(load_specs()), spec, DAILY_STAGES, dg.DagsterInstance.ephemeral(), [day]
    )


def snapshot(data: Path, spec, day: str) -> dict:
    mlflow = default_resources()["mlflow"]
    files = {stage: digest(lake_file(data, keys.of_stage(spec, stage), day)) for stage in DAILY_STAGES}
    other_day_predictions = digest(lake_file(data, keys.predictions(spec), "2025-02-14"))
    return {
        **files,
        "other_day_predictions": other_day_predictions,
        "champion": mlflow.version_by_alias(spec.name, CHAMPION).version,
    }


def assert_blocked(result: dg.ExecuteInProcessResult, spec) -> None:
    assert not result.success
    materialized = [e.asset_key for e in result.get_asset_materialization_events()]
    assert materialized == [], f"nothing may materialize downstream of a failed gate, got {materialized}"
    blocked = {
        (e.asset_key, e.check_name)
        for e in result.get_asset_check_evaluations()
        if not e.passed and e.metadata.get("upstream_failed")
    }
    assert blocked == {(keys.features(spec), "inputs_complete"), (keys.predictions(spec), "scores_valid")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_landing_file_fails_its_gate_and_keeps_previous_state(case: str, trained_copy: Path, churn_spec) -> None:
    corrupt, check, message, column = CASES[case]
    landed = landing_dir(trained_copy) / f"{BAD_DAY}.parquet"
    corrupt(landed)
    landed_before = digest(landed)
    before = snapshot(trained_copy, churn_spec, BAD_DAY)
    assert before["raw_events"] and before["features"] and before["predictions"]

    result = run_day(BAD_DAY, churn_spec)

    assert_blocked(result, churn_spec)
    failed = [e for e in check_evaluations(result, check) if not e.passed]
    assert len(failed) == 1, f"expected check '{check}' to fail once"
    evaluation = failed[0]
    assert evaluation.partition == BAD_DAY
    assert message in evaluation.description and BAD_DAY in evaluation.description
    if column is not None:
        assert evaluation.metadata["column"].value == column or column in str(evaluation.metadata["column"].value)
    failure = result.failure_data_for_node(daily_step(churn_spec.name))
    assert BAD_DAY in str(failure.user_failure_data.description) and message in str(
        failure.user_failure_data.description
    )
    assert digest(landed) == landed_before, "the platform must never modify landed files"
    assert snapshot(trained_copy, churn_spec, BAD_DAY) == before, "previous good state must stay in place"


def test_missing_day_fails_landed_gate(trained_copy: Path, churn_spec) -> None:
    landing = sorted(p.name for p in landing_dir(trained_copy).iterdir())
    before = snapshot(trained_copy, churn_spec, UNLANDED_DAY)
    result = run_day(UNLANDED_DAY, churn_spec)
    assert_blocked(result, churn_spec)
    evaluation = next(e for e in check_evaluations(result, "landed") if not e.passed)
    assert evaluation.partition == UNLANDED_DAY
    assert f"partition {UNLANDED_DAY}: no landed file" in evaluation.description
    assert sorted(p.name for p in landing_dir(trained_copy).iterdir()) == landing
    assert snapshot(trained_copy, churn_spec, UNLANDED_DAY) == before
    assert before["raw_events"] is None


def test_one_bad_day_in_a_range_keeps_the_good_days(trained_copy: Path, churn_spec) -> None:
    """A range run records the good days and fails naming only the bad one."""
    days = ["2025-02-14", BAD_DAY, "2025-02-16"]
    CASES["duplicate_ids"][0](landing_dir(trained_copy) / f"{BAD_DAY}.parquet")
    result = materialize_stages(
        build_definitions(load_specs()), churn_spec, ["raw_events"], dg.DagsterInstance.ephemeral(), days
    )
    assert not result.success
    recorded = sorted(m.partition for m in materializations(result, keys.raw_events(churn_spec)))
    assert recorded == ["2025-02-14", "2025-02-16"]
    failed = sorted(e.partition for e in result.get_asset_check_evaluations() if not e.passed)
    assert failed == [BAD_DAY]
    description = result.failure_data_for_node(daily_step(churn_spec.name)).user_failure_data.description
    assert f"churn/raw_events: 1 partition(s) failed ({BAD_DAY})" in description and "duplicated id" in description


def test_a_failure_message_lists_a_few_bad_days_and_counts_the_rest(trained_copy: Path, churn_spec) -> None:
    """Eight days without landed files: the step's message names five with their reasons and counts the others,
    the metadata lists all eight."""
    days = [f"2025-02-{day:02d}" for day in range(10, 18)]
    for day in days:
        (landing_dir(trained_copy) / f"{day}.parquet").unlink()
    result = materialize_stages(
        build_definitions(load_specs()), churn_spec, ["raw_events"], dg.DagsterInstance.ephemeral(), days
    )
    failure = result.failure_data_for_node(daily_step(churn_spec.name)).user_failure_data
    assert f"8 partition(s) failed ({', '.join(days[:5])} and 3 more)" in failure.description
    assert failure.description.count("[check landed]") == 5 and days[5] not in failure.description
    assert failure.metadata["failed_partitions"].value == {"churn/raw_events": days}


def test_features_gate_blocks_days_whose_window_has_a_gap(trained_copy: Path, churn_spec) -> None:
    """A missing raw day inside the window fails inputs_complete rather than silently undercounting."""
    gap = lake_file(trained_copy, keys.raw_events(churn_spec), "2025-02-10")
    gap.unlink()
    result = materialize_stages(
        build_definitions(load_specs()),
        churn_spec,
        ["features"],
        dg.DagsterInstance.ephemeral(),
        ["2025-02-09", "2025-02-12"],
    )
    failed = {e.partition: e.description for e in result.get_asset_check_evaluations() if not e.passed}
    assert set(failed) == {"2025-02-10", "2025-02-11", "2025-02-12"}, "2025-02-09's window ends before the gap"
    assert all("2025-02-10" in description for description in failed.values())
    recorded = [m.partition for m in materializations(result, keys.features(churn_spec))]
    assert recorded == ["2025-02-09"]
    assert not result.success
