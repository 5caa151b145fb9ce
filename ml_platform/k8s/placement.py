"""Kubernetes placement of a use case's training step, derived from its spec.

The `dagster-k8s/config` op tag is what `k8s_job_executor` reads when it
creates the step's Job; it is silently ignored by other executors, which is
why the deployment tests build the real Job from it. GPU training also joins
the `gpu` concurrency pool so the cluster's GPUs bound how many run at once;
the instance config sizes it (`concurrency.pools.default_limit`: `gpu` is the
platform's only pool, and Dagster has no per-pool limit in instance config).

The spec says what training needs (GPUs, CPU, memory, and optionally its own
node selector and tolerations). Where GPU nodes are and which image has the
CUDA build of torch is a property of the cluster, set once by the Helm chart
(`gpu:` values) in the platform ConfigMap that every pod reads:

  ML_PLATFORM_GPU_IMAGE          image for GPU training steps (Dockerfile.gpu)
  ML_PLATFORM_GPU_NODE_SELECTOR  JSON object, merged under the spec's node_selector
  ML_PLATFORM_GPU_TOLERATIONS    JSON list, used when the spec names no tolerations

Unset (locally), a GPU spec gets the standard `nvidia.com/gpu` toleration only.
"""

from __future__ import annotations

from typing import Any

from ml_platform.settings import Settings
from ml_platform.spec import UseCaseSpec

GPU_RESOURCE = "nvidia.com/gpu"
GPU_POOL = "gpu"
K8S_CONFIG_TAG = "dagster-k8s/config"
DEFAULT_GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}


def training_k8s_config(spec: UseCaseSpec, settings: Settings) -> dict[str, Any]:
    """Container resources, node selector and tolerations for the training step's pod."""
    wanted = spec.resources
    requests = {"cpu": wanted.cpu, "memory": wanted.memory}
    limits = {"memory": wanted.memory}
    container: dict[str, Any] = {"resources": {"requests": requests, "limits": limits}}
    pod_spec: dict[str, Any] = {}
    node_selector = dict(wanted.node_selector)
    if wanted.gpu:
        limits[GPU_RESOURCE] = str(wanted.gpu)
        spec_tolerations = [t.model_dump(exclude_none=True) for t in wanted.tolerations]
        cluster_tolerations = settings.gpu_tolerations
        pod_spec["tolerations"] = spec_tolerations or cluster_tolerations or [DEFAULT_GPU_TOLERATION]
        node_selector = {**settings.gpu_node_selector, **node_selector}
        if settings.gpu_image:
            container["image"] = settings.gpu_image
    elif wanted.tolerations:
        pod_spec["tolerations"] = [t.model_dump(exclude_none=True) for t in wanted.tolerations]
    if node_selector:
        pod_spec["node_selector"] = node_selector
    k8s_config: dict[str, Any] = {"container_config": container}
    if pod_spec:
        k8s_config["pod_spec_config"] = pod_spec
    return k8s_config


def training_op_tags(spec: UseCaseSpec, settings: Settings) -> dict[str, Any]:
    return {K8S_CONFIG_TAG: training_k8s_config(spec, settings)}


def training_pool(spec: UseCaseSpec) -> str | None:
    return GPU_POOL if spec.resources.gpu else None
