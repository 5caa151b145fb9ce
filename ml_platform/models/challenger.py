"""A challenger model from a training set, without Dagster: train, evaluate, compare, register.

`train_challenger` fits the spec's model on the training days, scores the holdout, compares it with
the current champion on the same rows (a one-sided paired bootstrap) and draws the evaluation
plots; `register_challenger` logs all of it to MLflow and registers a version. The `model` asset
calls both and turns the result into its output and its two blocking checks.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import TypeAdapter, ValidationError

from ml_platform.features.compute import DAY
from ml_platform.features.drift import SCORE, reference_bins
from ml_platform.models.base import Trainer
from ml_platform.models.comparison import ImprovementTest, paired_bootstrap_test
from ml_platform.models.evaluation_plots import holdout_plots
from ml_platform.models.metrics import classification_metrics, multiclass_metrics, regression_metrics
from ml_platform.models.trainers import build_trainer
from ml_platform.models.tuning import Trial, tune
from ml_platform.monitoring.realized import fit_calibration, metric_interval
from ml_platform.resources.mlflow_resource import DRIFT_REFERENCE, MlflowResource
from ml_platform.spec import LOWER_IS_BETTER, UseCaseSpec
from ml_platform.steps import class_probabilities, score_frame

THRESHOLD_TAG = "decision_threshold"
CALIBRATION_TAG = "score_calibration"  # JSON {"x": [...], "y": [...]}: holdout scores -> observed positive rate


@dataclass(frozen=True)
class ReferenceModel:
    """The current champion, as the challenger is compared with it."""

    model: Any
    version: str
    threshold: float
    features: list[str]  # the inputs it was trained on (its MLflow signature)


@dataclass
class Challenger:
    spec: UseCaseSpec
    trainer: Trainer
    params: dict[str, Any]
    train: pd.DataFrame
    holdout: pd.DataFrame
    scores: np.ndarray
    metrics: dict[str, float]
    champion_version: str | None
    comparison: ImprovementTest | None
    failed_thresholds: dict[str, str]
    plots: dict[str, bytes]
    importance: dict[str, float]
    incomparable: str | None = None  # why the champion cannot be scored on this holdout, if it cannot
    trials: list[Trial] = field(default_factory=list)  # the tuning search, when the spec asks for one

    @property
    def significant(self) -> bool:
        """Better than the champion beyond noise (the first model has nothing to beat)."""
        if self.incomparable:
            return False
        return self.comparison is None or self.comparison.significant(self.spec.gates.significance_level)

    @property
    def gates_passed(self) -> bool:
        return not self.failed_thresholds and self.significant

    @property
    def window(self) -> dict[str, Any]:
        return {
            "train_days": f"{self.train[DAY].min()}..{self.train[DAY].max()}",
            "holdout_days": f"{self.holdout[DAY].min()}..{self.holdout[DAY].max()}",
            "train_rows": len(self.train),
            "holdout_rows": len(self.holdout),
        }


@dataclass(frozen=True)
class Registered:
    version: str
    run_id: str
    experiment_id: str


@dataclass(frozen=True)
class ModelSummary:
    """The model asset's value, which the champion asset receives: what it needs to decide and record a promotion.

    The IO manager stores it as JSON (`to_json`) and reads it back in the champion's process (`from_json`);
    the keys are those of the dict the model asset stored before this type, so a stored value of then still reads.
    """

    version: str  # the registered MLflow version
    run_id: str
    experiment_id: str
    metrics: dict[str, float]  # holdout metrics
    champion_version: str | None  # the champion it was compared with; None for the first model
    comparison: ImprovementTest | None  # None when there was nothing to compare with (or it could not be)
    gates_passed: bool

    @classmethod
    def of(cls, challenger: Challenger, registered: Registered) -> ModelSummary:
        return cls(
            version=registered.version,
            run_id=registered.run_id,
            experiment_id=registered.experiment_id,
            metrics=challenger.metrics,
            champion_version=challenger.champion_version,
            comparison=challenger.comparison,
            gates_passed=challenger.gates_passed,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: Any) -> ModelSummary:
        """A stored summary, validated field by field; a ValueError names each missing or bad field."""
        try:
            return TypeAdapter(cls).validate_python(value)
        except ValidationError as error:
            problems = [
                f"{'.'.join(map(str, issue['loc'])) or 'value'}: {issue['msg']}"
                for issue in error.errors(include_url=False)
            ]
            raise ValueError("; ".join(problems)) from None


def train_challenger(
    spec: UseCaseSpec,
    training_set: pd.DataFrame,
    params: dict[str, Any],
    champion: ReferenceModel | None,
) -> Challenger:
    """Fit on the training split, evaluate on the holdout, compare with `champion` on the same rows."""
    train = training_set[training_set["split"] == "train"]
    holdout = training_set[training_set["split"] == "holdout"]
    categories: dict[str, tuple[str, int]] = {
        feature.name: (feature.encoding, feature.top_k) for feature in spec.categorical_features
    }
    trials: list[Trial] = []
    if spec.training.tuning is not None:  # the best of a time-ordered cross-validated search, on training days only
        params, trials = tune(spec, train, params, categories)
    trainer = build_trainer(spec.model.type, params, categories, spec.classes).fit(
        train[spec.feature_names], train["label"], train[DAY]
    )
    scores = trainer.predict(holdout[spec.feature_names])
    labels = label_values(spec, holdout)
    metrics = evaluate(spec, holdout, scores, trainer.threshold)
    incomparable = _incomparable(spec, champion, holdout) if champion else None
    comparison = _compare(spec, champion, holdout, scores, trainer.threshold) if champion and not incomparable else None
    plots, importance = holdout_plots(
        spec.label.task,
        labels,
        scores,
        trainer.threshold,
        trainer.predict,
        holdout[spec.feature_names],
        spec.training.seed,
        spec.classes,
    )
    return Challenger(
        spec=spec,
        trainer=trainer,
        params=params,
        train=train,
        holdout=holdout,
        scores=scores,
        metrics=metrics,
        champion_version=champion.version if champion else None,
        comparison=comparison,
        failed_thresholds=spec.gates.failures(metrics),
        plots=plots,
        importance=importance,
        incomparable=incomparable,
        trials=trials,
    )


def register_challenger(
    mlflow: MlflowResource,
    challenger: Challenger,
    training_set: pd.DataFrame,
    dagster_run_id: str,
) -> Registered:
    """One MLflow run (params, metrics, tags, plots, drift reference, model) and a registered version."""
    spec, trainer, window = challenger.spec, challenger.trainer, challenger.window
    outcome = "passed" if challenger.gates_passed else "failed"
    dagster_run = mlflow.dagster_run_url(dagster_run_id)
    client, tracking = mlflow.client(), mlflow.configure()
    experiment_id = mlflow.experiment_id(spec.name)
    with tracking.start_run(experiment_id=experiment_id, run_name=f"{spec.name}-{dagster_run_id[:8]}") as run:
        tracking.log_params(
            {**challenger.params, "model_type": spec.model.type, "decision_threshold": trainer.threshold}
        )
        tracking.log_metrics({f"holdout_{name}": value for name, value in challenger.metrics.items()})
        tracking.log_metrics(holdout_interval(challenger))
        tracking.set_tags(
            {
                "dagster_run_id": dagster_run_id,
                "dagster_run_url": dagster_run,
                "mlflow.note.content": f"{spec.name} challenger trained by Dagster run "
                f"[{dagster_run_id[:8]}]({dagster_run}) "
                f"on {window['train_days']}, evaluated on the holdout {window['holdout_days']}. Plots: `evaluation/`.",
                "use_case": spec.name,
                **{name: str(value) for name, value in window.items()},
                "training_set_hash": str(pd.util.hash_pandas_object(training_set, index=False).sum()),
                "gates": outcome,
                "promotion_champion_version": challenger.champion_version or "none",
                **({"promotion_incomparable": challenger.incomparable} if challenger.incomparable else {}),
                **(challenger.comparison.as_tags() if challenger.comparison else {}),
            }
        )
        _log_plots(tracking, challenger.plots)
        _log_trials(tracking, spec, challenger)
        tracking.log_dict(challenger.importance, "evaluation/permutation_importance.json")
        reference = reference_bins(challenger.train, spec.numeric_feature_names)
        top_scores = (
            challenger.scores.max(axis=1) if challenger.scores.ndim == 2 else challenger.scores
        )  # as predictions' score
        reference.update(reference_bins(pd.DataFrame({SCORE: top_scores}), [SCORE]))  # out-of-sample scores
        tracking.log_dict(reference, DRIFT_REFERENCE)
        logged = trainer.log_model(
            "model", challenger.train[spec.feature_names].head(5), registered_model_name=spec.name
        )
    version = str(logged.registered_model_version)
    client.set_model_version_tag(spec.name, version, "gates", outcome)
    if trainer.threshold is not None:
        client.set_model_version_tag(spec.name, version, THRESHOLD_TAG, str(trainer.threshold))
    if spec.label.task == "classification":
        calibration = fit_calibration(challenger.scores, label_values(spec, challenger.holdout))
        if calibration is not None:
            client.set_model_version_tag(spec.name, version, CALIBRATION_TAG, json.dumps(calibration))
    client.update_model_version(
        spec.name,
        version,
        description=(
            f"{spec.model.type} trained by Dagster run {dagster_run_id} ({dagster_run}) on {window['train_days']}; "
            f"holdout {window['holdout_days']}: "
            + ", ".join(f"{m} {v:.4f}" for m, v in challenger.metrics.items())
            + f". Gates {outcome}."
        ),
    )
    return Registered(version=version, run_id=run.info.run_id, experiment_id=experiment_id)


def holdout_interval(challenger: Challenger) -> dict[str, float]:
    """The compare metric's bootstrap interval on the holdout, as MLflow metrics: what the performance gate
    holds the model's live days against once it is champion."""
    spec, holdout = challenger.spec, challenger.holdout
    metric, gates = spec.gates.compare_metric, spec.gates
    naive = holdout[spec.label.naive_feature].to_numpy() if spec.label.naive_feature else None
    low, high = metric_interval(
        metric,
        label_values(spec, holdout),
        challenger.scores,
        challenger.trainer.threshold,
        naive,
        gates.bootstrap_resamples,
        1 - 2 * gates.significance_level,
        spec.training.seed,
    )
    return {f"holdout_{metric}_ci_low": low, f"holdout_{metric}_ci_high": high}


def evaluate(spec: UseCaseSpec, holdout: pd.DataFrame, scores: np.ndarray, threshold: float | None) -> dict[str, float]:
    """Holdout metrics of the spec's task: classification at the model's own threshold, the most probable class,
    or regression vs naive."""
    labels = label_values(spec, holdout)
    if spec.label.task == "multiclass":
        return multiclass_metrics(labels, scores)
    if spec.label.task == "regression":
        return regression_metrics(labels, scores, holdout[spec.label.naive_feature].to_numpy())
    return classification_metrics(labels, scores, 0.5 if threshold is None else threshold)


def _compare(
    spec: UseCaseSpec, champion: ReferenceModel, holdout: pd.DataFrame, scores: np.ndarray, threshold: float | None
) -> ImprovementTest:
    """The challenger against the champion, both scored on the same holdout rows (each on its own features)."""
    if spec.label.task == "multiclass":
        champion_scores = class_probabilities(champion.model.predict(holdout[champion.features]), spec.classes)
    else:
        champion_scores = score_frame(champion.model, holdout, spec, champion.version, champion.features)[
            "score"
        ].to_numpy()
    naive = holdout[spec.label.naive_feature].to_numpy() if spec.label.naive_feature else None
    gates = spec.gates
    return paired_bootstrap_test(
        gates.compare_metric,
        gates.compare_metric in LOWER_IS_BETTER,
        label_values(spec, holdout),
        naive,
        (scores, threshold),
        (champion_scores, champion.threshold),
        resamples=gates.bootstrap_resamples,
        alpha=gates.significance_level,
        seed=spec.training.seed,
    )


def label_values(spec: UseCaseSpec, frame: pd.DataFrame) -> np.ndarray:
    """Labels as the metrics read them: numbers, or a multiclass label's class indexes (spec.classes order)."""
    if spec.label.task == "multiclass":
        return pd.Categorical(frame["label"], categories=spec.classes).codes.astype(np.int64)
    return frame["label"].to_numpy()


def _incomparable(spec: UseCaseSpec, champion: ReferenceModel, holdout: pd.DataFrame) -> str | None:
    """Why the champion cannot be scored on this holdout: it reads features the spec no longer computes."""
    missing = [name for name in champion.features if name not in holdout.columns]
    if not missing:
        return None
    return (
        f"champion v{champion.version} was trained on feature(s) {missing} that the current spec does not compute, "
        "so it cannot be scored on this holdout and the challenger cannot be shown to be better; the champion stays. "
        f"If the new feature set is intended, promote this version: `ml-platform promote {spec.name} <version> "
        "--reason '...'` (or the Launchpad of the promote job)"
    )


def _log_trials(tracking: Any, spec: UseCaseSpec, challenger: Challenger) -> None:
    """Each tuning trial as a child run of the challenger's run: its params and its score on every fold."""
    metric, experiment_id = spec.gates.compare_metric, tracking.active_run().info.experiment_id
    best = next((trial for trial in challenger.trials if trial.params == challenger.params), None)
    for trial in challenger.trials:
        with tracking.start_run(run_name=f"{spec.name}-trial-{trial.number}", nested=True, experiment_id=experiment_id):
            tracking.log_params({**trial.params, "model_type": spec.model.type})
            tracking.log_metrics({f"fold_{index}_{metric}": score for index, score in enumerate(trial.fold_scores)})
            tracking.log_metric(f"cv_{metric}", trial.score)
            tracking.set_tags({"tuning": "best" if trial is best else "trial", "use_case": spec.name})
    if best is not None:
        tracking.set_tags({"tuning_trials": str(len(challenger.trials)), f"tuning_best_cv_{metric}": str(best.score)})


def _log_plots(tracking: Any, plots: dict[str, bytes]) -> None:
    """The PNGs as artifacts of the active MLflow run, under `evaluation/` (MLflow's UI previews them)."""
    with tempfile.TemporaryDirectory() as directory:
        for name, png in plots.items():
            (Path(directory) / f"{name}.png").write_bytes(png)
        tracking.log_artifacts(directory, "evaluation")
