"""Operator actions on the champion: audited rollback and forced promotion, as Dagster jobs.

Launch them from the job's Launchpad in the UI (write the reason in the
config) or with `ml-platform rollback|promote`, which runs the same job on the
same instance. Each records a materialization of `<use case>/champion`, so the
new-champion sensor rescores the recent days exactly as after a training.
"""

import dagster as dg
from pydantic import Field

from ml_platform.assets import keys
from ml_platform.models.registry import (
    Action,
    ChampionChange,
    change_champion,
    registered_version,
    rollback_target,
)
from ml_platform.resources.alerts import AlertResource
from ml_platform.resources.mlflow_resource import MlflowResource
from ml_platform.spec import UseCaseSpec


class RollbackConfig(dg.Config):
    reason: str = Field(description="Why the champion goes back; recorded on the MLflow version and in the run.")
    to_version: str = Field(default="", description="Registered version to restore; empty: the previous champion.")
    requested_by: str = Field(default="", description="Who asked for it; empty: this Dagster run.")


class PromoteConfig(dg.Config):
    version: str = Field(description="Registered version to make champion, whatever its gates said.")
    reason: str = Field(description="Why the gates are overridden; recorded on the MLflow version and in the run.")
    requested_by: str = Field(default="", description="Who asked for it; empty: this Dagster run.")
    live_evidence: bool = Field(
        default=False,
        description="Set by the live-evidence sensor: the version passed its gates and then proved "
        "better on live days (recorded as promoted_on_live_evidence, not as a forced promotion).",
    )


def build_champion_jobs(spec: UseCaseSpec) -> list[dg.JobDefinition]:
    tags = {"ml_platform/use_case": spec.name, "ml_platform/kind": "champion_change"}

    @dg.op(name=f"{spec.name}__rollback_champion")
    def rollback_champion(
        context: dg.OpExecutionContext,
        config: RollbackConfig,
        mlflow: MlflowResource,
        alerts: AlertResource,
    ) -> None:
        try:
            version = rollback_target(mlflow, spec.name, config.to_version.strip() or None)
            change = change_champion(
                mlflow, spec.name, version, "rolled_back", config.reason, _actor(context, config.requested_by)
            )
        except ValueError as error:  # no such version, nothing to roll back to, no reason: say so, never retry
            raise dg.Failure(str(error), allow_retries=False) from None
        _record(context, spec, change, mlflow, alerts)

    @dg.op(name=f"{spec.name}__promote_champion")
    def promote_champion(
        context: dg.OpExecutionContext,
        config: PromoteConfig,
        mlflow: MlflowResource,
        alerts: AlertResource,
    ) -> None:
        try:
            action: Action = "promoted_on_live_evidence" if config.live_evidence else "forced_promotion"
            change = change_champion(
                mlflow, spec.name, config.version.strip(), action, config.reason, _actor(context, config.requested_by)
            )
        except ValueError as error:
            raise dg.Failure(str(error), allow_retries=False) from None
        _record(context, spec, change, mlflow, alerts)

    @dg.job(
        name=f"{spec.name}_rollback",
        tags=tags,
        executor_def=dg.in_process_executor,
        description=f"{spec.name}: make the previous champion (or a given, once-trusted version) champion again; "
        "the recent predictions are then rescored by the new-champion sensor.",
    )
    def rollback_job() -> None:
        rollback_champion()

    @dg.job(
        name=f"{spec.name}_promote",
        tags=tags,
        executor_def=dg.in_process_executor,
        description=f"{spec.name}: force a registered version to champion past its gates, with a recorded reason.",
    )
    def promote_job() -> None:
        promote_champion()

    return [rollback_job, promote_job]


def _actor(context: dg.OpExecutionContext, requested_by: str) -> str:
    return requested_by.strip() or f"dagster run {context.run_id}"


def _record(
    context: dg.OpExecutionContext,
    spec: UseCaseSpec,
    change: ChampionChange,
    mlflow: MlflowResource,
    alerts: AlertResource,
) -> None:
    """Record the change as a materialization of the champion asset (the MLflow alias itself is the
    champion: this is its history in the UI, and what the new-champion sensor reacts to) and alert."""
    run = mlflow.client().get_run(registered_version(mlflow, spec.name, change.champion).run_id)
    metrics = {name.removeprefix("holdout_"): value for name, value in run.data.metrics.items()}
    context.log_event(
        dg.AssetMaterialization(
            asset_key=keys.champion(spec),
            description=f"{change.action}: version {change.champion} (was {change.previous or 'none'}): "
            f"{change.reason}",
            metadata={
                "champion_version": change.champion,
                "previous_champion": change.previous or "none",
                "action": change.action,
                "reason": change.reason,
                "requested_by": change.actor,
                "mlflow_model": dg.MetadataValue.url(mlflow.version_url(spec.name, change.champion)),
                **{f"holdout_{name}": value for name, value in metrics.items()},
            },
        )
    )
    event = "champion_rolled_back" if change.action == "rolled_back" else "champion_promoted"
    headlines = {"rolled_back": "is champion again", "promoted_on_live_evidence": "promoted on live evidence"}
    alerts.send(
        event,
        f"{spec.name}: version {change.champion} {headlines.get(change.action, 'forced to champion')}",
        f"{change.action} by {change.actor}, replacing version {change.previous or 'none'}: {change.reason}",
        severity="warning",
        details={**change.as_dict(), "use_case": spec.name},
        link=mlflow.version_url(spec.name, change.champion),
    )
    context.log.info(f"{spec.name}: champion is version {change.champion} ({change.action}, was {change.previous})")
