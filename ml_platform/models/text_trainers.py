"""The `pretrained_text` trainer: zero-shot text classification with a sentence encoder shipped inside a
PyPI package (the model itself, `ZeroShotTextClassifier`, is in `portable.text`, shipped with the model).

Nothing is learned from the training days: `fit` checks the classes and loads the encoder, the holdout
measures the model like any other, and MLflow registers it as a pyfunc ("models from code"), so the
champion, the promotion gates and rollback apply unchanged (a fine-tuned challenger can later replace it
through the same gates). sentence-transformers, torch and MLflow's pyfunc are imported with this module,
which only the `pretrained_text` trainer imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml_platform.models import shipping
from ml_platform.models.portable import text, text_weights

# the names models registered before the move import from here (their stored model code names this module)
from ml_platform.models.portable.text import ENCODERS, ZeroShotTextClassifier, ZeroShotTextModel, load_encoder
from ml_platform.spec import PretrainedTextParams

__all__ = ["ENCODERS", "PretrainedTextTrainer", "ZeroShotTextClassifier", "ZeroShotTextModel", "load_encoder"]


class PretrainedTextTrainer:
    """The `pretrained_text` model type: a `ZeroShotTextClassifier`, registered as an MLflow pyfunc."""

    flavor = "pyfunc"
    threshold = None  # the most probable class wins

    def __init__(self, classes: Sequence[str], random_state: int | None = None, **params: Any) -> None:
        """`random_state` is taken as every model type takes the training seed; nothing here is random."""
        self.config = {"classes": list(classes), **PretrainedTextParams.model_validate(params).model_dump()}
        self.classifier: ZeroShotTextClassifier | None = None

    def fit(self, features: pd.DataFrame, labels: pd.Series, days: pd.Series) -> PretrainedTextTrainer:
        unknown = sorted(set(labels.dropna().astype(str)) - set(self.config["classes"]))
        if unknown:
            raise ValueError(f"labels {unknown[:5]} are not among the classes {self.config['classes']}")
        self.classifier = ZeroShotTextClassifier(**self.config)
        return self

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return self._fitted().predict_proba(features.iloc[:, 0].tolist())

    def log_model(self, name: str, input_example: pd.DataFrame, registered_model_name: str) -> Any:
        import mlflow
        from mlflow.models import infer_signature

        example = input_example.iloc[:, :1].astype(str)  # the spec's text feature: the model's one input
        probabilities = pd.DataFrame(
            self._fitted().predict_proba(example.iloc[:, 0].tolist()), columns=self.config["classes"]
        )
        _, _, distribution = ENCODERS[self.config["encoder"]]
        with shipping.portable_code(text, text_weights) as code_paths:
            return mlflow.pyfunc.log_model(
                name=name,
                python_model=str(Path(text.__file__).with_name("text_model_code.py")),
                model_config=self.config,
                code_paths=code_paths,
                signature=infer_signature(example, probabilities),
                input_example=example,
                registered_model_name=registered_model_name,
                pip_requirements=shipping.pinned([*shipping.TEXT_REQUIREMENTS, distribution]),
            )

    def _fitted(self) -> ZeroShotTextClassifier:
        if self.classifier is None:
            raise RuntimeError("fit() first: the classifier is built from the classes it is fitted with")
        return self.classifier
