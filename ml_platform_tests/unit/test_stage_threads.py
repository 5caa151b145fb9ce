"""Every core: the thread count a stage runs with changes no byte of what it stores, and the setting is validated."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from sklearn.ensemble import RandomForestClassifier

from demo.generators.churn import write_landing_files
from ml_platform import steps
from ml_platform.assets import keys
from ml_platform.definitions import load_specs
from ml_platform.features.compute import entity_day_features, grid_bytes_per_entity
from ml_platform.io.parquet_lake import DataLake
from ml_platform.parallel import ordered_map
from ml_platform.resources.sources import EventSource
from ml_platform.settings import THREADS_ENV, SettingError, cgroup_cpu_limit, stage_threads
from ml_platform.steps import build_features, ingest, score
from ml_platform_tests.support.fixtures import START, day_keys, landing_dir

DAYS = day_keys(START, 34)


class Probabilities:
    def __init__(self, estimator: RandomForestClassifier) -> None:
        self.estimator = estimator

    def predict(self, features):
        return self.estimator.predict_proba(features)


def run_stages(data: Path, lake_dir: Path, threads: int, chunk_days: int) -> None:
    """raw_events, features and predictions of DAYS, stored as the assets store them (each passed day)."""
    spec = next(s for s in load_specs() if s.name == "churn")
    lake = DataLake(base_path=str(lake_dir))
    for result in ingest(EventSource(data_dir=str(data)), spec, DAYS, threads=threads):
        assert result.passed, result.outcomes
        steps.store_day(lake, keys.raw_events(spec), result)  # a day larger than a row group: its batches
    scored_days = DAYS[-6:]
    features = list(build_features(lake, keys.raw_events(spec), spec, scored_days, chunk_days, threads=threads))
    for result in features:
        assert result.passed, result.outcomes
        lake.write_partition(keys.features(spec), result.day, result.frame)
    training = lake.read(keys.features(spec), scored_days[:2])
    estimator = RandomForestClassifier(n_estimators=20, max_depth=6, random_state=3, n_jobs=1)
    estimator.fit(training[spec.feature_names], (training["logins_7d"] == 0).astype(int))
    for result in score(Probabilities(estimator), "1", lake, keys.features(spec), spec, scored_days, threads=threads):
        assert result.passed, result.outcomes
        lake.write_partition(keys.predictions(spec), result.day, result.frame)


def test_thread_count_changes_no_stored_byte(tmp_path: Path) -> None:
    """One features chunk here; the bucket test below compares 1 and 2 threads over several chunks."""
    data = tmp_path / "data"
    write_landing_files(landing_dir(data), START, len(DAYS), 3_000, seed=5)
    run_stages(data, tmp_path / "one", threads=1, chunk_days=31)
    run_stages(data, tmp_path / "three", threads=3, chunk_days=31)
    assert_same_lakes(tmp_path / "one", tmp_path / "three")


def test_entity_buckets_change_no_stored_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A day whose (day, entity) grids exceed the budget is computed in entity buckets: the same files (and with
    2 threads against 1, over chunks of 3 days)."""
    data = tmp_path / "data"
    write_landing_files(landing_dir(data), START, len(DAYS), 3_000, seed=6)
    run_stages(data, tmp_path / "whole", threads=1, chunk_days=3)
    spec = next(s for s in load_specs() if s.name == "churn")
    monkeypatch.setattr(steps, "GRID_BYTES_BUDGET", 300 * grid_bytes_per_entity(spec, 30, 2))  # ~300 per bucket
    computed = []
    monkeypatch.setattr(
        steps, "entity_day_features", lambda *args: computed.append(len(args[3])) or entity_day_features(*args)
    )
    run_stages(data, tmp_path / "buckets", threads=2, chunk_days=3)
    assert len(computed) >= 3 * 2 and max(computed) <= 310  # 2 chunks of 3 days (6 days scored), >= 3 buckets each
    assert_same_lakes(tmp_path / "whole", tmp_path / "buckets")


def assert_same_lakes(left: Path, right: Path) -> None:
    one = sorted(p.relative_to(left) for p in left.rglob("*.parquet"))
    three = sorted(p.relative_to(right) for p in right.rglob("*.parquet"))
    assert one == three
    assert {p.parts[-2] for p in one} == {"raw_events", "features", "predictions"}
    assert len(one) == len(DAYS) + 6 + 6
    differ = [p for p in one if (left / p).read_bytes() != (right / p).read_bytes()]
    assert differ == []


def test_ordered_map_keeps_order_and_bounds_what_is_in_flight() -> None:
    running, peak, lock = 0, 0, threading.Lock()

    def slow_square(value: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01 * (value % 3))  # later items often finish first
        with lock:
            running -= 1
        return value * value

    assert list(ordered_map(slow_square, range(20), 3)) == [v * v for v in range(20)]
    assert 1 < peak <= 3
    assert list(ordered_map(slow_square, range(5), 1)) == [0, 1, 4, 9, 16]


def test_ordered_map_raises_where_the_failing_item_is() -> None:
    def fail_on_three(value: int) -> int:
        if value == 3:
            raise ValueError("item 3")
        return value

    results = ordered_map(fail_on_three, range(10), 2)
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="item 3"):
        next(results)


def test_stage_threads_setting(tmp_path: Path) -> None:
    assert stage_threads({THREADS_ENV: "3"}) == 3
    for bad in ("0", "-1", "two", "257", "1.5"):
        with pytest.raises(SettingError, match=f"{THREADS_ENV} must be a whole number from 1 to 256, got '{bad}'"):
            stage_threads({THREADS_ENV: bad})
    pod = tmp_path / "v2"
    pod.mkdir()
    (pod / "cpu.max").write_text("150000 100000\n")  # a pod limited to 1.5 CPUs: 2 threads
    assert cgroup_cpu_limit(pod) == 2
    assert stage_threads({}, cgroup_root=pod) == min(2, len(os.sched_getaffinity(0)))
    (pod / "cpu.max").write_text("max 100000\n")  # no limit: the cores this process may use
    assert cgroup_cpu_limit(pod) is None
    assert stage_threads({}, cgroup_root=pod) == len(os.sched_getaffinity(0))
    v1 = tmp_path / "v1" / "cpu"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("400000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_limit(tmp_path / "v1") == 4
    assert cgroup_cpu_limit(tmp_path / "nothing") is None
