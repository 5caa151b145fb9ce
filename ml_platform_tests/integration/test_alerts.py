"""Alerts reach real HTTP webhooks on loopback: failed runs and gates, the day's high-risk entities, retries."""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from ml_platform.assets import keys
from ml_platform.automation.high_scores import alert_high_scores
from ml_platform.definitions import build_definitions, load_specs
from ml_platform.resources import default_resources
from ml_platform.resources.alerts import AlertResource
from ml_platform.runner import DAILY_STAGES, materialize_stages
from ml_platform.spec import UseCaseSpec
from ml_platform_tests.support.fixtures import UI_URL, landing_dir
from ml_platform_tests.support.results import materializations
from ml_platform_tests.support.webhook import Webhook


def run_failure_sensor(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    result: dg.ExecuteInProcessResult,
    alerts: AlertResource | None = None,
) -> None:
    """Evaluate `run_failure_alerts` on a failed run, as the daemon would."""
    failure_event = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    sensor = defs.get_sensor_def("run_failure_alerts")
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_event=failure_event,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id),
        resources={"alerts": alerts or defs.resources["alerts"]},
    ).for_run_failure()
    sensor(context)


def test_high_risk_customers_of_the_newest_day_are_alerted_once(
    trained_copy: Path, churn_spec: UseCaseSpec, webhook: Webhook
) -> None:
    defs = build_definitions(load_specs())
    result = materialize_stages(
        defs, churn_spec, DAILY_STAGES[2:], dg.DagsterInstance.ephemeral(), ["2025-03-03", "2025-03-04"]
    )
    assert result.success
    assert len(webhook.received) == 1, "a range run alerts for its newest day only"
    [alert] = webhook.received
    details = alert["details"]
    assert alert["event"] == "high_risk" and alert["severity"] == "warning"
    assert details["partition"] == "2025-03-04" and details["use_case"] == "churn"
    scores = [entity["score"] for entity in details["entities"]]
    assert scores and min(scores) >= churn_spec.alerts.high_score_threshold and scores == sorted(scores, reverse=True)
    assert f"{details['count']} high-risk customer_ids" in alert["title"]
    assert alert["link"] == f"{UI_URL}/runs/{result.run_id}"
    metadata = materializations(result, keys.predictions(churn_spec))[0].metadata
    assert metadata["high_score_alerted"].value == details["count"] == metadata["high_score_count"].value


def test_a_run_stopped_by_a_data_gate_is_posted_as_gate_failed(
    trained_copy: Path, churn_spec: UseCaseSpec, webhook: Webhook
) -> None:
    path = landing_dir(trained_copy) / "2025-03-04.parquet"
    pd.read_parquet(path).drop(columns=["plan"]).to_parquet(path, index=False)
    defs = build_definitions(load_specs())
    instance = dg.DagsterInstance.ephemeral()
    failed = materialize_stages(defs, churn_spec, DAILY_STAGES[:1], instance, ["2025-03-04"])
    assert not failed.success

    run_failure_sensor(defs, instance, failed)
    [alert] = webhook.received
    assert alert["event"] == "gate_failed" and alert["severity"] == "warning"
    assert alert["link"] == f"{UI_URL}/runs/{failed.run_id}" and failed.run_id in alert["text"]
    assert "churn/raw_events schema" in alert["title"] and "2025-03-04" in alert["title"]
    assert "missing column(s) ['plan']" in alert["text"]
    details = alert["details"]
    assert details["run_id"] == failed.run_id and details["failed_steps"] == ["churn__daily"]
    assert [(c["asset"], c["check"], c["partition"]) for c in details["failed_checks"]] == [
        ("churn/raw_events", "schema", "2025-03-04")
    ]


def test_a_run_that_breaks_for_other_reasons_is_posted_as_run_failed(
    data_dir: Path, churn_spec: UseCaseSpec, webhook: Webhook
) -> None:
    defs = build_definitions(load_specs())
    instance = dg.DagsterInstance.ephemeral()
    failed = materialize_stages(defs, churn_spec, DAILY_STAGES[2:], instance, ["2025-03-04"])  # no model trained yet
    assert not failed.success

    run_failure_sensor(defs, instance, failed)
    [alert] = webhook.received
    assert alert["event"] == "run_failed" and alert["severity"] == "error"
    assert alert["title"] == "Run failed: __ephemeral_asset_job__ for 2025-03-04"
    assert alert["details"]["failed_steps"] == ["churn__daily"] and alert["details"]["failed_checks"] == []
    assert "champion" in alert["details"]["errors"]["churn__daily"]
    assert alert["link"] == f"{UI_URL}/runs/{failed.run_id}"


def test_an_unreachable_webhook_does_not_fail_the_predictions(
    trained_copy: Path, churn_spec: UseCaseSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Webhook() as hook:
        dead = hook.url  # the server stops at the end of the block: nothing listens there afterwards
    monkeypatch.setenv("ML_PLATFORM_ALERT_WEBHOOK", dead)
    result = materialize_stages(
        build_definitions(load_specs()), churn_spec, DAILY_STAGES[2:], dg.DagsterInstance.ephemeral(), ["2025-03-04"]
    )
    assert result.success
    metadata = materializations(result, keys.predictions(churn_spec))[0].metadata
    assert "high_score_alert_error" in metadata and "high_score_alerted" not in metadata


def test_server_errors_are_retried_with_backoff_until_delivered() -> None:
    with Webhook(500, 503) as hook:
        alerts = AlertResource(webhook_url=hook.url, backoff_seconds=0.2)
        started = time.monotonic()
        assert alerts.send("run_failed", "title", "text") is True
    assert len(hook.received) == 3 and hook.received[0] == hook.received[2]
    # urllib3's Retry: the first retry at once, then backoff_factor * 2 ** (n - 1) between the next ones
    assert time.monotonic() - started >= 0.4, "the third attempt waits twice the backoff factor"


@pytest.mark.parametrize(("status", "attempts"), [(500, 4), (429, 4), (400, 1)])
def test_a_failing_webhook_returns_false_after_bounded_attempts(status: int, attempts: int) -> None:
    with Webhook(then=status) as hook:
        alerts = AlertResource(webhook_url=hook.url, max_attempts=4, backoff_seconds=0.01)
        started = time.monotonic()
        assert alerts.send("run_failed", "title", "text") is False
        assert time.monotonic() - started < 5
    assert len(hook.received) == attempts, "a 4xx other than 429 is final"


def test_both_sinks_get_their_own_shape_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with Webhook() as slack, Webhook() as generic:
        monkeypatch.setenv("ML_PLATFORM_SLACK_WEBHOOK", slack.url)
        monkeypatch.setenv("ML_PLATFORM_ALERT_WEBHOOK", generic.url)
        monkeypatch.setenv("ML_PLATFORM_ALERT_TOKEN", "s3cret")
        monkeypatch.setenv("ML_PLATFORM_UI_URL", UI_URL)
        with dg.build_resources({"alerts": default_resources()["alerts"]}) as resources:
            alerts = resources.alerts
            sent = alerts.send(
                "champion_promoted",
                "churn: v3 is champion",
                "roc_auc 0.81 > 0.79",
                severity="info",
                details={"version": 3},
                link=alerts.run_url("abc"),
            )
        assert sent is True

    [message] = slack.received
    assert set(message) == {"text", "blocks"} and "churn: v3 is champion" in message["text"]
    assert "churn: v3 is champion" in message["blocks"][0]["text"]["text"]
    assert f"<{UI_URL}/runs/abc|" in message["blocks"][1]["elements"][0]["text"]
    assert "Authorization" not in slack.headers[0], "the token is for the generic webhook only"

    [alert] = generic.received
    assert {k: v for k, v in alert.items() if k != "sent_at"} == {
        "event": "champion_promoted",
        "title": "churn: v3 is champion",
        "text": "roc_auc 0.81 > 0.79",
        "severity": "info",
        "details": {"version": 3},
        "link": f"{UI_URL}/runs/abc",
    }
    assert alert["sent_at"].endswith("+00:00")
    assert generic.headers[0]["Authorization"] == "Bearer s3cret"


def test_no_sink_configured_only_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ML_PLATFORM_SLACK_WEBHOOK", "ML_PLATFORM_ALERT_WEBHOOK", "ML_PLATFORM_ALERT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with dg.build_resources({"alerts": default_resources()["alerts"]}) as resources:
        assert resources.alerts.send("run_failed", "title", "text") is False


@pytest.mark.parametrize(("min_count", "alerted"), [(3, True), (4, False)])
def test_high_risk_alert_needs_min_count_entities(churn_spec: UseCaseSpec, min_count: int, alerted: bool) -> None:
    spec = churn_spec.model_copy(update={"alerts": churn_spec.alerts.model_copy(update={"min_count": min_count})})
    threshold = spec.alerts.high_score_threshold
    scored = pd.DataFrame(
        {
            spec.entity_column: ["a", "b", "c", "d"],
            "score": [threshold, 0.99, 0.95, threshold - 0.01],
            "model_version": "7",
        }
    )
    with Webhook() as hook:
        metadata = alert_high_scores(AlertResource(webhook_url=hook.url), spec, "2025-03-04", scored, "link")
    assert metadata["high_score_count"] == 3
    assert len(hook.received) == int(alerted) and ("high_score_alerted" in metadata) is alerted
    if alerted:
        assert [e[spec.entity_column] for e in hook.received[0]["details"]["entities"]] == ["b", "c", "a"]


def test_pagerduty_is_paged_once_per_failing_gate_and_partition(trained_copy: Path, churn_spec: UseCaseSpec) -> None:
    """A repeated failure of the same gate and day carries the same dedup key (one incident); another day, another."""
    for day in ("2025-03-03", "2025-03-04"):
        path = landing_dir(trained_copy) / f"{day}.parquet"
        pd.read_parquet(path).drop(columns=["plan"]).to_parquet(path, index=False)
    defs, instance = build_definitions(load_specs()), dg.DagsterInstance.ephemeral()
    with Webhook() as pagerduty:
        alerts = AlertResource(
            pagerduty_routing_key="routing-key-for-tests", pagerduty_url=pagerduty.url, ui_url=UI_URL
        )
        for day in ("2025-03-04", "2025-03-04", "2025-03-03"):
            failed = materialize_stages(defs, churn_spec, DAILY_STAGES[:1], instance, [day])
            run_failure_sensor(defs, instance, failed, alerts)
        assert not alerts.send("champion_promoted", "churn: version 2 is the new champion", "...", severity="info")
    first, repeat, other = pagerduty.received
    assert first["routing_key"] == "routing-key-for-tests" and first["event_action"] == "trigger"
    assert first["dedup_key"] == repeat["dedup_key"] != other["dedup_key"]
    assert "churn/raw_events:schema:2025-03-04" in first["dedup_key"] and "2025-03-03" in other["dedup_key"]
    assert first["payload"]["severity"] == "warning" and first["payload"]["source"] == "ml_platform"
    assert first["payload"]["summary"].startswith("Gate failed: churn/raw_events schema")
    assert first["links"][0]["href"].startswith(f"{UI_URL}/runs/")
    assert len(pagerduty.received) == 3, "a promotion is news, not a page"
