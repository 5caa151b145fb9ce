"""`ml-platform serve`: a real scoring server on loopback follows the champion alias without a restart
(score, promote, score again, roll back) and answers a malformed request with a 4xx naming the problem."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import requests

from ml_platform.assets import keys
from ml_platform.cli import main as cli
from ml_platform.definitions import build_definitions, load_specs
from ml_platform.io.parquet_lake import DataLake
from ml_platform.runner import TRAINING_STAGES, materialize_stages
from ml_platform.spec import UseCaseSpec
from ml_platform_tests.support.polling import poll_until
from ml_platform_tests.support.servers import BIN, REPO_ROOT, spawn, free_port, kill_process_group


@pytest.fixture
def scoring_server(trained_copy: Path, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environment = {**os.environ, "ML_PLATFORM_DATA_DIR": str(trained_copy)}
    process = spawn([str(BIN / "ml-platform"), "serve", "churn", "--port", str(port), "--refresh-seconds", "1"],
                     environment, tmp_path / "serve.log", REPO_ROOT)
    try:
        poll_until(lambda: _get(f"{url}/health") == 200, "the scoring server to serve", timeout=120, interval=0.5,
                   details=lambda: (tmp_path / "serve.log").read_text()[-3000:])
        yield url
    finally:
        kill_process_group(process)


def _get(url: str) -> int | None:
    try:
        return requests.get(url, timeout=5).status_code
    except requests.ConnectionError:
        return None


def score(url: str, rows: list[dict]) -> requests.Response:
    return requests.post(f"{url}/score", json={"rows": rows}, timeout=30)


def test_the_server_scores_follows_promotion_and_rollback_and_refuses_malformed_rows(
    scoring_server: str, trained_copy: Path, churn_spec: UseCaseSpec, dagster_home: Path
) -> None:
    day = DataLake(base_path=str(trained_copy / "lake")).existing_partitions(keys.features(churn_spec))[-1]
    features = DataLake(base_path=str(trained_copy / "lake")).read(keys.features(churn_spec), [day])
    rows = features[churn_spec.feature_names].head(5).to_dict("records")

    first = score(scoring_server, rows)
    assert first.status_code == 200, first.text
    assert first.json()["model_version"] == "1" and len(first.json()["scores"]) == 5
    assert all(0.0 <= s <= 1.0 for s in first.json()["scores"])

    missing = score(scoring_server, [{k: v for k, v in rows[0].items() if k != "logins_7d"}])
    assert missing.status_code == 400 and "missing feature(s) ['logins_7d']" in missing.json()["error"]
    wrong = score(scoring_server, [{**rows[0], "spend_28d": "lots"}])
    assert wrong.status_code == 400 and "feature 'spend_28d' must be a number, got 'lots'" in wrong.json()["error"]
    not_json = requests.post(f"{scoring_server}/score", data="rows=1", timeout=10)
    assert not_json.status_code == 400 and '{"rows": [' in not_json.json()["error"]

    refused = materialize_stages(build_definitions(load_specs()), churn_spec, TRAINING_STAGES, dg.DagsterInstance.ephemeral(),
                                 run_config={"ops": {"churn__model": {"config": {"params": {"random_state": 9}}}}})
    assert not refused.success  # registered as version 2, refused by the gates
    assert cli(["promote", "churn", "2", "--reason", "serving test"]) == 0
    promoted = poll_until(lambda: (r := score(scoring_server, rows)).json().get("model_version") == "2" and r,
                          "the server to serve version 2", timeout=30, interval=0.5)
    assert promoted.json()["scores"] != first.json()["scores"]
    assert cli(["rollback", "churn", "--reason", "serving test"]) == 0
    poll_until(lambda: score(scoring_server, rows).json().get("model_version") == "1", "the rollback to be served",
               timeout=30, interval=0.5)
    health = requests.get(f"{scoring_server}/health", timeout=5).json()
    assert health["status"] == "ok" and health["model_version"] == "1"
    metrics = requests.get(f"{scoring_server}/metrics", timeout=5).text
    assert 'ml_platform_serving_requests_total{outcome="bad_request"} 3.0' in metrics
