"""Alerts reach a real HTTP webhook on loopback: failed runs and the day's high-risk entities."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from ml_platform.definitions import build_definitions, load_specs
from ml_platform.runner import DAILY_STAGES, materialize_stages
from ml_platform_tests.conftest import landing_dir


class Webhook:
    """A loopback HTTP server that records every JSON body POSTed to it."""

    def __init__(self) -> None:
        received: list[dict] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # port 0: a free port
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Webhook]:
    with Webhook() as hook:
        monkeypatch.setenv("ML_PLATFORM_ALERT_WEBHOOK", hook.url)
        yield hook


def test_high_risk_customers_of_the_newest_day_are_alerted_once(trained_copy: Path, churn_spec, webhook: Webhook) -> None:  # noqa: ANN001
    defs = build_definitions(load_specs())
    result = materialize_stages(defs, churn_spec, DAILY_STAGES[2:], dg.DagsterInstance.ephemeral(), ["2025-03-03", "2025-03-04"])
    assert result.success
    assert len(webhook.received) == 1, "a range run alerts for its newest day only"
    [alert] = webhook.received
    details = alert["details"]
    assert details["partition"] == "2025-03-04" and details["use_case"] == "churn"
    scores = [entity["score"] for entity in details["entities"]]
    assert scores and min(scores) >= churn_spec.alerts.high_score_threshold and scores == sorted(scores, reverse=True)
    assert f"{details['count']} high-risk customer_ids" in alert["title"]


def test_failed_run_is_posted_by_the_failure_sensor(trained_copy: Path, churn_spec, webhook: Webhook) -> None:  # noqa: ANN001
    path = landing_dir(trained_copy) / "2025-03-04.parquet"
    pd.read_parquet(path).drop(columns=["plan"]).to_parquet(path, index=False)
    defs = build_definitions(load_specs())
    instance = dg.DagsterInstance.ephemeral()
    failed = materialize_stages(defs, churn_spec, DAILY_STAGES[:1], instance, ["2025-03-04"])
    assert not failed.success

    failure_event = next(e for e in failed.all_events if e.event_type_value == "PIPELINE_FAILURE")
    sensor = defs.get_sensor_def("run_failure_alerts")
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name, dagster_event=failure_event, dagster_instance=instance,
        dagster_run=instance.get_run_by_id(failed.run_id), resources={"alerts": defs.resources["alerts"]},
    ).for_run_failure()
    sensor(context)
    [alert] = webhook.received
    assert alert["details"]["run_id"] == failed.run_id
    assert alert["details"]["failed_steps"] == ["churn__raw_events"]
    assert "2025-03-04" in alert["text"] and alert["severity"] == "error"


def test_an_unreachable_webhook_does_not_fail_the_predictions(trained_copy: Path, churn_spec, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    with Webhook() as hook:
        dead = hook.url  # the server stops at the end of the block: nothing listens there afterwards
    monkeypatch.setenv("ML_PLATFORM_ALERT_WEBHOOK", dead)
    result = materialize_stages(build_definitions(load_specs()), churn_spec, DAILY_STAGES[2:], dg.DagsterInstance.ephemeral(), ["2025-03-04"])
    assert result.success
    metadata = result.asset_materializations_for_node("churn__predictions")[0].metadata
    assert "high_score_alert_error" in metadata and "high_score_alerted" not in metadata
