"""scikit-learn trainers (imported only when a model of that type is trained or scored)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

# the platform's own encoder types inside a model (skops loads only types it is told to trust); they are
# shipped with the model, so it loads where the platform is not installed
OWN_ENCODER_TYPES = [
    "ml_platform.models.portable.encoders.FrequencyEncoder",
    "ml_platform.models.portable.encoders.as_objects",
]


class SklearnRandomForestTrainer:
    """scikit-learn RandomForestClassifier (the churn model)."""

    flavor = "sklearn"
    threshold = 0.5

    def __init__(self, categories: dict[str, tuple[str, int]] | None = None, **params: Any) -> None:
        self.categories = categories or {}  # category feature -> (encoding, top_k), encoded inside the model
        self.params = {"n_estimators": 100, "random_state": 0, **params}
        self.model: Any = None

    def fit(self, features: pd.DataFrame, labels: pd.Series, days: pd.Series) -> SklearnRandomForestTrainer:
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.pipeline import make_pipeline

        from ml_platform.models.encoders import category_encoder

        forest = RandomForestClassifier(**self.params)
        encoder = category_encoder(self.categories, self.params["random_state"]) if self.categories else None
        self.model = (make_pipeline(encoder, forest) if encoder else forest).fit(features, labels)
        # scoring single-threaded: parallel workers add the trees' probabilities in varying order, so the same
        # rows scored twice could differ in the last bit, and re-running a day must give the same file
        forest.set_params(n_jobs=1)
        return self

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba(features)[:, 1]

    def log_model(self, name: str, input_example: pd.DataFrame, registered_model_name: str) -> Any:
        import mlflow
        import mlflow.sklearn
        from mlflow.models import infer_signature

        from ml_platform.models.portable import encoders
        from ml_platform.models.shipping import SKLEARN_REQUIREMENTS, pinned, portable_code

        signature = infer_signature(input_example, self.model.predict_proba(input_example))
        with portable_code(*([encoders] if self.categories else [])) as code_paths:
            return mlflow.sklearn.log_model(
                self.model,
                name=name,
                signature=signature,
                input_example=input_example,
                registered_model_name=registered_model_name,
                pyfunc_predict_fn="predict_proba",
                skops_trusted_types=["sklearn.tree._tree.Tree", *OWN_ENCODER_TYPES],  # written by this trainer
                code_paths=code_paths,
                # explicit requirements: MLflow's inference re-imports the model in a subprocess (seconds per run)
                pip_requirements=pinned(SKLEARN_REQUIREMENTS),
            )
