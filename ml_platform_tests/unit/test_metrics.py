"""The numpy metrics used for bootstrap resamples agree with scikit-learn's."""

from __future__ import annotations

import numpy as np
import pytest

from ml_platform.models.comparison import paired_bootstrap_test
from ml_platform.models.metrics import classification_metrics, metric_value, multiclass_metrics, regression_metrics


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


def test_multiclass_metrics_match_sklearn_on_the_most_probable_class() -> None:
    from sklearn.metrics import accuracy_score, f1_score

    rng = np.random.default_rng(2)
    labels = rng.choice(5, size=1_000, p=[0.5, 0.2, 0.15, 0.1, 0.05])
    probabilities = rng.dirichlet(np.ones(5), size=1_000)
    probabilities[np.arange(1_000), labels] += rng.random(1_000) * 0.6  # better than chance, not perfect
    predicted = probabilities.argmax(axis=1)
    metrics = multiclass_metrics(labels, probabilities)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(labels, predicted))
    assert metrics["macro_f1"] == pytest.approx(f1_score(labels, predicted, average="macro"))
    assert 0.3 < metrics["accuracy"] < 0.95
    # the bootstrap reads the same probabilities the same way
    assert metric_value("macro_f1", labels, probabilities, None, None) == pytest.approx(metrics["macro_f1"])


def test_paired_bootstrap_separates_real_gains_from_noise() -> None:
    rng = np.random.default_rng(2)
    labels = (rng.random(3_000) < 0.3).astype(int)
    good = labels * 0.5 + rng.random(3_000) * 0.6
    worse = labels * 0.2 + rng.random(3_000) * 0.6
    rival = labels * 0.5 + rng.random(3_000) * 0.6  # as good as `good` but for its own noise

    real = paired_bootstrap_test("roc_auc", False, labels, None, (good, 0.5), (worse, 0.5), resamples=300)
    assert real.significant(0.05) and real.p_value < 0.01 and 0 < real.ci_low < real.improvement < real.ci_high
    assert real.improvement == pytest.approx(real.challenger - real.champion)
    assert not paired_bootstrap_test(
        "roc_auc", False, labels, None, (worse, 0.5), (good, 0.5), resamples=300
    ).significant(0.05)
    same = paired_bootstrap_test("roc_auc", False, labels, None, (good, 0.5), (good, 0.5), resamples=300)
    assert same.improvement == 0 and same.p_value == 1.0 and not same.significant(0.05)
    noise = paired_bootstrap_test("roc_auc", False, labels, None, (good, 0.5), (rival, 0.5), resamples=300)
    assert noise.improvement > 0, "precondition: the challenger is better on this holdout"
    assert noise.ci_low < 0 < noise.ci_high and noise.p_value > 0.05 and not noise.significant(0.05)


def test_paired_bootstrap_reads_lower_is_better_metrics_the_right_way_round() -> None:
    rng = np.random.default_rng(3)
    truth = rng.normal(100, 5, 1_000)
    close, far = truth + rng.normal(0, 1, 1_000), truth + rng.normal(0, 3, 1_000)
    test = paired_bootstrap_test("mae", True, truth, None, (close, None), (far, None), resamples=300)
    assert test.challenger < test.champion and test.improvement > 0 and test.significant(0.05)
    assert float(test.as_tags()["promotion_p_value"]) == test.p_value
