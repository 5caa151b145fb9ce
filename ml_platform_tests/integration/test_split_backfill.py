"""A backfill split into runs of N days (spec `backfill.max_days_per_run`, issue 28) writes what one run writes.

Twelve churn days go raw_events -> features twice, from the same landing files into two data dirs: once as one
range run, once as runs of four days (each a `materialize`, as each run of Dagster's multi-run backfill policy is)
in an order where a later range runs before an earlier one, as runs started side by side may: a run's feature
window then reaches raw days the other run has not stored yet, which it reads from the source itself
(`ml_platform/assets/lookback.py`). Every lake file is byte-identical and every per-day check status is the same,
with clean landing files and with a bad raw day that only the earliest run stores.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from demo.generators.churn import write_landing_files
from ml_platform.assets import keys
from ml_platform.assets.lookback import LookbackLake
from ml_platform.definitions import build_definitions
from ml_platform.features.compute import feature_input_days
from ml_platform.io.parquet_lake import DataLake
from ml_platform.runner import materialize_stages
from ml_platform.spec import SpecError, UseCaseSpec, load_spec
from ml_platform_tests.support.check_view import CheckView
from ml_platform_tests.support.fixtures import START, day_keys, landing_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
DAYS = day_keys(START, 12)
PER_RUN = 4
STAGES = ["raw_events", "features"]


def _backfill(
    spec: UseCaseSpec,
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
    order: list[int],
    damage: str | None = None,
    days: list[str] = DAYS,
) -> dict[tuple[str, str], dict[str, str]]:
    """Materialize `days` under `root` in runs of the spec's max_days_per_run, the runs in `order` (their indexes),
    from landing files whose day `damage` lost its file; the per-day check statuses."""
    landing = landing_dir(root)
    write_landing_files(landing, START, len(days), 300, seed=5)
    if damage:
        [bad] = landing.glob(f"*{damage}*")
        bad.unlink()
    monkeypatch.setenv("ML_PLATFORM_DATA_DIR", str(root))
    defs = build_definitions([spec])
    step = defs.resolve_assets_def(keys.features(spec))
    per_run = spec.backfill.max_days_per_run or len(days)
    assert (
        step.backfill_policy == dg.BackfillPolicy.multi_run(per_run)
        if spec.backfill.max_days_per_run
        else step.backfill_policy == dg.BackfillPolicy.single_run()
    )
    ranges = [days[first : first + per_run] for first in range(0, len(days), per_run)]
    assert sorted(order) == list(range(len(ranges)))
    home = root.parent / f"{root.name}_dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for index in order:
            result = materialize_stages(defs, spec, STAGES, instance, ranges[index])
            assert result.success == (damage is None or not set(feature_input_days(spec, ranges[index])) & {damage})
        with CheckView(instance) as view:
            return view.statuses()


def _split(spec: UseCaseSpec) -> UseCaseSpec:
    return spec.model_copy(update={"backfill": spec.backfill.model_copy(update={"max_days_per_run": PER_RUN})})


def _assert_same_files(tmp_path: Path, days: list[str]) -> None:
    for stage in STAGES:
        for day in days:
            one, chunked = (tmp_path / run / "lake" / "churn" / stage / f"{day}.parquet" for run in ("whole", "split"))
            assert chunked.exists() == one.exists(), f"{stage}/{day}"
            assert not one.exists() or chunked.read_bytes() == one.read_bytes(), f"{stage}/{day}"


def test_runs_of_four_days_in_reverse_order_write_the_same_files_and_check_statuses_as_one_run(
    churn_spec: UseCaseSpec,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert churn_spec.lookback_days > 2 * PER_RUN  # the last run's first feature days read both earlier runs' days

    whole = _backfill(churn_spec, tmp_path / "whole", monkeypatch, [0])
    split = _backfill(_split(churn_spec), tmp_path / "split", monkeypatch, [2, 1, 0])

    assert split == whole
    assert whole[("features", "inputs_complete")] == dict.fromkeys(DAYS, "SUCCEEDED")
    _assert_same_files(tmp_path, DAYS)


def test_a_bad_raw_day_fails_the_same_feature_days_whichever_run_reads_it_first(
    churn_spec: UseCaseSpec,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Day 3 has no landing file: one run fails raw day 3 and every feature day whose window holds it; the later
    run (here first) reads day 3 from the source, finds it unusable and fails the same feature days, naming it."""
    days, bad = DAYS[:8], DAYS[2]
    whole = _backfill(churn_spec, tmp_path / "whole", monkeypatch, [0], bad, days)
    split = _backfill(_split(churn_spec), tmp_path / "split", monkeypatch, [1, 0], bad, days)

    assert split == whole
    assert whole[("features", "inputs_complete")] == {
        **dict.fromkeys(days[:2], "SUCCEEDED"),
        **dict.fromkeys(days[2:], "FAILED"),
    }
    _assert_same_files(tmp_path, days)
    with (
        dg.DagsterInstance.from_config(str(tmp_path / "split_dagster_home")) as instance,
        CheckView(instance) as view,
    ):
        reason = view.partition_panel(keys.features(churn_spec), "inputs_complete", days[-1])
    description = reason["evaluation"]["description"]
    assert f"churn/raw_events {bad} is not in the lake and the source's copy is unusable (landed: " in description


@pytest.mark.parametrize("field", ["max_days_per_run", "max_concurrent_runs"])
def test_backfill_settings_below_one_are_refused_naming_file_and_field(tmp_path: Path, field: str) -> None:
    shipped = REPO_ROOT / "ml_platform" / "use_cases" / "churn.yaml"
    raw = yaml.safe_load(shipped.read_text())
    raw["backfill"] = {field: 0}
    path = tmp_path / "split.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError, match=rf"split\.yaml: .*backfill\.{field}: .*greater than or equal to 1"):
        load_spec(path)


def test_a_read_across_the_lake_and_borrowed_days_equals_one_lake_read(tmp_path: Path) -> None:
    """Event-grain features read a window in one call: days from both places come back as one scan of one lake
    returns them (same rows in day order, same dtypes, dictionary columns categorical)."""
    key = dg.AssetKey(["uc", "raw_events"])
    whole, lake, scratch = (DataLake(base_path=str(tmp_path / name)) for name in ("whole", "lake", "scratch"))
    for number, day in enumerate(DAYS[:4]):
        kinds = ["a", "b", "c", "d"][: number + 1]
        frame = pd.DataFrame({"kind": pd.array(kinds, dtype="string"), "n": range(len(kinds))})
        whole.write_partition(key, day, frame)
        (scratch if number % 2 else lake).write_partition(key, day, frame)
    view = LookbackLake(lake, scratch, key, frozenset(DAYS[1:4:2]))

    assert view.existing_partitions(key) == DAYS[:4]
    assert view.row_counts(key, DAYS[:4]) == whole.row_counts(key, DAYS[:4])
    mixed = view.read(key, DAYS[:4], columns=["kind", "n"], categories=["kind"])
    one = whole.read(key, DAYS[:4], columns=["kind", "n"], categories=["kind"])
    pd.testing.assert_frame_equal(mixed, one, check_categorical=False)
    assert isinstance(mixed["kind"].dtype, pd.CategoricalDtype)
