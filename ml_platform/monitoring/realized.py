"""Realized and estimated performance of a scored day, without Dagster.

A day D's predictions meet their labels once the raw events that decide them have landed
(`label_input_days`: D+1..D+horizon, or D itself for an event's own label). `join_labels` puts the
label next to each scored row with the same function that labels the training set (`compute_labels`),
so live and holdout metrics mean the same thing; rows whose outcome is unknown (an untagged news item)
stay in the frame with a NaN label and count against the coverage.

The metrics per task are the holdout's (`models/metrics.py`) plus the calibration error of a
classifier. `estimated_metrics` needs no label:

- classifiers: confidence-based performance estimation (NannyML's CBPE). Each score is first mapped to
  the probability that the row is positive through the champion's holdout calibration (`fit_calibration`:
  isotonic, kept with the registered version as a tag, as CBPE calibrates on its reference set), so a
  model whose scores are not probabilities (a sharp MLP) is estimated fairly. A row predicted positive
  (by the model's own threshold on its raw score) adds its probability to the expected true positives
  and the rest to the expected false positives, a row predicted negative its probability to the expected
  false negatives; precision, recall, F1 and accuracy follow from that expected confusion matrix. The
  expected ROC AUC is the area under the curve of expected true and false positive rates as the threshold
  sweeps the rows in the model's score order. A version registered before calibrations were kept is
  estimated on its raw scores; `estimation_error_<metric>` shows any miss once labels arrive.
- classes: expected accuracy is the mean probability of the predicted class (the predictions keep only
  that one, so no macro F1 is estimated).
- forecasts: a forecast's score says nothing about its own error, so the estimate is the champion's
  holdout MAE and skill vs naive (it moves only when the champion does).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ml_platform.features.compute import DAY, compute_labels, label_input_days
from ml_platform.io.parquet_lake import DataLake
from ml_platform.models.metrics import class_metric_value, classification_metrics, metric_value, regression_metrics
from ml_platform.spec import ESTIMATED_METRICS, LOWER_IS_BETTER, UseCaseSpec
from ml_platform.steps import PREDICTED_CLASS

LABEL, NAIVE = "label", "naive"
CALIBRATION_BINS = 10
ESTIMATED = ESTIMATED_METRICS  # what `estimated_metrics` returns, per task


CALIBRATION_KNOTS = 40  # a model-version tag holds the map: small, and fine enough for a day's expectation


def lower_is_better(metric: str) -> bool:
    return metric in LOWER_IS_BETTER or metric == "calibration_error"


def labels_complete(spec: UseCaseSpec, day: str, raw_days: set[str]) -> bool:
    """Whether every raw day that decides day D's labels has landed (D + horizon)."""
    return all(later in raw_days for later in label_input_days(spec, [day]))


def read_label_events(lake: DataLake, spec: UseCaseSpec, raw_key: Any, days: list[str]) -> pd.DataFrame:
    """The raw events that decide the labels of `days`, only the columns labelling reads (absent days are skipped)."""
    columns = sorted({*spec.key_columns, spec.timestamp_column, spec.label.column})
    return lake.read(raw_key, label_input_days(spec, days), columns=columns, missing_ok=True)


def join_labels(
    spec: UseCaseSpec,
    predictions: pd.DataFrame,
    events: pd.DataFrame,
    features: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The scored rows with their matured `label` (NaN/None where unknown) and, for a forecast, the `naive`
    last observed value from the same day's `features` (matched on the key columns and the day)."""
    joined = predictions.reset_index(drop=True).copy()
    joined[LABEL] = compute_labels(events, spec, joined).to_numpy() if len(joined) else []
    if spec.label.naive_feature:
        if features is None:
            raise ValueError(
                f"{spec.name}: a forecast's realized skill needs the day's features "
                f"(label.naive_feature '{spec.label.naive_feature}')"
            )
        keys = [*spec.key_columns, DAY]
        naive = features[[*keys, spec.label.naive_feature]].rename(columns={spec.label.naive_feature: NAIVE})
        joined = joined.merge(naive, on=keys, how="left", validate="one_to_one")
    return joined


def coverage(joined: pd.DataFrame) -> float:
    """Share of scored rows whose label is known (1.0 for a day without rows: nothing is missing)."""
    return float(joined[LABEL].notna().mean()) if len(joined) else 1.0


def realized_metrics(spec: UseCaseSpec, joined: pd.DataFrame, threshold: float | None) -> dict[str, float]:
    """The task's metrics on the rows whose label is known; empty when none is (ROC AUC needs both classes)."""
    rows = joined[joined[LABEL].notna()]
    if rows.empty:
        return {}
    task = spec.label.task
    if task == "multiclass":
        codes = {name: index for index, name in enumerate(spec.classes)}
        labels = rows[LABEL].map(codes).to_numpy(dtype=np.int64)
        predicted = rows[PREDICTED_CLASS].map(codes).to_numpy(dtype=np.int64)
        return {name: class_metric_value(name, labels, predicted) for name in ("accuracy", "macro_f1")}
    labels, scores = rows[LABEL].to_numpy(dtype=float), rows["score"].to_numpy(dtype=float)
    if task == "regression":
        return regression_metrics(labels, scores, rows[NAIVE].to_numpy(dtype=float))
    metrics = classification_metrics(labels, scores, 0.5 if threshold is None else threshold)
    if len(np.unique(labels)) < 2:
        metrics.pop("roc_auc")
    return {**metrics, "calibration_error": calibration_error(labels, scores)}


def calibration_error(labels: np.ndarray, scores: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Expected calibration error: per equal-width score bin, |mean score - share positive|, weighted by its rows."""
    which = np.minimum((scores * bins).astype(int), bins - 1)
    error = 0.0
    for index in np.unique(which):
        members = which == index
        error += members.sum() * abs(float(scores[members].mean()) - float(labels[members].mean()))
    return error / len(labels)


def fit_calibration(scores: np.ndarray, labels: np.ndarray) -> dict[str, list[float]] | None:
    """The champion's holdout scores mapped to observed positive rates (isotonic, at most CALIBRATION_KNOTS knots):
    CBPE's reference calibration, so a model whose scores are not probabilities is still estimated fairly.
    None when the holdout holds one class only."""
    from sklearn.isotonic import IsotonicRegression

    if len(np.unique(labels)) < 2:
        return None
    isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, labels)
    xs, ys = isotonic.X_thresholds_, isotonic.y_thresholds_
    if len(xs) > CALIBRATION_KNOTS:
        keep = np.unique(np.linspace(0, len(xs) - 1, CALIBRATION_KNOTS).round().astype(int))
        xs, ys = xs[keep], ys[keep]
    return {"x": [round(float(x), 6) for x in xs], "y": [round(float(y), 6) for y in ys]}


def estimated_metrics(
    spec: UseCaseSpec,
    predictions: pd.DataFrame,
    threshold: float | None,
    holdout: Mapping[str, float],
    calibration: Mapping[str, list[float]] | None = None,
) -> dict[str, float]:
    """The day's metrics expected from its scores alone (see the module docstring for the method per task);
    `holdout` is the champion's registered holdout metrics (the forecast's estimate), `calibration` its holdout
    calibration (`fit_calibration`; None: the scores are taken as probabilities)."""
    task = spec.label.task
    if task == "regression":
        return {name: float(holdout[name]) for name in ESTIMATED[task] if name in holdout}
    if predictions.empty:
        return {}
    raw = predictions["score"].to_numpy(dtype=float)
    if task == "multiclass":
        return {"accuracy": float(raw.mean())}
    predicted = raw >= (0.5 if threshold is None else threshold)  # the model's own decisions
    scores = np.interp(raw, calibration["x"], calibration["y"]) if calibration else raw  # their probabilities
    true_pos, false_pos = scores[predicted].sum(), (1 - scores[predicted]).sum()
    false_neg, true_neg = scores[~predicted].sum(), (1 - scores[~predicted]).sum()
    estimated = {
        "accuracy": float((true_pos + true_neg) / len(scores)),
        "precision": float(true_pos / (true_pos + false_pos)) if predicted.any() else 0.0,
        "recall": float(true_pos / (true_pos + false_neg)) if true_pos + false_neg > 0 else 0.0,
        "f1": float(2 * true_pos / (2 * true_pos + false_pos + false_neg))
        if true_pos + false_pos + false_neg > 0
        else 0.0,
    }
    auc = expected_roc_auc(scores, order=raw)
    return {**estimated, **({"roc_auc": auc} if auc is not None else {})}


def expected_roc_auc(scores: np.ndarray, order: np.ndarray | None = None) -> float | None:
    """CBPE's expected ROC AUC: the area under (expected FPR, expected TPR) as the threshold sweeps the rows
    from the highest `order` (the model's raw scores; default the probabilities themselves) down, tied rows
    moving together; None when no positive or no negative is expected."""
    positives, negatives = scores.sum(), (1 - scores).sum()
    if positives <= 0 or negatives <= 0:
        return None
    distinct, inverse = np.unique(-(scores if order is None else order), return_inverse=True)  # descending
    tp = np.concatenate([[0.0], np.cumsum(np.bincount(inverse, weights=scores, minlength=len(distinct)))])
    fp = np.concatenate([[0.0], np.cumsum(np.bincount(inverse, weights=1 - scores, minlength=len(distinct)))])
    return float(np.trapezoid(tp / positives, fp / negatives))


def estimation_errors(realized: Mapping[str, float], estimated: Mapping[str, float]) -> dict[str, float]:
    """Estimated minus realized, for each metric that has both."""
    return {name: estimated[name] - realized[name] for name in estimated if name in realized}


def realized_interval(
    spec: UseCaseSpec,
    joined: pd.DataFrame,
    metric: str,
    threshold: float | None,
    resamples: int,
    level: float,
    seed: int,
) -> tuple[float, float] | None:
    """Bootstrap interval of one realized metric over the day's labelled rows (None without any)."""
    rows = joined[joined[LABEL].notna()]
    if rows.empty:
        return None
    naive = rows[NAIVE].to_numpy(dtype=float) if NAIVE in rows else None
    if spec.label.task == "multiclass":  # the predicted class as a one-hot "probability": metric_value takes its argmax
        codes = {name: index for index, name in enumerate(spec.classes)}
        labels = rows[LABEL].map(codes).to_numpy(dtype=np.int64)
        scores = np.eye(len(spec.classes))[rows[PREDICTED_CLASS].map(codes).to_numpy(dtype=np.int64)]
    else:
        labels, scores = rows[LABEL].to_numpy(dtype=float), rows["score"].to_numpy(dtype=float)
    return metric_interval(metric, labels, scores, threshold, naive, resamples, level, seed)


def metric_interval(
    metric: str,
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float | None,
    naive: np.ndarray | None,
    resamples: int,
    level: float,
    seed: int,
) -> tuple[float, float]:
    """Percentile bootstrap interval of one holdout metric (rows resampled with replacement): the range a
    model's metric takes on other days like its holdout, what a live day's value is held against."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        rows = rng.integers(0, len(labels), size=len(labels))
        values.append(
            metric_value(metric, labels[rows], scores[rows], threshold, naive[rows] if naive is not None else None)
        )
    tail = (1 - level) / 2
    return float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))
