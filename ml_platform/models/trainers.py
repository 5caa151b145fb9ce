"""Trainers: one small fit/predict interface, chosen by the spec's model type.

The assets only call `build_trainer(spec.model.type, params)`, `fit`,
`predict`, `threshold` and `log_model`; which library sits behind is the
trainer's business. scikit-learn and torch are imported only inside the
trainers, so loading the code location stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd


class Trainer(Protocol):
    flavor: str
    threshold: float | None  # decision threshold for classifiers, None for regressors

    def fit(self, features: pd.DataFrame, labels: pd.Series, days: pd.Series) -> Trainer: ...

    def predict(self, features: pd.DataFrame) -> np.ndarray: ...

    def log_model(self, name: str, input_example: pd.DataFrame, registered_model_name: str) -> Any: ...


class SklearnRandomForestTrainer:
    """scikit-learn RandomForestClassifier (the churn model)."""

    flavor = "sklearn"
    threshold = 0.5

    def __init__(self, **params: Any) -> None:
        self.params = {"n_estimators": 100, "random_state": 0, **params}
        self.model: Any = None

    def fit(self, features: pd.DataFrame, labels: pd.Series, days: pd.Series) -> SklearnRandomForestTrainer:
        from sklearn.ensemble import RandomForestClassifier

        self.model = RandomForestClassifier(**self.params).fit(features, labels)
        # scoring single-threaded: parallel workers add the trees' probabilities in varying order, so the same
        # rows scored twice could differ in the last bit, and re-running a day must give the same file
        self.model.set_params(n_jobs=1)
        return self

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba(features)[:, 1]

    def log_model(self, name: str, input_example: pd.DataFrame, registered_model_name: str) -> Any:
        import mlflow
        import mlflow.sklearn
        import sklearn
        from mlflow.models import infer_signature

        signature = infer_signature(input_example, self.model.predict_proba(input_example))
        return mlflow.sklearn.log_model(
            self.model, name=name, signature=signature, input_example=input_example,
            registered_model_name=registered_model_name, pyfunc_predict_fn="predict_proba",
            skops_trusted_types=["sklearn.tree._tree.Tree"],  # our own trees, written by this trainer
            # explicit requirements: MLflow's inference re-imports the model in a subprocess (seconds per run)
            pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"mlflow=={mlflow.__version__}"],
        )


def build_trainer(model_type: str, params: dict[str, Any]) -> Trainer:
    if model_type == "sklearn_random_forest":
        return SklearnRandomForestTrainer(**params)
    from ml_platform.models import torch_trainers

    trainers = {"torch_mlp": torch_trainers.TorchMLPTrainer, "torch_birnn": torch_trainers.TorchBiRNNTrainer}
    return trainers[model_type](**params)


def validation_split(days: pd.Series, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks: the latest `fraction` of training days validate, the rest train (time-based)."""
    ordered = np.sort(days.unique())
    cut = ordered[max(1, int(round(len(ordered) * (1 - fraction)))) - 1] if len(ordered) > 1 else ordered[-1]
    validation = (days > cut).to_numpy()
    if not validation.any():  # a single day: fall back to its last rows
        validation = np.arange(len(days)) >= int(len(days) * (1 - fraction))
    return ~validation, validation


def log_pytorch_model(
    module: Any, name: str, input_example: pd.DataFrame, registered_model_name: str,
    predict: Callable[[pd.DataFrame], np.ndarray],
) -> Any:
    import mlflow
    import mlflow.pytorch
    import torch
    from mlflow.models import infer_signature

    signature = infer_signature(input_example.astype("float64"), predict(input_example))
    return mlflow.pytorch.log_model(
        module, name=name, signature=signature, input_example=input_example.astype("float64"),
        registered_model_name=registered_model_name,
        # pickle keeps the GRU and buffers as they are (torch.export's pt2 format would re-trace them);
        # the module classes live in ml_platform.models.torch_trainers, installed wherever the model loads
        serialization_format="pickle",
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}"],
    )


def classification_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    from sklearn import metrics

    predicted = (scores >= threshold).astype(int)
    both_classes = len(np.unique(labels)) == 2
    return {
        "accuracy": float(metrics.accuracy_score(labels, predicted)),
        "precision": float(metrics.precision_score(labels, predicted, zero_division=0)),
        "recall": float(metrics.recall_score(labels, predicted, zero_division=0)),
        "f1": float(metrics.f1_score(labels, predicted, zero_division=0)),
        "roc_auc": float(metrics.roc_auc_score(labels, scores)) if both_classes else 0.5,
    }


def regression_metrics(labels: np.ndarray, predictions: np.ndarray, naive: np.ndarray) -> dict[str, float]:
    """MAE/RMSE, the naive last-value forecast's, and skill = 1 - MAE / naive MAE."""
    mae = float(np.mean(np.abs(predictions - labels)))
    naive_mae = float(np.mean(np.abs(naive - labels)))
    return {
        "mae": mae,
        "rmse": float(np.sqrt(np.mean((predictions - labels) ** 2))),
        "naive_mae": naive_mae,
        "naive_rmse": float(np.sqrt(np.mean((naive - labels) ** 2))),
        "skill_vs_naive": 1.0 - mae / naive_mae if naive_mae > 0 else 0.0,
    }


def metric_value(name: str, labels: np.ndarray, scores: np.ndarray, threshold: float | None, naive: np.ndarray | None) -> float:
    """One metric with numpy alone: cheap enough to recompute on hundreds of bootstrap resamples."""
    if name in ("mae", "rmse", "skill_vs_naive"):
        errors = scores - labels
        if name == "rmse":
            return float(np.sqrt(np.mean(errors**2)))
        mae = float(np.mean(np.abs(errors)))
        naive_mae = float(np.mean(np.abs(naive - labels))) if naive is not None else 0.0
        return mae if name == "mae" else (1.0 - mae / naive_mae if naive_mae > 0 else 0.0)
    positives = labels == 1
    if name == "roc_auc":
        n_pos, n_neg = int(positives.sum()), int((~positives).sum())
        if not n_pos or not n_neg:
            return 0.5
        ranks = pd.Series(scores).rank().to_numpy()  # ties get their average rank (Mann-Whitney U)
        return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    predicted = scores >= (0.5 if threshold is None else threshold)
    true_positives = float((predicted & positives).sum())
    if name == "accuracy":
        return float((predicted == positives).mean())
    if name == "precision":
        return true_positives / max(float(predicted.sum()), 1.0)
    if name == "recall":
        return true_positives / max(float(positives.sum()), 1.0)
    return 2 * true_positives / max(float(predicted.sum() + positives.sum()), 1.0)


@dataclass(frozen=True)
class ImprovementTest:
    """Paired bootstrap comparison of two models scored on the same holdout rows."""

    method: str
    resamples: int
    challenger: float
    champion: float
    improvement: float  # challenger minus champion, signed so that positive is better
    ci_level: float  # 1 - 2 * alpha: the interval's lower end is above zero about when p < alpha
    ci_low: float  # percentile interval of the improvement over the resamples
    ci_high: float
    p_value: float  # one-sided: share of resamples on which the challenger is not better

    def significant(self, alpha: float) -> bool:
        return self.improvement > 0 and self.p_value < alpha

    def as_tags(self) -> dict[str, str]:
        return {f"promotion_{name}": str(value) for name, value in asdict(self).items()}


def paired_bootstrap_test(
    metric: str, lower_is_better: bool, labels: np.ndarray, naive: np.ndarray | None,
    challenger: tuple[np.ndarray, float | None], champion: tuple[np.ndarray, float | None],
    resamples: int = 1000, alpha: float = 0.05, seed: int = 0,
) -> ImprovementTest:
    """Resample holdout rows with replacement, score both models on each resample, and test whether
    the challenger's metric is higher (lower, for errors) than the champion's beyond resampling noise."""
    sign = -1.0 if lower_is_better else 1.0

    def improvement(rows: np.ndarray | slice) -> float:
        sample_naive = naive[rows] if naive is not None else None
        ours = metric_value(metric, labels[rows], challenger[0][rows], challenger[1], sample_naive)
        theirs = metric_value(metric, labels[rows], champion[0][rows], champion[1], sample_naive)
        return sign * (ours - theirs)

    rng = np.random.default_rng(seed)
    samples = np.array([improvement(rng.integers(0, len(labels), size=len(labels))) for _ in range(resamples)])
    everything = slice(None)
    return ImprovementTest(
        method=f"paired bootstrap of {metric} on the holdout",
        resamples=resamples,
        challenger=metric_value(metric, labels, challenger[0], challenger[1], naive),
        champion=metric_value(metric, labels, champion[0], champion[1], naive),
        improvement=improvement(everything),
        ci_level=1 - 2 * alpha,
        ci_low=float(np.quantile(samples, alpha)),
        ci_high=float(np.quantile(samples, 1 - alpha)),
        p_value=float((np.sum(samples <= 0) + 1) / (resamples + 1)),
    )
