"""Run-failure alerts (to Slack, or PagerDuty through a webhook): every failed run of the code location is posted.

A run stopped by a blocking gate is bad data or a weak model, not a broken platform, so it goes out
as `gate_failed` (warning) naming the failed checks and partitions; anything else is `run_failed` (error).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from ml_platform.automation.runs import default_status
from ml_platform.resources.alerts import AlertResource
from ml_platform.settings import Settings

# How our gates word their step failures: PartitionGate, the champion asset, Dagster's own blocking checks.
GATE_FAILURE_MARKERS = ("partition(s) failed", "failed its gates", "blocking asset check")
MESSAGE_CHARS = 500


def build_failure_alert_sensor(settings: Settings) -> dg.SensorDefinition:
    @dg.run_failure_sensor(
        name="run_failure_alerts",
        default_status=default_status(settings),
        description="Posts every failed run (job, partitions, failed steps or gate checks, link to the run) "
        "to ML_PLATFORM_SLACK_WEBHOOK, ML_PLATFORM_ALERT_WEBHOOK and/or PagerDuty (ML_PLATFORM_PAGERDUTY_ROUTING_KEY; "
        "a repeated failure of the same gate and partition joins its open incident).",
    )
    def run_failure_alerts(context: dg.RunFailureSensorContext, alerts: AlertResource) -> None:
        run = context.dagster_run
        partitions = _partitions(run.tags)
        errors = {event.step_key or "run": _reason(event) for event in context.get_step_failure_events()}
        evaluations = _failed_evaluations(context.instance, run.run_id)
        checks = failed_checks(evaluations, partitions)
        blocked = sum(_is_consequence(evaluation) for evaluation in evaluations)
        details: dict[str, Any] = {
            "run_id": run.run_id,
            "job": run.job_name,
            "partitions": partitions,
            "failed_steps": sorted(k for k in errors if k != "run"),
            "errors": errors,
            "failed_checks": checks,
            "days_failed_downstream": blocked,
            "tags": {name: value for name, value in run.tags.items() if not name.startswith(".")},
        }  # no internals
        where = f" for {partitions}" if partitions else ""
        reasons = "\n".join(f"• {step}: {message}" for step, message in errors.items())
        reasons = reasons or _first_line(context.failure_event.message or "")
        gate_failed = checks or any(
            marker in message.lower() for message in errors.values() for marker in GATE_FAILURE_MARKERS
        )
        if gate_failed:
            names = sorted({f"{check['asset']} {check['check']}" for check in checks}) or sorted(errors)
            lines = [
                f"• {c['asset']} `{c['check']}` [{c['partition'] or 'unpartitioned'}]: {c['description']}"
                for c in checks
            ]
            alerts.send(
                "gate_failed",
                f"Gate failed: {', '.join(names)}{where}",
                f"run {run.run_id} ({run.job_name}) failed at a blocking gate; what depends on the failed days was "
                f"not computed{f' ({blocked} asset day(s))' if blocked else ''}, every other day went through.\n"
                + "\n".join(lines or [reasons]),
                severity="warning",
                details=details,
                link=alerts.run_url(run.run_id),
                dedup_key="gate_failed:"
                + ",".join(sorted(f"{c['asset']}:{c['check']}:{c['partition'] or '-'}" for c in checks) or names),
            )
        else:
            alerts.send(
                "run_failed",
                f"Run failed: {run.job_name}{where}",
                f"run {run.run_id} failed in {', '.join(details['failed_steps']) or 'setup'}{where}:\n{reasons}",
                severity="error",
                details=details,
                link=alerts.run_url(run.run_id),
                dedup_key=f"run_failed:{run.job_name}:{partitions or '-'}:{','.join(details['failed_steps'])}",
            )

    return run_failure_alerts


def _failed_evaluations(instance: dg.DagsterInstance, run_id: str) -> list[dg.AssetCheckEvaluation]:
    """The run's failed blocking check evaluations."""
    evaluations = (
        record.get_dagster_event().asset_check_evaluation_data
        for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    )
    return [evaluation for evaluation in evaluations if not evaluation.passed and evaluation.blocking is not False]


def _is_consequence(evaluation: dg.AssetCheckEvaluation) -> bool:
    """A day failed because a day it depends on failed (its gate says which): not a cause to page about."""
    return bool(evaluation.metadata.get("upstream_failed"))


def failed_checks(evaluations: Sequence[dg.AssetCheckEvaluation], run_partitions: str) -> list[dict[str, Any]]:
    """The failed evaluations that caused the run's failed days (not the days that only depend on them); one
    without a partition is charged to the run's partitions."""
    checks = []
    for evaluation in evaluations:
        if _is_consequence(evaluation):
            continue
        checks.append(
            {
                "asset": evaluation.asset_key.to_user_string(),
                "check": evaluation.check_name,
                "partition": evaluation.partition or run_partitions or None,
                "description": evaluation.description or "",
            }
        )
    return checks


def _partitions(tags: Mapping[str, str]) -> str:
    """'2025-03-04' for a one-day run, '2025-01-01..2025-03-04' for a range run, '' when unpartitioned."""
    if "dagster/partition" in tags:
        return tags["dagster/partition"]
    bounds = [tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")]
    return "..".join(bound for bound in bounds if bound)


def _reason(step_failure: dg.DagsterEvent) -> str:
    """The first line of what the step raised: a `dg.Failure`'s description, else 'KeyError: ...' (no module path)."""
    data = step_failure.step_failure_data
    if data.user_failure_data and data.user_failure_data.description:
        return _first_line(data.user_failure_data.description)
    message = data.error.message if data.error else step_failure.message or ""
    return _first_line(re.sub(r"^(?:\w+\.)+(?=\w+: )", "", message))


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0][:MESSAGE_CHARS] if message.strip() else ""
