"""The numpy metrics used for bootstrap resamples agree with scikit-learn's."""

from __future__ import annotations

import numpy as np
import pytest

from ml_platform.models.trainers import classification_metrics, improvement_confidence, metric_value, regression_metrics


def test_numpy_metrics_match_sklearn_and_the_regression_metrics() -> None:
    rng = np.random.default_rng(1)
    labels = (rng.random(2_000) < 0.2).astype(int)
    scores = np.clip(labels * 0.3 + rng.random(2_000) * 0.8, 0, 1).round(2)  # with ties
    reference = classification_metrics(labels, scores, threshold=0.6)
    for name, value in reference.items():
        assert metric_value(name, labels, scores, 0.6, None) == pytest.approx(value, abs=1e-12), name
    truth, forecast, naive = rng.normal(100, 5, 500), rng.normal(100, 5, 500), rng.normal(100, 5, 500)
    for name, value in regression_metrics(truth, forecast, naive).items():
        if name in ("mae", "rmse", "skill_vs_naive"):
            assert metric_value(name, truth, forecast, None, naive) == pytest.approx(value), name


def test_improvement_confidence_separates_real_gains_from_noise() -> None:
    rng = np.random.default_rng(2)
    labels = (rng.random(3_000) < 0.3).astype(int)
    good = labels * 0.5 + rng.random(3_000) * 0.6
    worse = labels * 0.2 + rng.random(3_000) * 0.6
    assert improvement_confidence("roc_auc", False, labels, None, (good, 0.5), (worse, 0.5)) > 0.99
    assert improvement_confidence("roc_auc", False, labels, None, (worse, 0.5), (good, 0.5)) < 0.01
    assert improvement_confidence("roc_auc", False, labels, None, (good, 0.5), (good, 0.5)) == 0.0
