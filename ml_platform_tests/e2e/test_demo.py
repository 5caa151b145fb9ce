"""The README's first command, as a user runs it: `python -m demo run` (what `make demo` runs after the
install), then what Dagster's UI shows for it, read through the UI's GraphQL."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from ml_platform_tests.support.check_view import CheckView
from ml_platform_tests.support.servers import REPO_ROOT, server_env

DAYS = 60


@pytest.mark.slow
def test_the_demo_shows_every_day_passed_in_the_check_partition_views(tmp_path: Path) -> None:
    home, data = tmp_path / "dagster_home", tmp_path / "data"
    home.mkdir()
    shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    env = server_env(home, {"ML_PLATFORM_DATA_DIR": str(data)})
    demo = subprocess.run(
        [
            str(REPO_ROOT / ".venv" / "bin" / "python"),
            "-m",
            "demo",
            "run",
            "--days",
            str(DAYS),
            "--events-per-day",
            "1500",
        ],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},  # the demo runs from the checkout: it is not in the wheel
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = demo.stdout + demo.stderr
    assert demo.returncode == 0, output
    assert "emitted no result" not in output and "did not yield" not in output, output
    assert "WARNING" not in output, output

    end = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    days = {(end - dt.timedelta(days=i)).isoformat() for i in range(DAYS)}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(home))
        patch.setenv("ML_PLATFORM_DATA_DIR", str(data))
        instance = dg.DagsterInstance.from_config(str(home))
        try:
            with CheckView(instance) as view:
                statuses = view.statuses()
        finally:
            instance.dispose()
    gated = {key: view for key, view in statuses.items() if key[0] in ("raw_events", "features")}
    assert len(gated) == 12, sorted(gated)
    for (asset, check), by_day in gated.items():
        assert by_day == dict.fromkeys(days, "SUCCEEDED"), (
            asset,
            check,
            sorted(set(by_day.items()) - {(d, "SUCCEEDED") for d in days})[:5],
        )

    # Does the champion still work: every demo day estimated, every day whose labels matured (D + 7 landed) measured
    from ml_platform.assets import keys
    from ml_platform.definitions import load_specs
    from ml_platform.io.parquet_lake import DataLake

    churn = next(spec for spec in load_specs() if spec.name == "churn")
    lake = DataLake(base_path=str(data / "lake"))
    performance = lake.read(keys.performance(churn), sorted(days)).set_index("day")
    assert set(performance.index) == days and performance["estimated_roc_auc"].notna().all()
    matured = {day for day in days if dt.date.fromisoformat(day) + dt.timedelta(days=churn.label.horizon_days) <= end}
    assert set(performance.index[performance["realized_roc_auc"].notna()]) == matured
    assert set(lake.existing_partitions(keys.shadow_predictions(churn))) == days, "churn/shadow_predictions exists"
