"""10,000+ daily partitions (from 1999) in the real UI: the counts are right and the pages stay usable.

A use case whose partitions start on 1999-01-01 has a few of its days ingested in process (the first
three, one of them refused by its gate, and the two newest), on the instance a real
dagster-webserver then serves. The GraphQL the asset's Partitions view reads gives 10,000 partitions with
exactly those days materialized or failed, and chromium renders the page's partition count and health
within seconds. The screenshot is kept in a temporary directory, named in the test's output.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest

from ml_platform.definitions import build_definitions, load_specs
from ml_platform.runner import materialize_stages
from ml_platform_tests.support.graphql import graphql
from ml_platform_tests.support.long_history import days_from, land_history, write_history_spec
from ml_platform_tests.support.servers import dagster_servers, prepare_dagster_home

pytestmark = pytest.mark.slow

NAME = "history"
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium")
FIRST = dt.date(1999, 1, 1)
PARTITIONS = (dt.datetime.now(dt.UTC).date() - FIRST).days  # up to yesterday: 10,202 on 2026-12-07
EARLY = [day.isoformat() for day in days_from(FIRST, 3)]
NEWEST = [day.isoformat() for day in days_from(FIRST + dt.timedelta(days=PARTITIONS - 2), 2)]
BAD_DAY = EARLY[1]

PARTITIONS_VIEW = """
query HistoryPartitions($assetKey: AssetKeyInput!) {
  assetNodes(assetKeys: [$assetKey]) {
    partitionStats { numPartitions numMaterialized numFailed numMaterializing }
    assetPartitionStatuses { ... on TimePartitionStatuses { ranges { status startKey endKey } } }
    partitionKeysByDimension { partitionKeys }
  }
}
"""


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A webserver over an instance where five of the 10,000+ days were ingested, one of them refused."""
    root = tmp_path_factory.mktemp("long_history")
    home, data, specs = prepare_dagster_home(root / "dagster_home"), root / "data", root / "specs"
    write_history_spec(specs, NAME, FIRST)
    landing = data / "landing" / NAME
    land_history(landing, [dt.date.fromisoformat(day) for day in (*EARLY, *NEWEST)])
    bad = landing / f"{BAD_DAY}.csv"
    lines = bad.read_text().splitlines(keepends=True)
    bad.write_text("".join([*lines, lines[1]]))  # the first event twice: unique_event_ids refuses the day
    env = {"ML_PLATFORM_DATA_DIR": str(data), "ML_PLATFORM_SPECS_DIR": str(specs)}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**env, "DAGSTER_HOME": str(home)}.items():
            patch.setenv(name, value)
        spec = next(s for s in load_specs() if s.name == NAME)
        defs = build_definitions([spec])
        instance = dg.DagsterInstance.from_config(str(home))
        assert not materialize_stages(defs, spec, ["raw_events"], instance, EARLY).success
        assert materialize_stages(defs, spec, ["raw_events"], instance, NEWEST).success
        instance.dispose()
    with dagster_servers(home, env, daemon=False) as servers:
        yield servers.url


def test_the_partitions_view_counts_every_day_and_the_ingested_ones(ui: str) -> None:
    started = time.perf_counter()
    [node] = graphql(ui, PARTITIONS_VIEW, {"assetKey": {"path": [NAME, "raw_events"]}})["assetNodes"]
    elapsed = time.perf_counter() - started

    assert node["partitionStats"] == {
        "numPartitions": PARTITIONS,
        "numMaterialized": 4,
        "numFailed": 1,
        "numMaterializing": 0,
    }
    keys = node["partitionKeysByDimension"][0]["partitionKeys"]
    assert len(keys) == PARTITIONS and keys[0] == FIRST.isoformat() and keys[-1] == NEWEST[-1]
    assert ranges(node) == [
        ("MATERIALIZED", EARLY[0], EARLY[0]),
        ("FAILED", BAD_DAY, BAD_DAY),
        ("MATERIALIZED", EARLY[2], EARLY[2]),
        ("MATERIALIZED", NEWEST[0], NEWEST[1]),
    ]
    print(f"the Partitions view's query answered in {elapsed:.1f} s")
    assert elapsed < 10, f"the Partitions view's query took {elapsed:.1f} s"


def test_the_asset_partitions_page_renders_its_count_and_health(
    ui: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "Debian's chromium is needed for the browser tests: `make browser` installs it"
    shot = tmp_path_factory.mktemp("screenshots") / "history_raw_events_partitions.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        started = time.perf_counter()
        page.goto(f"{ui}/assets/{NAME}/raw_events?view=partitions", wait_until="domcontentloaded", timeout=60_000)
        page.get_by_text(f"Missing ({PARTITIONS - 5})").first.wait_for(timeout=30_000)  # counts and health drawn
        elapsed = time.perf_counter() - started
        body = page.inner_text("body")
        page.get_by_placeholder("Filter by name").fill(BAD_DAY)  # the list of 10,000+ days narrows to the failed one
        page.get_by_text(BAD_DAY, exact=True).first.click(timeout=30_000)
        page.get_by_text("failed, and did not materialize this asset").first.wait_for(timeout=30_000)  # its panel
        page.screenshot(path=str(shot))
        browser.close()
    print(f"screenshot: {shot} (counts drawn {elapsed:.1f} s after opening the page)")
    for shown in (
        f"{PARTITIONS:,} Partitions Selected",
        "Failed (1)",
        "Materialized (4)",
        f"Missing ({PARTITIONS - 5})",
    ):
        assert shown in body, f"{shown!r} not on the page:\n{body[:3000]}"
    assert elapsed < 30, f"the Partitions page took {elapsed:.1f} s to draw its counts"


def ranges(node: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(r["status"], r["startKey"], r["endKey"]) for r in node["assetPartitionStatuses"]["ranges"]]
