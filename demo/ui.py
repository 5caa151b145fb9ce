"""`make ui` (`python -m demo ui`): the Dagster UI (`dg dev`) and, beside it, the MLflow UI on the platform's
local tracking store, so the MLflow links on asset pages (MLFLOW_UI_URL, default http://127.0.0.1:5000) open
something. Each server runs in a process group of its own; Ctrl-C (or SIGTERM) stops both groups together.

The daily partitions start at the first landed day (ML_PLATFORM_PARTITIONS_START, unless set), so the UI does not
list a year of Missing days before the demo's data."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from ml_platform.definitions import load_specs
from ml_platform.resources.mlflow_resource import MlflowResource
from ml_platform.resources.sources.files import DAY_FILE, landing_dir
from ml_platform.settings import AUTOMATION_ENV, PARTITIONS_START_ENV, Settings

BIN = Path(sys.executable).parent
# MLflow 3's server also starts a job runner for its GenAI features (scorers, trace rollups): eight more
# processes, ~1.7 GB and ~30 CPU-s more at start on 2 cores. The platform tracks and registers models only;
# the Helm chart's MLflow container sets the same.
MLFLOW_SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def first_landed_day(settings: Settings) -> str | None:
    """The earliest day file in any file-sourced use case's landing directory (None when nothing landed)."""
    specs = [spec for spec in load_specs(settings) if spec.source.kind == "files"]
    directories = [landing_dir(settings.data_dir, spec.source) for spec in specs]
    days = [
        match.group(1)
        for directory in directories
        if directory.is_dir()
        for path in directory.iterdir()
        if (match := DAY_FILE.match(path.name))
    ]
    return min(days, default=None)


def mlflow_ui_command(settings: Settings) -> list[str] | None:
    """`mlflow server` on the platform's local store at MLFLOW_UI_URL's host and port; None when the tracking
    URI is a server (MLFLOW_TRACKING_URI=http...): that server is its own UI."""
    store = MlflowResource(data_dir=str(settings.data_dir)).resolved_tracking_uri()
    if not store.startswith("sqlite:"):
        return None
    url = urlsplit(settings.mlflow_ui_url)
    if url.scheme != "http" or not url.hostname or not url.port:
        raise ValueError(f"MLFLOW_UI_URL must be http://HOST:PORT to serve the MLflow UI here, got '{url.geturl()}'")
    artifacts = (settings.data_dir / "mlflow" / "artifacts").as_uri()  # where the platform's experiments keep them
    return [
        str(BIN / "mlflow"),
        "server",
        "--backend-store-uri",
        store,
        "--default-artifact-root",
        artifacts,
        "--no-serve-artifacts",
        "--workers",
        "1",  # one person's browser (MLflow's default is 4 processes)
        "--host",
        url.hostname,
        "--port",
        str(url.port),
    ]


def _start(command: list[str], env: Mapping[str, str]) -> subprocess.Popen:
    return subprocess.Popen(command, env=dict(env), stdin=subprocess.DEVNULL, start_new_session=True)


def _stop(process: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM the process's whole group (dg dev's webserver, daemon and code server each shut down on it; SIGINT
    may be ignored where a shell started us in the background), then SIGKILL what is left after `timeout`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # what the leader left behind
    process.wait()


def serve(host: str, port: int) -> int:
    """Run both UIs until Ctrl-C, SIGTERM or either server's exit; then stop both."""
    settings = Settings.from_env()
    env = dict(os.environ)
    env.setdefault(AUTOMATION_ENV, "running")
    if not env.get(PARTITIONS_START_ENV, "").strip() and (first := first_landed_day(settings)):
        env[PARTITIONS_START_ENV] = first
    mlflow_command = mlflow_ui_command(settings)

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGINT too: a shell may start us ignoring it
        signal.signal(signum, interrupted)
    servers: list[subprocess.Popen] = []
    try:
        if mlflow_command:
            servers.append(_start(mlflow_command, {**env, **MLFLOW_SERVER_ENV}))
        servers.append(_start([str(BIN / "dg"), "dev", "-h", host, "-p", str(port)], env))
        print(f"Dagster UI on http://{host}:{port}", flush=True)
        print(
            f"MLflow UI on {settings.mlflow_ui_url}"
            if mlflow_command
            else "MLflow UI: the server at MLFLOW_TRACKING_URI"
        )
        if env.get(PARTITIONS_START_ENV):
            print(f"daily partitions from {env[PARTITIONS_START_ENV]} ({PARTITIONS_START_ENV})")
        print("Ctrl-C stops both", flush=True)
        while all(process.poll() is None for process in servers):
            time.sleep(0.5)
        exited = next(process for process in servers if process.poll() is not None)
        print(f"{exited.args[0]} exited with {exited.returncode}; stopping the other", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a second Ctrl-C leaves no server behind
            signal.signal(signum, signal.SIG_IGN)
        for process in reversed(servers):
            _stop(process)
