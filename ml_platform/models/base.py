"""The trainer interface every model type implements, and what trainers share.

The assets only call `build_trainer(spec.model.type, params)`, `fit`, `predict`, `threshold` and
`log_model`; which library sits behind is the trainer's business (scikit-learn's estimator API in
miniature: configure in `__init__`, learn in `fit`, answer in `predict`).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd


class Trainer(Protocol):
    flavor: str

    @property
    def threshold(self) -> float | None:  # decision threshold for classifiers, None for regressors
        ...

    def fit(self, features: pd.DataFrame, labels: pd.Series, days: pd.Series) -> Trainer: ...

    def predict(self, features: pd.DataFrame) -> np.ndarray: ...

    def log_model(self, name: str, input_example: pd.DataFrame, registered_model_name: str) -> Any: ...


def validation_split(days: pd.Series, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks: the latest `fraction` of training days validate, the rest train (time-based)."""
    ordered = np.sort(days.unique())
    cut = ordered[max(1, round(len(ordered) * (1 - fraction))) - 1] if len(ordered) > 1 else ordered[-1]
    validation = (days > cut).to_numpy()
    if not validation.any():  # a single day: fall back to its last rows
        validation = np.arange(len(days)) >= int(len(days) * (1 - fraction))
    return ~validation, validation
