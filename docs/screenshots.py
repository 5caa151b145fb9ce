"""`make screenshots`: the README's pictures, taken from a real demo in Debian's Chromium.

Runs the demo (`python -m demo run`, its days ending the day before yesterday) in temporary DAGSTER_HOME and
data directories and serves it with `make ui`'s launcher (`python -m demo ui`: dg dev and the MLflow UI, each in
a process group of its own) on free ports. Saves, under --out: the churn asset graph (lineage.png); then, after
yesterday's file lands with a duplicated event id and goes through raw_events (`ml-platform materialize`), that
gate's Partitions tab with the failed day's reason (check_partitions.png); and the MLflow UI page that the
champion's MLflow link opens (mlflow_model_version.png). Stops the launcher as Ctrl-C does and checks that both
servers are gone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import requests
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parent.parent
PYTHON = Path(sys.executable)
VIEWPORT = {"width": 1400, "height": 860}
GRAPH_VIEWPORT = {"width": 2100, "height": 1800}  # tall: the fitted graph ends above the zoom controls


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def demo_env(root: Path, mlflow_port: int) -> dict[str, str]:
    """This shell's environment without any DAGSTER_, ML_PLATFORM_ or MLFLOW_ setting, on fresh directories."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "ML_PLATFORM_", "MLFLOW_"))}
    home = root / "dagster_home"
    home.mkdir(parents=True)
    shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    env.update(
        DAGSTER_HOME=str(home),
        ML_PLATFORM_DATA_DIR=str(root / "data"),
        MLFLOW_UI_URL=f"http://127.0.0.1:{mlflow_port}",
        ML_PLATFORM_AUTOMATION="stopped",  # the pictures show what the demo did, not what a sensor did next
        PYTHONPATH=str(REPO_ROOT),
    )
    subprocess.run([str(PYTHON.parent / "dagster"), "instance", "migrate"], env=env, check=True, capture_output=True)
    return env


def run_demo(env: dict[str, str], days: int, events_per_day: int, last_day: dt.date) -> None:
    """The whole demo, its days ending `last_day`."""
    data = ["--days", str(days), "--events-per-day", str(events_per_day), "--end", last_day.isoformat()]
    run = subprocess.run(
        [str(PYTHON), "-m", "demo", "run", *data], env=env, cwd=REPO_ROOT, capture_output=True, text=True
    )
    print(run.stdout[-3000:], run.stderr[-2000:], sep="\n")
    if run.returncode != 0:
        raise RuntimeError(f"the demo failed (exit {run.returncode}); see its output above")


def land_a_bad_day(env: dict[str, str], day: dt.date, events_per_day: int) -> None:
    """`day`'s file landed with a duplicated event id, then raw_events run on it: the gate fails that day."""
    data = ["--days", "1", "--events-per-day", str(events_per_day), "--end", day.isoformat()]
    subprocess.run([str(PYTHON), "-m", "demo", "generate", *data], env=env, cwd=REPO_ROOT, check=True)
    path = Path(env["ML_PLATFORM_DATA_DIR"]) / "landing" / "churn" / f"{day.isoformat()}.parquet"
    events = pd.read_parquet(path)
    events.loc[5, "event_id"] = events.loc[4, "event_id"]
    events.to_parquet(path, index=False)
    day_range = ["--from", day.isoformat(), "--to", day.isoformat()]
    materialize = [str(PYTHON.parent / "ml-platform"), "materialize", "churn", "--stages", "raw_events", *day_range]
    failed = subprocess.run([*materialize, "--in-process"], env=env, cwd=REPO_ROOT, capture_output=True, text=True)
    if failed.returncode != 1 or "unique_event_ids" not in failed.stdout + failed.stderr:
        raise RuntimeError(
            f"expected the day to fail unique_event_ids:\n{failed.stdout[-2000:]}{failed.stderr[-2000:]}"
        )


def save(page: object, path: Path, width: int | None = None, graph: bool = False) -> None:
    """A PNG of the viewport (scaled to `width`), quantized to 256 colours: a UI loses nothing visible, and the
    file a quarter of the size. `graph`: cropped to the asset graph's nodes (what is darker than its dotted
    canvas, right of the navigation, below the toolbar, above the zoom controls)."""
    image = Image.open(io.BytesIO(page.screenshot())).convert("RGB")  # type: ignore[attr-defined]
    if graph:
        canvas = (250, 180, image.width - 8, image.height - 340)
        ink = image.crop(canvas).convert("L").point(lambda value: 255 if value < 200 else 0)
        left, top, right, bottom = ink.getbbox() or (0, 0, *image.size)
        margin = 24
        image = image.crop(
            (
                max(canvas[0] + left - margin, 0),
                max(canvas[1] + top - margin, 0),
                min(canvas[0] + right + margin, image.width),
                min(canvas[1] + bottom + margin, image.height),
            )
        )
    if width and image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"{path}: {path.stat().st_size // 1024} KB")


def take(url: str, mlflow_url: str, out: Path, bad_day: str, land_bad_day: Callable[[], None]) -> None:
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not chromium:
        raise SystemExit("Debian's chromium is needed: `make browser` installs it")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])

        def open_page(path: str, viewport: dict[str, int] = VIEWPORT) -> object:
            page = browser.new_page(viewport=viewport)
            page.goto(url + path, wait_until="networkidle", timeout=120_000)
            return page

        # a wide page: zoomed to fit, the nodes keep their partition and check summaries; scaled down when saved
        graph = open_page("/locations/__repository__@ml_platform/asset-groups/churn", GRAPH_VIEWPORT)
        graph.get_by_text("champion", exact=False).first.wait_for(timeout=60_000)
        graph.wait_for_timeout(5_000)  # the layout settles and the nodes' statuses load
        save(graph, out / "lineage.png", width=VIEWPORT["width"], graph=True)

        land_bad_day()

        check = open_page("/assets/churn/raw_events?view=checks&checkDetail=unique_event_ids")
        check.locator("button[role=tab]", has_text="Partitions").click()
        check.get_by_text("Passed (").first.wait_for(timeout=60_000)
        check.get_by_text("Passed (", exact=False).first.click()  # hide the passed days: the failed one is listed
        check.get_by_text(bad_day, exact=True).filter(
            visible=True
        ).last.click()  # the list's entry, not the bar's label
        check.get_by_text("Description").first.wait_for(timeout=60_000)
        check.wait_for_timeout(1_000)
        save(check, out / "check_partitions.png")

        champion = open_page("/assets/churn/champion")
        link = champion.locator(f"a[href^='{mlflow_url}']").first
        link.wait_for(timeout=60_000)
        mlflow = browser.new_page(viewport=VIEWPORT)
        mlflow.goto(link.get_attribute("href"), wait_until="networkidle", timeout=120_000)
        mlflow.get_by_text("Registered", exact=False).first.wait_for(timeout=60_000)
        mlflow.wait_for_timeout(2_000)
        save(mlflow, out / "mlflow_model_version.png")
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "images")
    parser.add_argument("--days", type=int, default=60, help="demo days (training needs ~50: windows, horizon)")
    parser.add_argument("--events-per-day", type=int, default=1_000)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories (printed)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="ml_platform_screenshots_"))
    port, mlflow_port = free_port(), free_port()
    env = demo_env(root, mlflow_port)
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    ui = None
    try:
        run_demo(env, args.days, args.events_per_day, yesterday - dt.timedelta(days=1))
        with open(root / "ui.log", "wb") as log:
            ui = subprocess.Popen(
                [str(PYTHON), "-m", "demo", "ui", "--port", str(port)],
                env=env,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: requests.get(f"{url}/server_info", timeout=2).ok, "the Dagster UI", 300)
        query = {"query": "{ assetNodes { id } }"}
        wait_until(
            lambda: bool(requests.post(f"{url}/graphql", json=query, timeout=10).json()["data"]["assetNodes"]),
            "the code location",
            300,
        )
        wait_until(lambda: requests.get(f"{env['MLFLOW_UI_URL']}/health", timeout=2).ok, "the MLflow UI", 120)
        # Dagster's first-visit dialog (a newsletter sign-up on localhost) marked seen, as its Skip button does
        requests.post(f"{url}/graphql", json={"query": "mutation { setNuxSeen }"}, timeout=10).raise_for_status()
        take(
            url,
            env["MLFLOW_UI_URL"],
            args.out,
            yesterday.isoformat(),
            lambda: land_a_bad_day(env, yesterday, args.events_per_day),
        )
    finally:
        if ui is not None:
            os.kill(ui.pid, signal.SIGINT)  # as Ctrl-C in a terminal: the launcher stops both servers
            ui.wait(timeout=90)
            left = [p for p in (port, mlflow_port) if port_open(p)]
            print(f"launcher exited {ui.returncode}; ports still open: {left or 'none'}")
        print((root / "ui.log").read_text()[-1500:] if (root / "ui.log").exists() else "")
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
