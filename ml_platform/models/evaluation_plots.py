"""Evaluation plots of a trained model on its holdout, as PNG bytes.

Pure functions of labels, scores and a predict function: the model asset logs
them to MLflow (artifacts under `evaluation/`) and shows them on the Dagster
asset page. Classifiers get ROC and precision-recall curves, the confusion
matrix at the model's own decision threshold and a calibration plot;
forecasts get predicted-vs-actual and residuals; multiclass models the confusion
matrix of their most probable class; every model of numeric features gets permutation
importance (model-agnostic, so torch models get it too). matplotlib and
scikit-learn are imported here only, when a model is evaluated.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

FIGURE_SIZE = (4.8, 3.6)
DPI = 90
TOP_FEATURES = 15


def classification_plots(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, bytes]:
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import auc, average_precision_score, confusion_matrix, precision_recall_curve, roc_curve

    labels = labels.astype(int)
    plots = {}
    fpr, tpr, _ = roc_curve(labels, scores)
    with _figure("ROC curve (holdout)") as (figure, axes):
        axes.plot(fpr, tpr, label=f"AUC {auc(fpr, tpr):.3f}")
        axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
        axes.set(xlabel="false positive rate", ylabel="true positive rate")
        axes.legend(loc="lower right")
        plots["roc_curve"] = _png(figure)
    precision, recall, _ = precision_recall_curve(labels, scores)
    with _figure("Precision-recall curve (holdout)") as (figure, axes):
        axes.plot(recall, precision, label=f"AP {average_precision_score(labels, scores):.3f}")
        axes.axhline(labels.mean(), linestyle="--", color="grey", linewidth=1, label=f"base rate {labels.mean():.3f}")
        axes.set(xlabel="recall", ylabel="precision", ylim=(0, 1.02))
        axes.legend(loc="upper right")
        plots["precision_recall_curve"] = _png(figure)
    matrix = confusion_matrix(labels, (scores >= threshold).astype(int), labels=[0, 1])
    with _figure(f"Confusion matrix at threshold {threshold:.2f}") as (figure, axes):
        axes.imshow(matrix, cmap="Blues")
        for (row, column), count in np.ndenumerate(matrix):
            axes.text(
                column,
                row,
                f"{count:,}",
                ha="center",
                va="center",
                color="white" if count > matrix.max() / 2 else "black",
            )
        axes.set(
            xticks=[0, 1],
            yticks=[0, 1],
            xticklabels=["0", "1"],
            yticklabels=["0", "1"],
            xlabel="predicted",
            ylabel="actual",
        )
        plots["confusion_matrix"] = _png(figure)
    observed, predicted = calibration_curve(labels, scores, n_bins=10, strategy="quantile")
    with _figure("Calibration (holdout, 10 quantile bins)") as (figure, axes):
        axes.plot(predicted, observed, marker="o", label="model")
        axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfectly calibrated")
        axes.set(xlabel="mean predicted probability", ylabel="observed frequency")
        axes.legend(loc="upper left")
        plots["calibration"] = _png(figure)
    return plots


def regression_plots(labels: np.ndarray, predictions: np.ndarray) -> dict[str, bytes]:
    plots = {}
    low, high = float(min(labels.min(), predictions.min())), float(max(labels.max(), predictions.max()))
    with _figure("Predicted vs actual (holdout)") as (figure, axes):
        axes.scatter(labels, predictions, s=6, alpha=0.5)
        axes.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=1)
        axes.set(xlabel="actual", ylabel="predicted")
        plots["predicted_vs_actual"] = _png(figure)
    residuals = labels - predictions
    with _figure("Residuals (actual - predicted)") as (figure, axes):
        axes.scatter(predictions, residuals, s=6, alpha=0.5)
        axes.axhline(0, linestyle="--", color="grey", linewidth=1)
        axes.set(xlabel="predicted", ylabel="residual")
        plots["residuals"] = _png(figure)
    return plots


def permutation_importance(
    predict: Callable[[pd.DataFrame], np.ndarray],
    features: pd.DataFrame,
    score: Callable[[np.ndarray], float],
    higher_is_better: bool,
    seed: int,
) -> dict[str, float]:
    """Drop in `score` when each feature's holdout column is shuffled (one repeat; positive = the feature helps)."""
    rng = np.random.default_rng(seed)
    baseline = score(predict(features))
    importance = {}
    for name in features.columns:
        shuffled = features.copy()
        shuffled[name] = rng.permutation(shuffled[name].to_numpy())
        change = baseline - score(predict(shuffled))
        importance[name] = float(change if higher_is_better else -change)
    return dict(sorted(importance.items(), key=lambda item: item[1], reverse=True))


def importance_plot(importance: dict[str, float], metric: str) -> bytes:
    top = list(importance.items())[:TOP_FEATURES][::-1]
    with _figure(f"Permutation importance (holdout {metric} drop)") as (figure, axes):
        axes.barh([name for name, _ in top], [value for _, value in top])
        axes.set(xlabel=f"{metric} lost when shuffled")
        axes.tick_params(axis="y", labelsize=7)
        return _png(figure)


class _figure:
    """A titled Agg figure, closed on exit (no display, no memory kept between trainings)."""

    def __init__(self, title: str) -> None:
        self.title = title

    def __enter__(self) -> tuple[Any, Any]:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot

        self.figure, axes = pyplot.subplots(figsize=FIGURE_SIZE, dpi=DPI)
        axes.set_title(self.title, fontsize=10)
        return self.figure, axes

    def __exit__(self, *exc: object) -> None:
        from matplotlib import pyplot

        pyplot.close(self.figure)


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def multiclass_plots(labels: np.ndarray, probabilities: np.ndarray, classes: Sequence[str]) -> dict[str, bytes]:
    """The confusion matrix of the most probable class; `labels` are class indexes."""
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(labels, probabilities.argmax(axis=1), labels=range(len(classes)))
    with _figure("Confusion matrix (holdout)") as (figure, axes):
        axes.imshow(matrix, cmap="Blues")
        for (row, column), count in np.ndenumerate(matrix):
            axes.text(
                column,
                row,
                f"{count:,}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if count > matrix.max() / 2 else "black",
            )
        ticks = list(range(len(classes)))
        axes.set(xticks=ticks, yticks=ticks, xlabel="predicted", ylabel="actual")
        axes.set_xticklabels(classes, rotation=45, ha="right", fontsize=7)
        axes.set_yticklabels(classes, fontsize=7)
        return {"confusion_matrix": _png(figure)}


def holdout_plots(
    task: str,
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float | None,
    predict: Callable[[pd.DataFrame], np.ndarray],
    features: pd.DataFrame,
    seed: int,
    classes: Sequence[str] = (),
) -> tuple[dict[str, bytes], dict[str, float]]:
    """Every plot of a model's holdout evaluation, and its permutation importance by feature (none for a text
    model: its one input is the text)."""
    if task == "multiclass":
        return multiclass_plots(labels, scores, classes), {}
    if task == "regression":
        plots = regression_plots(labels, scores)
        metric, higher_is_better = "MAE", False
        score = lambda predicted: float(np.mean(np.abs(predicted - labels)))  # noqa: E731
    else:
        from sklearn.metrics import roc_auc_score

        plots = classification_plots(labels, scores, 0.5 if threshold is None else threshold)
        metric, higher_is_better = "ROC AUC", True
        score = lambda predicted: float(roc_auc_score(labels, predicted))  # noqa: E731
    importance = permutation_importance(predict, features, score, higher_is_better, seed)
    plots["feature_importance"] = importance_plot(importance, metric)
    return plots, importance
