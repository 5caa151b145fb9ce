"""Kubernetes placement of a use case's training step, derived from its spec.

The `dagster-k8s/config` op tag is what `k8s_job_executor` reads when it
creates the step's Job; it is silently ignored by other executors, which is
why the deployment tests build the real Job from it. GPU training also joins
the `gpu` concurrency pool so the cluster's GPUs bound how many run at once.
"""

from __future__ import annotations

from typing import Any

from ml_platform.spec import UseCaseSpec

GPU_RESOURCE = "nvidia.com/gpu"
GPU_POOL = "gpu"
K8S_CONFIG_TAG = "dagster-k8s/config"
DEFAULT_GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}


def training_k8s_config(spec: UseCaseSpec) -> dict[str, Any]:
    """Container resources, node selector and tolerations for the training step's pod."""
    wanted = spec.resources
    requests = {"cpu": wanted.cpu, "memory": wanted.memory}
    limits = {"memory": wanted.memory}
    pod_spec: dict[str, Any] = {}
    if wanted.gpu:
        limits[GPU_RESOURCE] = str(wanted.gpu)
        tolerations = [t.model_dump(exclude_none=True) for t in wanted.tolerations] or [DEFAULT_GPU_TOLERATION]
        pod_spec["tolerations"] = tolerations
    elif wanted.tolerations:
        pod_spec["tolerations"] = [t.model_dump(exclude_none=True) for t in wanted.tolerations]
    if wanted.node_selector:
        pod_spec["node_selector"] = dict(wanted.node_selector)
    config: dict[str, Any] = {"container_config": {"resources": {"requests": requests, "limits": limits}}}
    if pod_spec:
        config["pod_spec_config"] = pod_spec
    return config


def training_op_tags(spec: UseCaseSpec) -> dict[str, Any]:
    return {K8S_CONFIG_TAG: training_k8s_config(spec)}


def training_pool(spec: UseCaseSpec) -> str | None:
    return GPU_POOL if spec.resources.gpu else None
