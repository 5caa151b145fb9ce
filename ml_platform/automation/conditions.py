"""Declarative automation conditions of the asset graph (evaluated by the `automation_conditions` sensor)."""

from typing import Any

import dagster as dg

# Features of the newest day follow its raw day's re-ingest, but never while that day's latest blocking
# gate failed: eager alone would build on the last good file of a day whose new data was refused. (A
# corrected earlier day reaches the later windows that contain it through the landed-data sensor.) Written as
# "no dep partition has a failed blocking check" because Dagster 1.13's
# all_deps_blocking_checks_passed(), evaluated with a cursor, missed a failed day inside the window
# (test_features_follow_raw_events_but_never_past_a_failed_blocking_gate pins the behaviour).
BLOCKING_CHECK_FAILED_UPSTREAM = dg.AutomationCondition.any_deps_match(
    dg.AutomationCondition.any_checks_match(dg.AutomationCondition.check_failed(), blocking_only=True)
).with_label("any_dep_blocking_check_failed")
FEATURES_FOLLOW_RAW = dg.AutomationCondition.eager() & ~BLOCKING_CHECK_FAILED_UPSTREAM


def performance_condition(predictions: dg.AssetKey, raw_events: dg.AssetKey) -> dg.AutomationCondition[Any]:
    """A performance day runs when its predictions are (re)written, for the estimate, and when a raw day that
    decides its labels lands with all the others there, for the realized metrics. Eager would wait for every
    label day before the first estimate, so the two triggers are composed here; neither runs while an input
    is missing or being written, nor while the day itself is running."""
    deps = dg.AutomationCondition.any_deps_match
    scored = deps(dg.AutomationCondition.newly_updated()).allow(dg.AssetSelection.assets(predictions))
    label_day_landed = deps(dg.AutomationCondition.newly_updated()).allow(dg.AssetSelection.assets(raw_events))
    label_days_missing = deps(dg.AutomationCondition.missing()).allow(dg.AssetSelection.assets(raw_events))
    unscored = deps(dg.AutomationCondition.missing()).allow(dg.AssetSelection.assets(predictions))
    return (
        (
            scored.with_label("predictions_updated")
            | (label_day_landed & ~label_days_missing).with_label("labels_matured")
        )
        & ~unscored
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("performance_follows_scores_and_labels")
