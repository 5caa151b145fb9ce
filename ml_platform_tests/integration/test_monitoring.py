"""Prometheus metrics served by a real `ml-platform metrics` process and scraped over HTTP."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import requests
from prometheus_client.parser import text_string_to_metric_families

from ml_platform.definitions import build_definitions, load_specs
from ml_platform.resources import default_resources
from ml_platform.resources.mlflow_resource import CHAMPION
from ml_platform.runner import DAILY_STAGES, MONITORING_STAGES, materialize_stages
from ml_platform_tests.support.fixtures import landing_dir

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scrape(url: str, timeout: float = 60.0) -> dict[tuple[str, tuple], float]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            text = requests.get(url, timeout=5).text
            break
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_endpoint_reports_runs_partitions_gate_failures_and_champion(
    trained_copy: Path, churn_spec, tmp_path: Path
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        defs = build_definitions(load_specs())
        assert materialize_stages(
            defs, churn_spec, [*DAILY_STAGES[2:], *MONITORING_STAGES], instance, ["2025-03-03", "2025-03-04"]
        ).success
        broken = landing_dir(trained_copy) / "2025-03-05.parquet"
        pd.read_parquet(broken).assign(cancelled=3).to_parquet(broken, index=False)
        assert not materialize_stages(defs, churn_spec, DAILY_STAGES[:1], instance, ["2025-03-05"]).success

    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "ML_PLATFORM_DATA_DIR": str(trained_copy)}
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "ml-platform"), "metrics", "--port", str(port)],
        env=env,
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        metrics = scrape(f"http://127.0.0.1:{port}/metrics")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    assert metrics[("ml_platform_runs", (("status", "SUCCESS"),))] == 1
    assert metrics[("ml_platform_runs", (("status", "FAILURE"),))] == 1
    assert metrics[("ml_platform_materialized_partitions", (("asset", "predictions"), ("use_case", "churn")))] == 2
    assert (
        metrics[("ml_platform_latest_partition_timestamp_seconds", (("asset", "predictions"), ("use_case", "churn")))]
        == pd.Timestamp("2025-03-04", tz="UTC").timestamp()
    )
    assert (
        metrics[
            (
                "ml_platform_check_recent_failures",
                (("asset", "raw_events"), ("check", "binary_label"), ("use_case", "churn")),
            )
        ]
        == 1
    )
    assert (
        metrics[
            ("ml_platform_check_recent_failures", (("asset", "raw_events"), ("check", "schema"), ("use_case", "churn")))
        ]
        == 0
    )
    champion = default_resources()["mlflow"].version_by_alias("churn", CHAMPION)
    assert metrics[("ml_platform_champion_version", (("use_case", "churn"),))] == float(champion.version)
    assert 0.7 < metrics[("ml_platform_champion_holdout_metric", (("metric", "roc_auc"), ("use_case", "churn")))] <= 1
    assert ("ml_platform_max_feature_psi", (("day", "2025-03-04"), ("use_case", "churn"))) in metrics
