"""What Dagster's UI shows for the gates, read through the UI's own GraphQL, on SQLite and on Postgres.

The UI's check *Partitions* tab reads `partitionStatuses` (Dagster's partition status cache, which
only counts an evaluation that targets the partition's latest materialization), the asset node's
check summary reads `executionForLatestMaterialization`, and a partition's panel reads
`assetCheckExecutions(partition: ...)`. Each scenario runs the real assets, then asks the GraphQL
schema the webserver serves (over a code server, as the webserver does) what a user would see.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

from demo.generators.churn import write_landing_files
from ml_platform.assets import keys
from ml_platform.checks.rules import FEATURE_CHECKS, raw_checks
from ml_platform.cli import summary as _summary
from ml_platform.definitions import build_definitions
from ml_platform.runner import materialize_stages
from ml_platform.spec import UseCaseSpec
from ml_platform_tests.support import postgres
from ml_platform_tests.support.check_view import CheckView
from ml_platform_tests.support.fixtures import START, day_keys, landing_dir

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgres"])
def instance(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dg.DagsterInstance]:
    """The shipped dagster.yaml (SQLite under DAGSTER_HOME), or the same with storage on a fresh Postgres database."""
    config = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    if request.param == "postgres":
        config.update(postgres.postgres_instance_storage(request.getfixturevalue("postgres_database")()))
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # for the whole test: the code servers it starts load it too
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        yield instance
    finally:
        instance.dispose()


@pytest.fixture
def view(instance: dg.DagsterInstance) -> Iterator[CheckView]:
    with CheckView(instance) as view:
        yield view


def test_check_partitions_show_passed_failed_and_fixed_days(
    data_dir: Path, churn_spec: UseCaseSpec, instance: dg.DagsterInstance, view: CheckView
) -> None:
    spec, days = churn_spec, day_keys(START, 12)
    write_landing_files(landing_dir(data_dir), START, 12, 200, seed=5)
    missing = landing_dir(data_dir) / f"{days[5]}.parquet"
    kept = missing.read_bytes()
    missing.unlink()
    defs = build_definitions([spec])
    raw, features = raw_checks(spec), FEATURE_CHECKS

    def run(stage_days: list[str]) -> bool:
        return materialize_stages(defs, spec, ["raw_events", "features"], instance, stage_days).success

    # a one-day run (as the schedule and sensors launch) and a range (as a backfill does)
    assert run(days[:1]) and run(days[1:5])
    statuses = view.statuses()
    for check in raw:
        assert statuses[("raw_events", check)] == dict.fromkeys(days[:5], "SUCCEEDED"), check
    for check in features:
        assert statuses[("features", check)] == dict.fromkeys(days[:5], "SUCCEEDED"), check
    assert {view.latest[("raw_events", c)] for c in raw} | {view.latest[("features", c)] for c in features} == {
        "SUCCEEDED"
    }

    # a range with a day whose file never landed: that day fails `landed` only; the rest pass
    assert not run(days[5:])
    statuses = view.statuses()
    assert statuses[("raw_events", "landed")] == {**dict.fromkeys(days, "SUCCEEDED"), days[5]: "FAILED"}
    for check in raw:
        if check != "landed":
            # could not evaluate a day without data; the run failed, so Dagster says "Execution failed"
            assert statuses[("raw_events", check)] == {**dict.fromkeys(days, "SUCCEEDED"), days[5]: "EXECUTION_FAILED"}
    blocked = days[5 : 5 + spec.lookback_days]  # the feature days whose window holds the failed raw day
    for check in features:  # those fail (inputs_complete says why, the others could not run); the rest went through
        expected = "FAILED" if check == "inputs_complete" else "EXECUTION_FAILED"
        assert statuses[("features", check)] == {
            **dict.fromkeys(days, "SUCCEEDED"),
            **dict.fromkeys(blocked, expected),
        }, check
    blocked_panel = view.partition_panel(keys.features(spec), "inputs_complete", blocked[-1])
    assert f"churn/raw_events {days[5]} failed" in blocked_panel["evaluation"]["description"]
    panel = view.partition_panel(keys.raw_events(spec), "landed", days[5])
    assert panel["status"] == "FAILED" and panel["partition"] == days[5]
    assert days[5] in panel["evaluation"]["description"] and "no landed file" in panel["evaluation"]["description"]
    summary = _summary(spec.name, instance)  # `ml-platform summary` says the same
    assert f"churn/raw_events:landed: 1 day(s) ({days[5]}); latest: partition {days[5]}: no landed file" in summary
    assert "failed runs (latest 1):" in summary and "raw_events -> features" in summary
    good_panel = view.partition_panel(keys.raw_events(spec), "min_rows", days[6])
    assert good_panel["status"] == "SUCCEEDED" and "rows" in good_panel["evaluation"]["description"]
    assert {"observed", "limit"} <= {entry["label"] for entry in good_panel["evaluation"]["metadataEntries"]}

    # the file lands late; re-running the range fixes every day, in both views
    missing.write_bytes(kept)
    assert run(days[5:])
    statuses = view.statuses()
    for check in raw:
        assert statuses[("raw_events", check)] == dict.fromkeys(days, "SUCCEEDED"), check
    for check in features:
        assert statuses[("features", check)] == dict.fromkeys(days, "SUCCEEDED"), check
    assert {view.latest[("raw_events", c)] for c in raw} | {view.latest[("features", c)] for c in features} == {
        "SUCCEEDED"
    }
