"""A backfill split into runs of N days (spec `backfill.max_days_per_run`, issue 28) writes what one run writes.

Twelve churn days go raw_events -> features twice, from the same landing files into two data dirs: once as one
range run, once as runs of four days in order (each a `materialize`, as each run of Dagster's multi-run backfill
policy is). A run that starts mid-range computes its first feature days from the earlier raw days in the lake, so
every lake file is byte-identical and every per-day check status is the same.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

from demo.generators.churn import write_landing_files
from ml_platform.assets import keys
from ml_platform.definitions import build_definitions
from ml_platform.runner import materialize_stages
from ml_platform.spec import SpecError, UseCaseSpec, load_spec
from ml_platform_tests.support.check_view import CheckView
from ml_platform_tests.support.fixtures import START, day_keys, landing_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
DAYS = day_keys(START, 12)
PER_RUN = 4
STAGES = ["raw_events", "features"]


def _backfill(spec: UseCaseSpec, root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[tuple[str, str], dict[str, str]]:
    """Materialize DAYS under `root`, in runs of the spec's max_days_per_run; the per-day check statuses."""
    write_landing_files(landing_dir(root), START, len(DAYS), 300, seed=5)
    monkeypatch.setenv("ML_PLATFORM_DATA_DIR", str(root))
    defs = build_definitions([spec])
    step = defs.resolve_assets_def(keys.features(spec))
    per_run = spec.backfill.max_days_per_run or len(DAYS)
    assert (
        step.backfill_policy == dg.BackfillPolicy.multi_run(per_run)
        if spec.backfill.max_days_per_run
        else step.backfill_policy == dg.BackfillPolicy.single_run()
    )
    home = root.parent / f"{root.name}_dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for first in range(0, len(DAYS), per_run):
            assert materialize_stages(defs, spec, STAGES, instance, DAYS[first : first + per_run]).success
        return CheckView(instance).statuses()


def test_runs_of_four_days_write_the_same_files_and_check_statuses_as_one_run(
    churn_spec: UseCaseSpec,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    split_spec = churn_spec.model_copy(
        update={"backfill": churn_spec.backfill.model_copy(update={"max_days_per_run": PER_RUN})}
    )
    assert churn_spec.lookback_days > 1  # the second run's first feature days read the first run's raw days

    whole = _backfill(churn_spec, tmp_path / "whole", monkeypatch)
    split = _backfill(split_spec, tmp_path / "split", monkeypatch)

    assert split == whole
    assert whole[("features", "inputs_complete")] == dict.fromkeys(DAYS, "SUCCEEDED")
    for stage in STAGES:
        names = [f"{day}.parquet" for day in DAYS]
        for name in names:
            one, chunked = (tmp_path / run / "lake" / "churn" / stage / name for run in ("whole", "split"))
            assert chunked.read_bytes() == one.read_bytes(), f"{stage}/{name}"


def test_max_days_per_run_below_one_is_refused_naming_file_and_field(tmp_path: Path) -> None:
    shipped = REPO_ROOT / "ml_platform" / "use_cases" / "churn.yaml"
    raw = yaml.safe_load(shipped.read_text())
    raw["backfill"] = {"max_days_per_run": 0}
    path = tmp_path / "split.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError, match=r"split\.yaml: .*backfill\.max_days_per_run: .*greater than or equal to 1"):
        load_spec(path)
