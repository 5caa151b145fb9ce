"""Which executor runs which job, per deployment environment.

Locally (and in the tests) every job runs in one process (`in_process_executor`, set as
the Definitions default). On Kubernetes (`ML_PLATFORM_ENV=k8s`, set by the Helm chart's
ConfigMap) each run is a pod started by `K8sRunLauncher`; daily ingestion/feature/scoring
runs keep executing in that pod, while training jobs use `k8s_job_executor` so that every
training step gets a pod of its own: the model step's pod carries the GPU request, node
selector and tolerations from the spec (its `dagster-k8s/config` op tag, see placement.py), the
data steps around it run on ordinary nodes. Step retries (RetryPolicy) then start a new pod.
"""

from __future__ import annotations

import dagster as dg

from ml_platform.settings import Settings


def default_executor(settings: Settings) -> dg.ExecutorDefinition:
    """The Definitions-wide executor, used by the UI's asset materializations and backfills.

    Locally every step runs in the run's process. On Kubernetes each step gets its own pod,
    so a `model` materialized straight from the asset graph is placed on a GPU node exactly
    like one launched by the training job (op tags are ignored by other executors). With
    single-run backfills that is a handful of pods per run, not per partition.
    """
    return training_executor(settings) or dg.in_process_executor


def training_executor(settings: Settings) -> dg.ExecutorDefinition | None:
    """`k8s_job_executor` for training jobs on Kubernetes; None elsewhere (use the default)."""
    if not settings.on_kubernetes:
        return None
    from dagster_k8s import k8s_job_executor  # ~1.5 s import: only where it is used

    return k8s_job_executor
