"""Run-failure alerts (seed 001's Slack/PagerDuty): every failed run of the code location is posted."""

import dagster as dg

from ml_platform.automation.triggers import default_status
from ml_platform.resources.alerts import AlertResource


def build_failure_alert_sensor() -> dg.SensorDefinition:
    @dg.run_failure_sensor(
        name="run_failure_alerts",
        default_status=default_status(),
        description="Posts every failed run (job, run id, failing steps, tags) to ML_PLATFORM_ALERT_WEBHOOK.",
    )
    def run_failure_alerts(context: dg.RunFailureSensorContext, alerts: AlertResource) -> None:
        run = context.dagster_run
        failed_steps = sorted({event.step_key for event in context.get_step_failure_events() if event.step_key})
        partition = run.tags.get("dagster/partition") or "..".join(
            filter(None, [run.tags.get("dagster/asset_partition_range_start"), run.tags.get("dagster/asset_partition_range_end")])
        )
        alerts.send(
            f"Run failed: {run.job_name}",
            f"run {run.run_id} failed in {failed_steps or 'setup'}" + (f" for partitions {partition}" if partition else "")
            + f": {context.failure_event.message}",
            details={"run_id": run.run_id, "job": run.job_name, "failed_steps": failed_steps,
                     "partitions": partition, "tags": dict(run.tags)},
        )

    return run_failure_alerts
