"""A bad day costs that day only, all the way down one range run (issue 24).

Sixty days go raw_events -> features -> predictions in one run (`ml-platform materialize`, as a
single-run backfill does) with one bad raw day. Every other raw day is written; the feature days whose
window holds the bad day fail naming it, and so do their predictions; every other day gets features
and predictions in the same run. What the UI shows is read through the GraphQL it reads: each asset's
Partitions view counts exactly those days Failed, and each failed day's check says why. The bad day's
earlier good files and the champion stay as they were, and the command says what failed and exits 1.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml

from ml_platform.assets import keys
from ml_platform.cli import main as cli
from ml_platform.resources import default_resources
from ml_platform.resources.mlflow_resource import CHAMPION
from ml_platform.spec import UseCaseSpec
from ml_platform_tests.support.check_view import CheckView
from ml_platform_tests.support.fixtures import START, day_keys, landing_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
DAYS = day_keys(START, 60)
BAD_DAY = DAYS[20]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_one_bad_day_among_60_fails_only_itself_and_the_days_that_depend_on_it(
    trained_copy: Path,
    churn_spec: UseCaseSpec,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    spec, lake = churn_spec, trained_copy / "lake" / "churn"
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    landed = landing_dir(trained_copy) / f"{BAD_DAY}.parquet"
    frame = pd.read_parquet(landed)
    frame["plan"] = frame["plan"].where(np.arange(len(frame)) % 3 != 0, None)  # a third null: over its limit
    frame.to_parquet(landed, index=False)
    blocked = DAYS[20 : 20 + spec.lookback_days]  # the feature days whose window holds the bad day
    kept = {stage: _digest(lake / stage / f"{BAD_DAY}.parquet") for stage in ("raw_events", "features", "predictions")}
    champion = default_resources()["mlflow"].version_by_alias(spec.name, CHAMPION).version

    code = cli(
        ["materialize", "churn", "--stages", "raw_events,features,predictions", "--from", DAYS[0], "--to", DAYS[-1]]
    )

    output = capsys.readouterr()
    assert code == 1
    assert f"churn: 60 day(s) {DAYS[0]}..{DAYS[-1]}: FAILED" in output.out
    good = 60 - len(blocked)
    assert "raw_events: 59 day(s) done, 1 failed" in output.out
    assert f"features: {good} day(s) done, {len(blocked)} failed" in output.out
    assert f"predictions: {good} day(s) done, {len(blocked)} failed" in output.out
    assert f"raw_events {BAD_DAY} failed: null_fraction: partition {BAD_DAY}: column 'plan' is 33." in output.err
    assert (
        f"features {blocked[1]} failed: inputs_complete: partition {blocked[1]}: its window holds a failed raw "
        f"day: churn/raw_events {BAD_DAY} failed in this run (null_fraction)" in output.err
    )

    instance = dg.DagsterInstance.from_config(str(home))
    try:
        [run] = instance.get_runs()  # one run did all of it
        with CheckView(instance) as view:
            partitions = view.asset_partitions()
            assert partitions["raw_events"] == {**dict.fromkeys(DAYS, "MATERIALIZED"), BAD_DAY: "FAILED"}
            for asset in ("features", "predictions"):
                assert partitions[asset] == {
                    **dict.fromkeys(DAYS, "MATERIALIZED"),
                    **dict.fromkeys(blocked, "FAILED"),
                }, asset
                assert view.partition_stats[asset] == {"numMaterialized": good, "numFailed": len(blocked)}
            checks = view.statuses()
            assert checks[("raw_events", "null_fraction")] == {**dict.fromkeys(DAYS, "SUCCEEDED"), BAD_DAY: "FAILED"}
            assert checks[("features", "inputs_complete")] == {
                **dict.fromkeys(DAYS, "SUCCEEDED"),
                **dict.fromkeys(blocked, "FAILED"),
            }
            assert checks[("predictions", "scores_valid")] == {
                **dict.fromkeys(DAYS, "SUCCEEDED"),
                **dict.fromkeys(blocked, "FAILED"),
            }
            reason = view.partition_panel(keys.predictions(spec), "scores_valid", blocked[3])["evaluation"][
                "description"
            ]
            assert f"not scored: churn/features {blocked[3]} failed in this run (inputs_complete)" in reason
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    finally:
        instance.dispose()

    assert {stage: _digest(lake / stage / f"{BAD_DAY}.parquet") for stage in kept} == kept, "earlier good files stay"
    assert default_resources()["mlflow"].version_by_alias(spec.name, CHAMPION).version == champion
    assert yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())  # the instance ran on the shipped config
