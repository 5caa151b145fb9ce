"""Holdout metrics: scikit-learn's for the reported values, numpy's for the bootstrap's resamples."""

from __future__ import annotations

import numpy as np
import pandas as pd


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


def multiclass_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Accuracy and macro F1 of the most probable class; `labels` are class indexes (columns of `probabilities`)."""
    return {name: class_metric_value(name, labels, probabilities.argmax(axis=1)) for name in ("accuracy", "macro_f1")}


def class_metric_value(name: str, labels: np.ndarray, predicted: np.ndarray) -> float:
    """Accuracy, or F1 averaged over the classes that occur in the labels or the predictions (numpy alone)."""
    if name == "accuracy":
        return float(np.mean(labels == predicted)) if len(labels) else 0.0
    scores = []
    for index in np.union1d(labels, predicted):
        true_positives = float(np.sum((predicted == index) & (labels == index)))
        scores.append(2 * true_positives / max(float(np.sum(predicted == index) + np.sum(labels == index)), 1.0))
    return float(np.mean(scores)) if scores else 0.0


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


def metric_value(
    name: str, labels: np.ndarray, scores: np.ndarray, threshold: float | None, naive: np.ndarray | None
) -> float:
    """One metric with numpy alone: cheap enough to recompute on hundreds of bootstrap resamples."""
    if scores.ndim == 2:  # class probabilities (labels are class indexes): the most probable class is predicted
        return class_metric_value(name, labels, scores.argmax(axis=1))
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
