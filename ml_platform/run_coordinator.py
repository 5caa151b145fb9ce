"""The run queue with a per-use-case cap on backfill runs (spec `backfill.max_concurrent_runs`, issue 28).

Dagster 1.13 tags the runs of an asset backfill with `dagster/backfill` (the backfill's id), the backfill's own
tags and the run's partition range, and nothing from the definitions: an asset cannot give its runs a tag (dagster
issues #8979, #15752), so no instance-level `tag_concurrency_limits` entry can tell one use case's backfill runs
from another's, and a limit's number lives in dagster.yaml, not in a spec. Pools are no better: a pool's limit is
set in the instance's storage (UI or CLI), not in code, and under the platform's `granularity: op` a run beyond the
limit still starts and holds its pod while its step waits for a slot.

So this coordinator, Dagster's `QueuedRunCoordinator` otherwise, tags each backfill run of a use case whose daily
assets carry MAX_RUNS_TAG (the spec's `max_concurrent_runs`) with one of that many lanes, `<use case>:<n>`, the lane
with the fewest of the use case's unfinished runs; dagster.yaml limits LANE_TAG to one run per lane value
(`applyLimitPerUniqueValue`), so the daemon never has more than `max_concurrent_runs` of them in progress, whichever
backfills they belong to. Runs of use cases without the setting pass through untouched.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import dagster as dg

BACKFILL_TAG = "dagster/backfill"  # what Dagster tags every run of a backfill with (its id)
MAX_RUNS_TAG = "ml_platform/max_concurrent_runs"  # on a capped use case's daily assets: the spec's number
LANE_TAG = "ml_platform/backfill_lane"  # on its backfill runs: `<use case>:<lane>`, one run per value at once
USE_CASE_TAG = "ml_platform/use_case"
UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


class BackfillLaneRunCoordinator(dg.QueuedRunCoordinator):
    """`QueuedRunCoordinator` that puts a capped use case's backfill runs in lanes before they are queued."""

    def submit_run(self, context: dg.SubmitRunContext) -> dg.DagsterRun:
        run = context.dagster_run
        lane = self._lane(context) if BACKFILL_TAG in run.tags and LANE_TAG not in run.tags else None
        if lane is not None:
            use_case, value = lane
            self._instance.add_run_tags(run.run_id, {LANE_TAG: value, USE_CASE_TAG: use_case})
            tagged = self._instance.get_run_by_id(run.run_id)
            context = dg.SubmitRunContext(tagged or run, context.workspace)
        return super().submit_run(context)

    def _lane(self, context: dg.SubmitRunContext) -> tuple[str, str] | None:
        """(use case, lane) of a run of a capped use case's daily assets; None for every other run."""
        graph = context.workspace.asset_graph
        caps = {
            key.path[0]: int(graph.get(key).tags[MAX_RUNS_TAG])
            for key in context.dagster_run.asset_selection or ()
            if graph.has(key) and MAX_RUNS_TAG in graph.get(key).tags
        }
        if len(caps) != 1:  # not a capped use case's run (a run spans one use case's daily step)
            return None
        [(use_case, cap)] = caps.items()
        unfinished = self._instance.get_runs(dg.RunsFilter(statuses=UNFINISHED, tags={USE_CASE_TAG: use_case}))
        return use_case, least_busy_lane(
            use_case, cap, [run.tags[LANE_TAG] for run in unfinished if LANE_TAG in run.tags]
        )


def least_busy_lane(use_case: str, cap: int, taken: Iterable[str]) -> str:
    """The lane (`<use case>:<n>`, n < cap) holding the fewest of `taken` (the use case's unfinished runs' lanes),
    the lowest first: with a cap of N, N runs queued together get N different lanes."""
    busy = Counter(taken)
    return min((f"{use_case}:{n}" for n in range(cap)), key=lambda lane: busy[lane])
