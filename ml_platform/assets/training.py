"""Training-side assets: training set -> model (challenger) -> champion.

The model asset's blocking checks are the promotion gate: the challenger must
meet the spec's thresholds and beat the current champion, scored on the same
holdout, by a statistically significant margin (a one-sided paired bootstrap
test). Only then does the champion asset move the MLflow alias, keeping the
previous champion under its own alias for rollback.
"""

import base64
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pandas as pd

from ml_platform import steps
from ml_platform.assets import keys
from ml_platform.assets.conventions import code_version
from ml_platform.io.parquet_lake import DataLake
from ml_platform.k8s.placement import training_op_tags, training_pool
from ml_platform.models.challenger import (
    THRESHOLD_TAG,
    Challenger,
    ModelSummary,
    ReferenceModel,
    Registered,
    register_challenger,
    train_challenger,
)
from ml_platform.models.registry import change_champion
from ml_platform.models.training_set import NotEnoughHistory, assemble, choose_window
from ml_platform.resources.alerts import AlertResource
from ml_platform.resources.mlflow_resource import CHAMPION, PREVIOUS_CHAMPION, MlflowResource
from ml_platform.settings import Settings
from ml_platform.spec import UseCaseSpec

SIGNIFICANCE_CHECK = "significantly_better_than_champion"
MLFLOW_RETRY = dg.RetryPolicy(max_retries=2, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


class TrainingConfig(dg.Config):
    """Per-run overrides of the spec's model parameters (empty: use the spec as written)."""

    params: dict[str, Any] = {}  # noqa: RUF012 (a pydantic field: each config gets its own copy)


def build_training_assets(spec: UseCaseSpec, settings: Settings) -> list[dg.AssetsDefinition]:
    return [_training_set(spec), _model(spec, settings), _champion(spec)]


def _training_set(spec: UseCaseSpec) -> dg.AssetsDefinition:
    features_key, raw_key = keys.features(spec), keys.raw_events(spec)
    training = spec.training

    @dg.asset(
        key=keys.training_set(spec),
        description=f"{spec.name}: the latest {training.window_days} label-complete feature days (after a "
        f"{spec.lookback_days - 1}-day warm-up, so every window is complete) with labels from the "
        f"label kind {spec.label.kind} (horizon {spec.label.horizon_days} days); the last "
        f"{training.holdout_days} days are the time-based holdout, "
        f"separated from training days by a {spec.label.horizon_days}-day purge gap.",
        deps=[features_key, raw_key],
        group_name=spec.name,
        owners=spec.owners,
        kinds={"parquet", "pandas"},
        code_version=code_version(spec, "training_set"),
    )
    def training_set(context: dg.AssetExecutionContext, lake: DataLake) -> dg.Output[pd.DataFrame]:
        try:
            window = choose_window(
                spec,
                lake.existing_partitions(raw_key),
                lake.existing_partitions(features_key),
                steps.days_without_events(lake, spec, raw_key),
            )
            frame, unlabelled = assemble(lake, spec, features_key, raw_key, window)
        except NotEnoughHistory as error:
            raise dg.Failure(str(error), allow_retries=False) from None
        return dg.Output(
            frame,
            metadata={
                "rows": len(frame),
                "dagster/row_count": dg.MetadataValue.int(len(frame)),
                "unlabelled_rows": dg.MetadataValue.int(unlabelled),  # outcome unknown: scored daily, not trained on
                "train_days": f"{window.train[0]}..{window.train[-1]}",
                "holdout_days": f"{window.holdout[0]}..{window.holdout[-1]}",
                **_label_summary(frame["label"], spec),
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(str(name), str(dtype)) for name, dtype in frame.dtypes.items()]
                ),
            },
        )

    return training_set


def _label_summary(labels: pd.Series, spec: UseCaseSpec) -> dict[str, Any]:
    """The labels in one glance: their mean (the positive rate of a flag), or each class's count."""
    if spec.label.task == "multiclass":
        return {"label_counts": dg.MetadataValue.json({str(k): int(v) for k, v in labels.value_counts().items()})}
    return {"label_mean": float(labels.mean())}


def _gate_descriptions(spec: UseCaseSpec) -> tuple[str, str]:
    """The two promotion gates in words: the thresholds, and the significance test against the champion."""
    gates = spec.gates
    thresholds = ", ".join(
        [f"{metric} >= {value}" for metric, value in gates.min_metrics.items()]
        + [f"{metric} <= {value}" for metric, value in gates.max_metrics.items()]
    )
    significance = (
        f"holdout {gates.compare_metric} better than the champion's on the same rows: one-sided paired bootstrap "
        f"({gates.bootstrap_resamples} resamples), p < {gates.significance_level}"
    )
    return thresholds, significance


def _model(spec: UseCaseSpec, settings: Settings) -> dg.AssetsDefinition:
    key = keys.model(spec)
    thresholds, significance = _gate_descriptions(spec)
    library = "scikitlearn" if spec.model.type.startswith("sklearn") else "pytorch"

    @dg.asset(
        key=key,
        description=f"{spec.name}: a {spec.model.type} challenger trained on the training set, logged to MLflow and "
        f"registered as a new version of '{spec.name}'. Blocking gates: {thresholds}; {significance} "
        "(the first model of a use case needs the thresholds only).",
        ins={"training_set": dg.AssetIn(keys.training_set(spec))},
        check_specs=[
            dg.AssetCheckSpec("meets_thresholds", asset=key, blocking=True, description=f"Holdout {thresholds}"),
            dg.AssetCheckSpec(SIGNIFICANCE_CHECK, asset=key, blocking=True, description=significance.capitalize()),
        ],
        group_name=spec.name,
        owners=spec.owners,
        kinds={library, "mlflow"},
        code_version=code_version(spec, "model"),
        retry_policy=MLFLOW_RETRY,
        op_tags=training_op_tags(spec, settings),
        pool=training_pool(spec),
    )
    def model(
        context: dg.AssetExecutionContext, config: TrainingConfig, training_set: pd.DataFrame, mlflow: MlflowResource
    ) -> Iterator[Any]:
        params = {"random_state": spec.training.seed, **spec.model.params, **config.params}
        try:
            challenger = train_challenger(spec, training_set, params, _current_champion(spec, mlflow))
        except NotEnoughHistory as error:  # e.g. too few training days for the tuning folds: retrying cannot help
            raise dg.Failure(f"{spec.name}: {error}", allow_retries=False) from None
        registered = register_challenger(mlflow, challenger, training_set, context.run.run_id)
        yield dg.Output(
            ModelSummary.of(challenger, registered), metadata=_model_metadata(spec, mlflow, challenger, registered)
        )
        yield _thresholds_result(spec, registered.version, challenger)
        yield _significance_result(spec, registered.version, challenger)

    return model


def _current_champion(spec: UseCaseSpec, mlflow: MlflowResource) -> ReferenceModel | None:
    """The champion to beat, loaded with its decision threshold; None only if the alias does not exist."""
    champion = mlflow.version_by_alias(spec.name, CHAMPION)
    if champion is None:
        return None
    threshold = float(champion.tags.get(THRESHOLD_TAG, 0.5))
    model = mlflow.load_model(spec.name, champion.version)
    signature = model.metadata.get_input_schema()
    features = signature.input_names() if signature is not None else spec.feature_names
    return ReferenceModel(model, str(champion.version), threshold, list(features))


def _comparison_table(spec: UseCaseSpec, version: str, challenger: Challenger) -> str:
    """The promotion decision as the asset page shows it: both metrics, the interval, the p-value."""
    comparison, champion_version, metrics = challenger.comparison, challenger.champion_version, challenger.metrics
    if challenger.incomparable:
        return f"Version {version} cannot be compared with the champion: {challenger.incomparable}."
    if comparison is None:
        return f"Version {version} is the first model of `{spec.name}`: the thresholds alone decide."
    metric = spec.gates.compare_metric
    verdict = (
        "significantly better: may become champion"
        if challenger.significant
        else "not significantly better: champion stays"
    )
    return "\n".join(
        [
            f"| holdout {metric} | value |",
            "|---|---|",
            f"| challenger v{version} | {comparison.challenger:.4f} |",
            f"| champion v{champion_version} | {comparison.champion:.4f} |",
            f"| improvement | {comparison.improvement:+.4f} |",
            f"| {comparison.ci_level:.0%} interval | {comparison.ci_low:+.4f} .. {comparison.ci_high:+.4f} |",
            f"| p-value ({comparison.method}, {comparison.resamples} resamples) | {comparison.p_value:.3f} |",
            f"| decision at alpha {spec.gates.significance_level} | {verdict} |",
            "",
            "All challenger metrics: " + ", ".join(f"{name} {value:.4f}" for name, value in metrics.items()),
        ]
    )


def _model_metadata(
    spec: UseCaseSpec, mlflow: MlflowResource, challenger: Challenger, registered: Registered
) -> dict[str, Any]:
    """What the model asset's page shows: links, rounded metrics, window, params, the comparison, the plots."""
    return {
        "mlflow_version": registered.version,
        "mlflow_run": dg.MetadataValue.url(mlflow.run_url(registered.experiment_id, registered.run_id)),
        "mlflow_model": dg.MetadataValue.url(mlflow.version_url(spec.name, registered.version)),
        **{f"holdout_{name}": round(value, 4) for name, value in challenger.metrics.items()},
        **challenger.window,
        "params": dg.MetadataValue.json(challenger.params),
        "versus_champion": dg.MetadataValue.md(_comparison_table(spec, registered.version, challenger)),
        **{
            f"plot_{name}": dg.MetadataValue.md(f"![{name}](data:image/png;base64,{base64.b64encode(png).decode()})")
            for name, png in challenger.plots.items()
        },
    }


def _thresholds_result(spec: UseCaseSpec, version: str, challenger: Challenger) -> dg.AssetCheckResult:
    gates, failed = spec.gates, challenger.failed_thresholds
    return dg.AssetCheckResult(
        check_name="meets_thresholds",
        passed=not failed,
        metadata={
            **{m: round(challenger.metrics[m], 4) for m in [*gates.min_metrics, *gates.max_metrics]},
            "limits": dg.MetadataValue.json({"min": gates.min_metrics, "max": gates.max_metrics}),
            "failed": dg.MetadataValue.json(failed),
        },
        description=f"version {version}: "
        + ("meets all thresholds" if not failed else "; ".join(f"{m} {observed}" for m, observed in failed.items())),
    )


def _significance_result(spec: UseCaseSpec, version: str, challenger: Challenger) -> dg.AssetCheckResult:
    metric, alpha = spec.gates.compare_metric, spec.gates.significance_level
    comparison, champion_version, passed = challenger.comparison, challenger.champion_version, challenger.significant
    if challenger.incomparable:
        return dg.AssetCheckResult(
            check_name=SIGNIFICANCE_CHECK,
            passed=False,
            metadata={"champion_version": str(champion_version)},
            description=f"version {version}: {challenger.incomparable}",
        )
    if comparison is None:
        return dg.AssetCheckResult(
            check_name=SIGNIFICANCE_CHECK,
            passed=True,
            metadata={"champion_version": "none"},
            description=f"version {version}: first model of {spec.name}, so the thresholds alone decide",
        )
    return dg.AssetCheckResult(
        check_name=SIGNIFICANCE_CHECK,
        passed=passed,
        metadata={
            "method": comparison.method,
            "resamples": comparison.resamples,
            "alpha": alpha,
            "p_value": round(comparison.p_value, 4),
            f"challenger_{metric}": round(comparison.challenger, 4),
            f"champion_{metric}": round(comparison.champion, 4),
            "improvement": round(comparison.improvement, 4),
            "improvement_interval": dg.MetadataValue.json(
                {"level": comparison.ci_level, "low": round(comparison.ci_low, 4), "high": round(comparison.ci_high, 4)}
            ),
            "champion_version": str(champion_version),
        },
        description=(
            f"version {version} {metric} {comparison.challenger:.4f} vs champion v{champion_version} "
            f"{comparison.champion:.4f}: improvement {comparison.improvement:+.4f} ({comparison.ci_level:.0%} interval "
            f"{comparison.ci_low:+.4f}.."
            f"{comparison.ci_high:+.4f}), p = {comparison.p_value:.3f}: "
            + (
                f"significantly better at alpha {alpha}"
                if passed
                else f"not significantly better at alpha {alpha}"
                if comparison.improvement > 0
                else "not better"
            )
        ),
    )


def _champion(spec: UseCaseSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=keys.champion(spec),
        description=f"{spec.name}: the registered version at MLflow alias '{CHAMPION}'. Moves only when the challenger "
        f"passed its gates (or by an audited `{spec.name}_promote` / `{spec.name}_rollback` run); the version it "
        f"replaces keeps alias '{PREVIOUS_CHAMPION}' for rollback."
        + (
            f" With gates.live_evidence_days {spec.gates.live_evidence_days}, a challenger that passed its "
            f"gates waits in shadow and `{spec.name}_live_evidence_sensor` promotes it once it is significantly "
            "better on that many live days."
            if spec.gates.live_evidence_days
            else ""
        ),
        ins={"model": dg.AssetIn(keys.model(spec))},
        group_name=spec.name,
        owners=spec.owners,
        kinds={"mlflow"},
        code_version=code_version(spec, "champion"),
        retry_policy=MLFLOW_RETRY,
        output_required=False,  # not materialized while a challenger waits for live evidence
    )
    def champion(
        context: dg.AssetExecutionContext, model: ModelSummary, mlflow: MlflowResource, alerts: AlertResource
    ) -> Iterator[dg.MaterializeResult[Any]]:
        if not model.gates_passed:
            raise dg.Failure(
                f"{spec.name}: challenger v{model.version} failed its gates; the champion stays", allow_retries=False
            )
        comparison = model.comparison
        if comparison is not None and spec.gates.live_evidence_days:
            context.log.info(
                f"{spec.name}: challenger v{model.version} passed its gates and waits in shadow for "
                f"{spec.gates.live_evidence_days} live day(s) of significantly better paired evidence "
                "(gates.live_evidence_days; the live-evidence sensor promotes it)"
            )
            return
        reason = (
            "first model; meets the thresholds"
            if comparison is None
            else (
                f"meets the thresholds; {spec.gates.compare_metric} {comparison.challenger:.4f} vs "
                f"{comparison.champion:.4f}, p = {comparison.p_value:.3f}"
            )
        )
        # Loaded from the registry before the alias moves: a version that does not load never becomes champion,
        # and the first scoring run after the promotion finds it in the local model cache (no registry load).
        mlflow.load_model(spec.name, model.version)
        change = change_champion(
            mlflow, spec.name, model.version, "promoted", reason, actor=f"dagster run {context.run.run_id}"
        )
        alerts.send(
            "champion_promoted",
            f"{spec.name}: version {change.champion} is the new champion",
            f"replaces {change.previous or 'nothing (first model)'}: {reason}",
            severity="info",
            details={**change.as_dict(), "use_case": spec.name, "metrics": model.metrics},
            link=mlflow.version_url(spec.name, change.champion),
        )
        yield dg.MaterializeResult(
            metadata={  # the MLflow alias is the champion; this records the change
                "champion_version": change.champion,
                "previous_champion": change.previous or "none",
                "reason": reason,
                "mlflow_model": dg.MetadataValue.url(mlflow.version_url(spec.name, change.champion)),
                **{f"holdout_{name}": round(value, 4) for name, value in model.metrics.items()},
            }
        )

    return champion
