"""`churn/performance` in a real browser: its Plots tab draws the realized and estimated metrics over the days.
A screenshot is kept in `.test-artifacts/ui/performance_plots.png` for a person to look at."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import pytest

from demo.generators.churn import write_landing_files
from ml_platform.definitions import build_definitions, load_specs
from ml_platform.runner import DAILY_STAGES, TRAINING_STAGES, materialize_stages
from ml_platform_tests.e2e.test_ui_browser import ARTIFACTS, browser, open_page  # noqa: F401 - the fixture
from ml_platform_tests.support.fixtures import day_keys
from ml_platform_tests.support.servers import dagster_servers, prepare_dagster_home

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A webserver over the 64 churn days up to yesterday, a champion, and the performance of the last 20 (13 with
    matured labels). Recent days, as the demo's: the Plots tab draws the newest 120 partitions of the asset."""
    root = tmp_path_factory.mktemp("performance_ui")
    home, data = prepare_dagster_home(root / "dagster_home"), root / "data"
    start = dt.date.today() - dt.timedelta(days=64)
    days = day_keys(start, 64)
    write_landing_files(data / "landing" / "churn", start, len(days), 1_500, seed=3)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(home))
        patch.setenv("ML_PLATFORM_DATA_DIR", str(data))
        specs = load_specs()
        spec, defs = next(s for s in specs if s.name == "churn"), build_definitions(specs)
        instance = dg.DagsterInstance.from_config(str(home))
        assert materialize_stages(defs, spec, DAILY_STAGES[:2], instance, days).success
        assert materialize_stages(defs, spec, TRAINING_STAGES, instance).success
        assert materialize_stages(defs, spec, [DAILY_STAGES[2], "performance"], instance, days[-20:]).success
        instance.dispose()
    with dagster_servers(home, {"ML_PLATFORM_DATA_DIR": str(data)}, daemon=False) as servers:
        yield servers.url


def test_the_plots_tab_of_performance_draws_realized_and_estimated_metrics(ui: str, browser: object) -> None:  # noqa: F811
    page = open_page(browser, f"{ui}/assets/churn/performance")  # the Overview's metadata: Table | Plots
    page.get_by_text("Plots", exact=True).first.click()
    page.get_by_text("realized_roc_auc").first.wait_for(timeout=60_000)
    page.wait_for_timeout(2_000)  # the charts draw after their titles
    page.screenshot(path=str(ARTIFACTS / "performance_plots.png"), full_page=True)
    body = page.inner_text("body")
    for name in (
        "realized_roc_auc",
        "realized_f1",
        "realized_calibration_error",
        "estimated_roc_auc",
        "estimation_error_roc_auc",
        "label_coverage",
    ):
        assert name in body, body[:3000]
    assert page.locator("canvas").count() >= 6, "one chart per numeric metadata key"
