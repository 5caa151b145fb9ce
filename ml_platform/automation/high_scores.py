"""The high-score alert: the entities of the newest scored day at or above the spec's threshold."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ml_platform.resources.alerts import AlertResource
from ml_platform.spec import UseCaseSpec


def alert_high_scores(
    alerts: AlertResource, spec: UseCaseSpec, day: str, scored: pd.DataFrame, link: str
) -> dict[str, Any]:
    """Send the day's entities at or above the threshold if at least `min_count` qualify; returns the
    predictions asset's metadata about it (count, alerted, or the delivery error)."""
    threshold = spec.alerts.high_score_threshold
    if threshold is None:
        return {}
    high = scored[scored["score"] >= threshold]
    count = len(high)
    if count < spec.alerts.min_count or not alerts.configured:
        return {"high_score_count": count}
    top = high.nlargest(spec.alerts.max_listed, "score")
    listed = ", ".join(f"{entity} ({score:.2f})" for entity, score in zip(top[spec.subject], top["score"], strict=True))
    delivered = alerts.send(
        "high_risk",
        f"{spec.name}: {count} high-risk {spec.subject}s on {day}",
        f"score >= {threshold}: {listed}" + (" ..." if count > len(top) else ""),
        severity="warning",
        details={
            "use_case": spec.name,
            "partition": day,
            "count": count,
            "threshold": threshold,
            "model_version": str(scored["model_version"].iloc[0]),
            "entities": top[[spec.subject, "score"]].to_dict("records"),
        },
        link=link,
    )
    if delivered:
        return {"high_score_count": count, "high_score_alerted": count}
    return {
        "high_score_count": count,
        "high_score_alert_error": "no sink received it after retries; see the step's logs",
    }
