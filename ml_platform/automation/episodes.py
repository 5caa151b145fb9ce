"""One retraining per episode: the rule the drift and performance sensors share.

An episode is the run of consecutive bad days ending on the newest day; it retrains once it is `needed`
days long, once (the sensor's cursor remembers the episode's first day), and a good newest day ends it, so
the next episode retrains again.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import dagster as dg


def retrain_once_per_episode(
    context: dg.SensorEvaluationContext,
    trigger: str,
    episode: list[str],
    needed: int,
    what: str,
    on_retrain: Callable[[], None] = lambda: None,
) -> dg.SensorResult | dg.SkipReason:
    """Request the sensor's job for `episode` (days, oldest first; empty: the newest day is good) when it is due;
    `what` says what went wrong, `on_retrain` runs once, with the request (an alert)."""
    if not episode:
        return dg.SensorResult(skip_reason=f"newest day: no {what}", cursor=json.dumps({"episode": None}))
    retrained_for = json.loads(context.cursor)["episode"] if context.cursor else None
    since = f"{episode[0]}..{episode[-1]}"
    if len(episode) < needed:
        return dg.SkipReason(f"{what} on {len(episode)} day(s) ({since}); retraining after {needed}")
    if retrained_for == episode[0]:
        return dg.SkipReason(f"retraining already requested for the {trigger} episode {since}")
    on_retrain()
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"{trigger}-episode-{episode[0]}",
                tags={"ml_platform/trigger": trigger, f"ml_platform/{trigger}_days": since},
            )
        ],
        cursor=json.dumps({"episode": episode[0]}),
    )
