"""Realized and estimated metrics of a classes use case: untagged items are left out and counted in the coverage."""

from __future__ import annotations

import pandas as pd
import pytest

from ml_platform.definitions import load_specs
from ml_platform.monitoring.realized import coverage, estimated_metrics, join_labels, realized_metrics


def test_news_untagged_items_are_excluded_from_the_metrics_and_shown_in_the_coverage() -> None:
    spec = next(spec for spec in load_specs() if spec.name == "news")
    predictions = pd.DataFrame(
        {
            "article_id": ["a", "b", "c", "d", "e"],
            "day": "2025-02-01",
            "predicted_class": ["earn", "acq", "crude", "earn", "grain"],
            "score": [0.9, 0.6, 0.8, 0.5, 0.7],
            "model_version": "1",
        }
    )
    events = pd.DataFrame(
        {
            "article_id": ["a", "b", "c", "d", "e"],
            "published_at": pd.Timestamp("2025-02-01 10:00", tz="UTC"),
            "topic": ["earn", "earn", "crude", None, None],  # d and e are untagged
        }
    )
    joined = join_labels(spec, predictions, events)
    assert coverage(joined) == pytest.approx(3 / 5)
    realized = realized_metrics(spec, joined, None)
    assert realized["accuracy"] == pytest.approx(2 / 3), "a, c right, b wrong; d, e unknown"
    # macro F1 over the classes seen in labels or predictions of the tagged rows: earn 2/3, acq 0, crude 1
    assert realized["macro_f1"] == pytest.approx((2 / 3 + 0 + 1) / 3)
    assert estimated_metrics(spec, predictions, None, {}) == {"accuracy": pytest.approx(0.7)}, "mean top probability"
