"""Declarative automation conditions of the asset graph (evaluated by the `automation_conditions` sensor)."""

import dagster as dg

# Features of the newest day follow its raw events, and any window day's re-ingest, but never while an
# input day's latest blocking gate failed: eager alone would build on the last good file of a day whose
# new data was refused.
FEATURES_FOLLOW_RAW = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()
