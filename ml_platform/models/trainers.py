"""Trainers: one small fit/predict interface, chosen by the spec's model type.

The assets only call `build_trainer(spec.model.type, params)`, `fit`,
`predict_proba` and `log_model`; which library sits behind is the trainer's
business, and it is imported only here, inside the methods that need it, so
loading the code location stays cheap.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd


class Trainer(Protocol):
    flavor: str

    def fit(self, features: pd.DataFrame, labels: pd.Series) -> Trainer: ...

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray: ...

    def log_model(self, name: str, input_example: pd.DataFrame, registered_model_name: str) -> Any: ...


class SklearnRandomForestTrainer:
    """scikit-learn RandomForestClassifier (seed 000's churn model)."""

    flavor = "sklearn"

    def __init__(self, **params: Any) -> None:
        self.params = {"n_estimators": 100, "random_state": 0, **params}
        self.model: Any = None

    def fit(self, features: pd.DataFrame, labels: pd.Series) -> SklearnRandomForestTrainer:
        from sklearn.ensemble import RandomForestClassifier

        self.model = RandomForestClassifier(**self.params).fit(features, labels)
        return self

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba(features)[:, 1]

    def log_model(self, name: str, input_example: pd.DataFrame, registered_model_name: str) -> Any:
        import mlflow
        import mlflow.sklearn
        import sklearn
        from mlflow.models import infer_signature

        signature = infer_signature(input_example, self.model.predict_proba(input_example)[:, 1])
        return mlflow.sklearn.log_model(
            self.model, name=name, signature=signature, input_example=input_example,
            registered_model_name=registered_model_name, pyfunc_predict_fn="predict_proba",
            skops_trusted_types=["sklearn.tree._tree.Tree"],  # our own trees, written by this trainer
            # explicit requirements: MLflow's inference re-imports the model in a subprocess (seconds per run)
            pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"mlflow=={mlflow.__version__}"],
        )


TRAINERS: dict[str, type] = {"sklearn_random_forest": SklearnRandomForestTrainer}


def build_trainer(model_type: str, params: dict[str, Any]) -> Trainer:
    return TRAINERS[model_type](**params)


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
