"""Declarative automation conditions of the asset graph (evaluated by the `automation_conditions` sensor)."""

import dagster as dg

# Features of the newest day follow its raw day's re-ingest, but never while that day's latest blocking
# gate failed: eager alone would build on the last good file of a day whose new data was refused. (A
# corrected earlier day reaches the later windows that contain it through the landed-data sensor.) Written as "no dep partition has a failed blocking check" because Dagster 1.13's
# all_deps_blocking_checks_passed(), evaluated with a cursor, missed a failed day inside the window
# (test_features_follow_raw_events_but_never_past_a_failed_blocking_gate pins the behaviour).
BLOCKING_CHECK_FAILED_UPSTREAM = dg.AutomationCondition.any_deps_match(
    dg.AutomationCondition.any_checks_match(dg.AutomationCondition.check_failed(), blocking_only=True)
).with_label("any_dep_blocking_check_failed")
FEATURES_FOLLOW_RAW = dg.AutomationCondition.eager() & ~BLOCKING_CHECK_FAILED_UPSTREAM
