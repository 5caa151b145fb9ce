"""`ml-platform serve`: a real gunicorn scoring server on loopback follows the champion alias without a restart
(score, promote, score again, roll back), answers a malformed request with a 4xx naming the problem, swaps
champions under concurrent load without losing a request, and shuts down gracefully on SIGTERM."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
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
from ml_platform_tests.support.servers import BIN, REPO_ROOT, free_port, kill_process_group, spawn


@dataclass
class Server:
    url: str
    port: int
    process: subprocess.Popen
    log: Path


def start_server(data: Path, log: Path, *flags: str) -> Server:
    port = free_port()
    environment = {**os.environ, "ML_PLATFORM_DATA_DIR": str(data)}
    process = spawn(
        [str(BIN / "ml-platform"), "serve", "churn", "--port", str(port), "--refresh-seconds", "1", *flags],
        environment,
        log,
        REPO_ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        poll_until(
            lambda: _get(f"{url}/ready") == 200,
            "the scoring server to be ready",
            timeout=120,
            interval=0.5,
            alive=lambda: _alive(process, log),
            details=lambda: log.read_text()[-3000:],
        )
    except BaseException:
        kill_process_group(process)
        raise
    return Server(url, port, process, log)


@pytest.fixture
def scoring_server(trained_copy: Path, tmp_path: Path) -> Iterator[Server]:
    server = start_server(trained_copy, tmp_path / "serve.log", "--workers", "2", "--threads", "8")
    try:
        yield server
    finally:
        kill_process_group(server.process)


def _alive(process: subprocess.Popen, log: Path) -> None:
    if process.poll() is not None:
        raise RuntimeError(f"ml-platform serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")


def _get(url: str) -> int | None:
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:  # refused, or accepted while the workers still load the champion
        return None


def score(url: str, rows: list[dict]) -> requests.Response:
    return requests.post(f"{url}/score", json={"rows": rows}, timeout=30)


def feature_rows(data: Path, spec: UseCaseSpec, count: int) -> list[dict]:
    lake = DataLake(base_path=str(data / "lake"))
    day = lake.existing_partitions(keys.features(spec))[-1]
    return lake.read(keys.features(spec), [day])[spec.feature_names].head(count).to_dict("records")


def register_version_2(spec: UseCaseSpec) -> None:
    """Train again with another seed: registered as version 2, refused by the gates (promoted by hand)."""
    refused = materialize_stages(
        build_definitions(load_specs()),
        spec,
        TRAINING_STAGES,
        dg.DagsterInstance.ephemeral(),
        run_config={"ops": {"churn__model": {"config": {"params": {"random_state": 9}}}}},
    )
    assert not refused.success


def test_the_server_scores_follows_promotion_and_rollback_and_refuses_malformed_rows(
    scoring_server: Server, trained_copy: Path, churn_spec: UseCaseSpec, dagster_home: Path
) -> None:
    url = scoring_server.url
    rows = feature_rows(trained_copy, churn_spec, 5)
    health = requests.get(f"{url}/health", timeout=5).json()
    assert health["status"] == "alive"

    first = score(url, rows)
    assert first.status_code == 200, first.text
    assert first.json()["model_version"] == "1" and len(first.json()["scores"]) == 5
    assert all(0.0 <= s <= 1.0 for s in first.json()["scores"])

    missing = score(url, [{k: v for k, v in rows[0].items() if k != "logins_7d"}])
    assert missing.status_code == 400 and "missing feature(s) ['logins_7d']" in missing.json()["error"]
    wrong = score(url, [{**rows[0], "spend_28d": "lots"}])
    assert wrong.status_code == 400 and "feature 'spend_28d' must be a number, got 'lots'" in wrong.json()["error"]
    not_json = requests.post(f"{url}/score", data="rows=1", timeout=10)
    assert not_json.status_code == 400 and '{"rows": [' in not_json.json()["error"]

    register_version_2(churn_spec)
    assert cli(["promote", "churn", "2", "--reason", "serving test"]) == 0
    promoted = poll_until(
        lambda: (r := score(url, rows)).json().get("model_version") == "2" and r,
        "the server to serve version 2",
        timeout=30,
        interval=0.5,
    )
    assert promoted.json()["scores"] != first.json()["scores"]
    assert cli(["rollback", "churn", "--reason", "serving test"]) == 0
    # both workers follow the alias: several answers in a row from version 1
    poll_until(
        lambda: all(score(url, rows).json().get("model_version") == "1" for _ in range(8)),
        "the rollback to be served by every worker",
        timeout=30,
        interval=0.5,
    )
    ready = requests.get(f"{url}/ready", timeout=5).json()
    assert ready["status"] == "ok" and ready["model_version"] == "1"
    metrics = requests.get(f"{url}/metrics", timeout=5).text  # summed over both worker processes
    assert 'ml_platform_serving_requests_total{outcome="bad_request"} 3.0' in metrics


@dataclass
class Answer:
    started: float
    finished: float
    status: int | None  # None: no HTTP answer
    version: str | None
    error: str | None = None


def load(port: int, body: bytes, stop: threading.Event, answers: list[Answer], lock: threading.Lock) -> None:
    """One keep-alive connection sending requests back to back until `stop`; a connection error reconnects."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while not stop.is_set():
        started = time.monotonic()
        try:
            connection.request("POST", "/score", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            payload = response.read()
            version = json.loads(payload).get("model_version") if response.status == 200 else None
            answer = Answer(started, time.monotonic(), response.status, version, None if version else payload.decode())
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            answer = Answer(started, time.monotonic(), None, None, f"{type(error).__name__}: {error}")
            time.sleep(0.05)
        with lock:
            answers.append(answer)


@contextlib.contextmanager
def concurrent_load(port: int, body: bytes, clients: int) -> Iterator[list[Answer]]:
    """`clients` threads sending `body` back to back until the block ends; their answers, as they come."""
    answers: list[Answer] = []
    lock, stop = threading.Lock(), threading.Event()
    threads = [threading.Thread(target=load, args=(port, body, stop, answers, lock)) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield answers
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)


def test_a_promotion_under_concurrent_load_loses_no_request_and_each_answer_names_its_version(
    trained_copy: Path, churn_spec: UseCaseSpec, dagster_home: Path, tmp_path: Path
) -> None:
    register_version_2(churn_spec)  # before the server starts: training competes for the CPU
    # one worker: "after the swap" is then one instant (each worker swaps on its own refresh)
    server = start_server(trained_copy, tmp_path / "serve.log", "--workers", "1", "--threads", "16")
    body = json.dumps({"rows": feature_rows(trained_copy, churn_spec, 1)}).encode()
    try:
        with concurrent_load(server.port, body, 16) as answers:
            time.sleep(2)
            assert cli(["promote", "churn", "2", "--reason", "swap under load"]) == 0
            poll_until(
                lambda: any(a.version == "2" for a in list(answers)),
                "version 2 to answer",
                timeout=60,
                interval=0.2,
                details=lambda: server.log.read_text()[-3000:],
            )
            time.sleep(2)
    finally:
        kill_process_group(server.process)

    failed = [a for a in answers if a.status != 200]
    assert not failed, f"{len(failed)} of {len(answers)} requests failed, e.g. {failed[:3]}"
    assert {a.version for a in answers} == {"1", "2"}
    swapped = min(a.finished for a in answers if a.version == "2")
    late_old = [a for a in answers if a.started > swapped and a.version == "1"]
    assert not late_old, f"{len(late_old)} requests sent after version 2 answered were scored by version 1"
    assert sum(a.version == "2" for a in answers) >= 16


def test_sigterm_stops_accepting_finishes_in_flight_requests_and_exits_0(
    trained_copy: Path, churn_spec: UseCaseSpec, tmp_path: Path
) -> None:
    server = start_server(trained_copy, tmp_path / "serve.log", "--workers", "2", "--threads", "8")
    body = json.dumps({"rows": feature_rows(trained_copy, churn_spec, 100)}).encode()
    try:
        with concurrent_load(server.port, body, 8) as answers:
            poll_until(lambda: len(answers) >= 50, "the server to answer under load", timeout=60, interval=0.1)
            terminated = time.monotonic()
            server.process.send_signal(signal.SIGTERM)  # the gunicorn master alone, as Kubernetes does
            assert server.process.wait(timeout=60) == 0, server.log.read_text()[-3000:]
            exited = time.monotonic()
            time.sleep(0.5)
    finally:
        kill_process_group(server.process)

    sent_before = [a for a in answers if a.started < terminated]
    assert all(a.status == 200 for a in sent_before), [a for a in sent_before if a.status != 200][:3]
    in_flight = [a for a in sent_before if a.finished > terminated]
    assert in_flight, "no request was in flight at SIGTERM"
    after = [a for a in answers if a.started > exited]
    assert after and all(a.status is None and "Connection" in (a.error or "") for a in after), after[:3]
