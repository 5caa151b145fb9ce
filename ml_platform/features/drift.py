"""Feature drift as the population stability index (PSI) against the champion's training data.

The reference is each feature's quantile bins over the training rows, plus
the bins of the model's scores on its holdout, stored with the model in
MLflow, so drift is always measured against the data the current champion
actually learned from (and the scores it gave out of sample), also after a
rollback.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

BINS = 10
EPSILON = 1e-4
SCORE = "prediction_score"  # reference entry for the model's holdout scores, next to the features
METHOD = (
    f"PSI over {BINS} training-quantile bins, sum((actual - expected) * ln(actual / expected)), "
    f"shares floored at {EPSILON}"
)


def reference_bins(frame: pd.DataFrame, features: list[str]) -> dict[str, Any]:
    """Per feature: inner bin edges (training quantiles) and the share of training rows in each bin."""
    reference: dict[str, Any] = {}
    for name in features:
        values = frame[name].to_numpy(dtype=float)
        edges = np.unique(np.quantile(values, np.linspace(0, 1, BINS + 1)[1:-1])) if len(values) else np.array([])
        reference[name] = {"edges": edges.tolist(), "expected": _shares(values, edges).tolist()}
    return reference


def population_stability(reference: dict[str, Any], frame: pd.DataFrame) -> dict[str, float]:
    """PSI of each reference column in `frame`: sum((actual - expected) * ln(actual / expected))."""
    psi: dict[str, float] = {}
    for name, bins in reference.items():
        expected = np.maximum(np.asarray(bins["expected"]), EPSILON)
        actual = np.maximum(_shares(frame[name].to_numpy(dtype=float), np.asarray(bins["edges"])), EPSILON)
        psi[name] = float(np.sum((actual - expected) * np.log(actual / expected)))
    return psi


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)
