"""`<use case>/performance` on every shipped use case: each task's realized metrics where labels matured,
its estimates on every scored day (fraud's sharp MLP through its holdout calibration), news' untagged
items left out of the metrics and counted in the coverage."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

from ml_platform.assets import keys
from ml_platform.definitions import build_definitions, load_specs
from ml_platform.features.compute import label_input_days
from ml_platform.monitoring.realized import ESTIMATED
from ml_platform.runner import materialize_stages
from ml_platform_tests.support.use_cases import NewsPlatform, UseCasePlatform


def performance_by_day(
    root: Path, spec_name: str, days: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, dict[str, object]]:
    copy = shutil.copytree(root, tmp_path / "data")
    monkeypatch.setenv("ML_PLATFORM_DATA_DIR", str(copy))
    specs = load_specs()
    spec = next(spec for spec in specs if spec.name == spec_name)
    result = materialize_stages(build_definitions(specs), spec, ("performance",), dg.DagsterInstance.ephemeral(), days)
    assert result.success
    return {
        m.partition: {name: value.value for name, value in m.metadata.items()}
        for m in result.asset_materializations_for_node(keys.performance(spec).to_python_identifier())
    }


@pytest.mark.parametrize("name", ["fraud", "prices"])
def test_every_scored_day_is_estimated_and_measured_once_its_labels_matured(
    name: str,
    use_case_platform: Callable[[str], UseCasePlatform],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    platform = use_case_platform(name)
    spec, scored = platform.spec, platform.days[-3:]
    by_day = performance_by_day(platform.root, name, scored, tmp_path, monkeypatch)
    assert set(by_day) == set(scored)
    metric = spec.gates.compare_metric
    for day in scored:
        record = by_day[day]
        assert {f"estimated_{m}" for m in ESTIMATED[spec.label.task]} <= set(record), (day, record)
        matured = label_input_days(spec, [day])[-1] <= platform.days[-1]
        assert (f"realized_{metric}" in record) == matured, (day, record)
        if matured:
            assert record["label_coverage"] > 0.9 and isinstance(record[f"realized_{metric}"], float)
            assert f"estimation_error_{metric}" in record or metric not in ESTIMATED[spec.label.task]
    if name == "fraud":  # a sharp MLP: its raw scores are not probabilities; through the calibration they are
        errors = [abs(by_day[day]["estimation_error_f1"]) for day in scored]
        assert max(errors) < 0.15, by_day


def test_news_untagged_items_are_left_out_and_counted_in_the_coverage(
    news_platform: NewsPlatform,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    by_day = performance_by_day(news_platform.root, "news", news_platform.days[-3:], tmp_path, monkeypatch)
    for record in by_day.values():
        assert 0 < record["label_coverage"] <= 1 and "realized_accuracy" in record and "estimated_accuracy" in record
