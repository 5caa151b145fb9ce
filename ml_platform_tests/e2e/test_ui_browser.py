"""The Dagster UI in a real browser (Debian's chromium driven by playwright) against a real webserver.

After a range run with one bad day, a user opens the failed check: its Partitions tab counts the
passed days and the one failed day, and the failed day's panel gives the gate's reason (partition,
column, observed value, limit). The features asset's Partitions view shows Failed exactly the days
whose window holds the bad day, the others of the range went through to predictions, and a failed
feature day's check names the raw day that failed. The model asset page shows the evaluation plots, and the news use
case's report partition shows its Markdown report. The MLflow links on the champion and model pages open the
MLflow UI that `make ui` serves beside Dagster's (demo/ui.py's command, on the platform's local store) at that
model version and that training run. Screenshots of each page are kept in `.test-artifacts/ui/` for a person
to look at.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import dagster as dg
import pandas as pd
import pytest
import requests

from demo.generators.churn import write_landing_files
from demo.generators.news import generate_news_events
from demo.landing import land_days
from demo.ui import MLFLOW_SERVER_ENV, mlflow_ui_command
from ml_platform.definitions import build_definitions, load_specs
from ml_platform.runner import DAILY_STAGES, TRAINING_STAGES, materialize_stages
from ml_platform.settings import Settings
from ml_platform_tests.support.fixtures import START, day_keys
from ml_platform_tests.support.polling import poll_until
from ml_platform_tests.support.servers import (
    REPO_ROOT,
    dagster_servers,
    free_port,
    kill_process_group,
    prepare_dagster_home,
    server_env,
    spawn,
)

pytestmark = pytest.mark.slow

ARTIFACTS = REPO_ROOT / ".test-artifacts" / "ui"
BAD_DAY = "2025-02-15"
NEWS_DAYS = day_keys(START, 10)
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium")


class UiServers(NamedTuple):
    url: str  # Dagster's webserver
    mlflow_url: str  # the MLflow UI, as `make ui` serves it (MLFLOW_UI_URL)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServers]:
    """A webserver over an instance holding 64 good days, a trained champion, then a range with one bad day;
    beside it the MLflow UI on the platform's store, started by `make ui`'s command."""
    root = tmp_path_factory.mktemp("ui")
    home, data = prepare_dagster_home(root / "dagster_home"), root / "data"
    days = day_keys(START, 64)
    landing = data / "landing" / "churn"
    write_landing_files(landing, START, len(days), 1_500, seed=3)
    mlflow_url = f"http://127.0.0.1:{free_port()}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(home))
        patch.setenv("ML_PLATFORM_DATA_DIR", str(data))
        patch.setenv("MLFLOW_UI_URL", mlflow_url)  # the links training records on the asset pages point there
        specs = load_specs()
        spec, defs = next(s for s in specs if s.name == "churn"), build_definitions(specs)
        instance = dg.DagsterInstance.from_config(str(home))
        assert materialize_stages(defs, spec, ["raw_events", "features"], instance, days).success
        assert materialize_stages(defs, spec, TRAINING_STAGES, instance).success
        bad = pd.read_parquet(landing / f"{BAD_DAY}.parquet")
        bad.loc[5, "event_id"] = bad.loc[4, "event_id"]
        bad.to_parquet(landing / f"{BAD_DAY}.parquet", index=False)
        assert not materialize_stages(defs, spec, DAILY_STAGES, instance, days[40:50]).success
        _news_reported(data, defs, instance)
        instance.dispose()
    env = server_env(home, {"ML_PLATFORM_DATA_DIR": str(data), "MLFLOW_UI_URL": mlflow_url})
    command = mlflow_ui_command(Settings.from_env(env))
    assert command, "the platform's local store: `make ui` serves its MLflow UI"
    mlflow = spawn(command, {**env, **MLFLOW_SERVER_ENV}, root / "mlflow_ui.log", root)
    try:
        poll_until(
            lambda: _answers(f"{mlflow_url}/health"),
            "the MLflow UI",
            timeout=120,
            alive=lambda: _running(mlflow, root / "mlflow_ui.log"),
            details=lambda: (root / "mlflow_ui.log").read_text()[-3000:],
        )
        with dagster_servers(home, {"ML_PLATFORM_DATA_DIR": str(data)}, daemon=False) as dagster:
            yield UiServers(dagster.url, mlflow_url)
    finally:
        kill_process_group(mlflow)


def _running(process: subprocess.Popen, log: Path) -> None:
    if process.poll() is not None:
        raise RuntimeError(f"the MLflow UI exited:\n{log.read_text()[-3000:]}")


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def ui(servers: UiServers) -> str:
    return servers.url


def _news_reported(data: Path, defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
    """Ten days of news ingested, the encoder promoted, the last two days scored and reported."""
    news = next(s for s in load_specs() if s.name == "news")
    land_days(data / "landing" / "news", generate_news_events(START, len(NEWS_DAYS), 20, 5))
    assert materialize_stages(defs, news, DAILY_STAGES[:2], instance, NEWS_DAYS).success
    assert materialize_stages(defs, news, TRAINING_STAGES, instance).success
    assert materialize_stages(defs, news, ["predictions", "report"], instance, NEWS_DAYS[-2:]).success


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "Debian's chromium is needed for the browser tests: `make browser` installs it"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        yield browser
        browser.close()


def open_page(browser: object, url: str) -> object:
    """A new page at `url` (no first-visit dialog: `dagster_servers` marked it seen)."""
    page = browser.new_page(viewport={"width": 1600, "height": 1000})  # type: ignore[attr-defined]
    page.goto(url, wait_until="networkidle", timeout=60_000)
    return page


def test_a_failed_check_shows_its_partition_counts_and_the_reason(ui: str, browser: object) -> None:
    page = open_page(browser, f"{ui}/assets/churn/raw_events?view=checks&checkDetail=unique_event_ids")
    page.locator("button[role=tab]", has_text="Partitions").click()
    page.get_by_text("Passed (").first.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "check_partitions.png"))
    body = page.inner_text("body")
    assert "Passed (63)" in body and "Failed (1)" in body and "Execution Failed (0)" in body, body[:2000]

    page.get_by_text("Passed (", exact=False).first.click()  # hide passed days: only the failed one is listed
    page.get_by_text(BAD_DAY, exact=True).first.click()
    page.get_by_text("Description").first.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "check_failed_partition.png"))
    panel = page.inner_text("body")
    assert f"partition {BAD_DAY}: column 'event_id' has 1 duplicated id(s)" in panel, panel[-1500:]
    for label in ("observed", "limit", "column", "event_id"):
        assert label in panel

    other = open_page(browser, f"{ui}/assets/churn/raw_events?view=checks&checkDetail=schema")
    other.locator("button[role=tab]", has_text="Partitions").click()
    other.get_by_text("Passed (").first.wait_for(timeout=30_000)
    assert "Passed (64)" in other.inner_text("body"), "a check that passed every day shows every day passed"


def test_the_days_that_depend_on_a_bad_day_show_failed_and_the_rest_went_through(ui: str, browser: object) -> None:
    page = open_page(browser, f"{ui}/assets/churn/features?view=partitions")
    page.get_by_text("Failed", exact=False).first.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "features_partitions.png"))
    body = page.inner_text("body")
    assert "Failed (5)" in body and "Materialized (59)" in body, body[:3000]

    predictions = open_page(browser, f"{ui}/assets/churn/predictions?view=partitions")
    predictions.get_by_text("Failed", exact=False).first.wait_for(timeout=30_000)
    predictions.screenshot(path=str(ARTIFACTS / "predictions_partitions.png"))
    body = predictions.inner_text("body")
    assert "Failed (5)" in body and "Materialized (5)" in body, body[:3000]

    check = open_page(browser, f"{ui}/assets/churn/features?view=checks&checkDetail=inputs_complete")
    check.locator("button[role=tab]", has_text="Partitions").click()
    check.get_by_text("Passed (").first.wait_for(timeout=30_000)
    body = check.inner_text("body")
    assert "Passed (59)" in body and "Failed (5)" in body, body[:2000]
    check.get_by_text("Passed (", exact=False).first.click()  # only the failed days are listed
    check.get_by_text("2025-02-17", exact=True).first.click()
    check.get_by_text("Description").first.wait_for(timeout=30_000)
    check.screenshot(path=str(ARTIFACTS / "features_blocked_partition.png"))
    panel = check.inner_text("body")
    assert (
        f"its window holds a failed raw day: churn/raw_events {BAD_DAY} failed in this run (unique_event_ids)" in panel
    ), panel[-1500:]


def test_the_model_asset_shows_the_evaluation_plots(ui: str, browser: object) -> None:
    page = open_page(browser, f"{ui}/assets/churn/model")
    page.get_by_text("plot_roc_curve").first.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "model_asset.png"), full_page=True)
    links = page.get_by_text("[Show Markdown]")
    shown = []
    images = page.locator("img[src^='data:image/png']")
    for index in range(links.count()):
        links.nth(index).click()
        images.first.wait_for(timeout=10_000)
        assert images.count() == 1 and images.first.evaluate("element => element.naturalWidth") > 200
        shown.append(images.first.get_attribute("alt"))
        if index == 0:
            page.screenshot(path=str(ARTIFACTS / "model_plot.png"))
        page.keyboard.press("Escape")
        images.first.wait_for(state="detached", timeout=10_000)
    assert sorted(shown) == sorted(
        ["roc_curve", "precision_recall_curve", "confusion_matrix", "calibration", "feature_importance"]
    ), shown


def test_the_report_asset_shows_the_days_report(ui: str, browser: object) -> None:
    day = NEWS_DAYS[-1]
    page = open_page(browser, f"{ui}/assets/news/report?view=partitions&partition={day}")
    page.get_by_text("[Show Markdown]").first.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "report_partition.png"), full_page=True)
    assert "class_counts" in page.inner_text("body")
    page.get_by_text("[Show Markdown]").first.click()
    heading = page.get_by_role("heading", name=f"news: {day}")
    heading.wait_for(timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "report_markdown.png"))
    shown = page.get_by_role("dialog").inner_text()
    for text in ("Classes", "share before", "Least confident", "Clearest examples per class", "earn", "acq"):
        assert text in shown, shown[:2000]
    assert "20 item(s) classified by model v1" in shown, shown[:500]


def test_the_mlflow_links_open_the_model_version_and_the_training_run_in_the_mlflow_ui(
    servers: UiServers, browser: object
) -> None:
    """`make ui` serves the MLflow UI where the asset pages link: the champion's link opens its registered
    version's page, the model's run link the training run with its holdout metrics."""
    champion = open_page(browser, f"{servers.url}/assets/churn/champion")
    link = champion.locator(f"a[href^='{servers.mlflow_url}/']").first
    link.wait_for(timeout=30_000)
    assert link.get_attribute("href") == f"{servers.mlflow_url}/#/models/churn/versions/1"
    version = _follow(champion, link)
    version.get_by_text("Version 1", exact=False).first.wait_for(timeout=60_000)
    version.screenshot(path=str(ARTIFACTS / "mlflow_model_version.png"))
    body = version.inner_text("body")
    assert "churn" in body and "Registered" in body, body[:2000]

    model = open_page(browser, f"{servers.url}/assets/churn/model")
    run_link = model.locator(f"a[href^='{servers.mlflow_url}/#/experiments/']").first
    run_link.wait_for(timeout=30_000)
    run = _follow(model, run_link)
    run.get_by_text("roc_auc", exact=False).first.wait_for(timeout=60_000)
    run.screenshot(path=str(ARTIFACTS / "mlflow_run.png"))
    run_id = run_link.get_attribute("href").rsplit("/", 1)[-1]
    body = run.inner_text("body")
    assert run_id in run.url and run_id in body and "holdout_accuracy" in body, body[:2000]


def _follow(page: object, link: object) -> object:
    """The page a click on `link` opens: a new tab where the UI opens one, else this page."""
    if link.get_attribute("target") == "_blank":  # type: ignore[attr-defined]
        with page.context.expect_page() as opened:  # type: ignore[attr-defined]
            link.click()  # type: ignore[attr-defined]
        target = opened.value
    else:
        link.click()  # type: ignore[attr-defined]
        target = page
    # the document only: the MLflow UI may keep polling (no network-idle moment); the caller waits for its text
    target.wait_for_load_state("domcontentloaded", timeout=60_000)
    return target
