"""What the official Dagster Helm chart hands to Dagster, computed from our chart's values.

The Dagster chart (a dependency of helm/ml-platform, fetched by `helm dependency update`)
turns its values into the K8sRunLauncher section of the instance ConfigMap and into the
container context that a user-code deployment with `includeConfigInLaunchedRuns` attaches to
every run. These functions compute the same two objects from `values["dagster"]`, following
the chart's templates (`helpers/instance/_run-launcher.tpl` and the user-deployments
subchart's `dagsterUserDeployments.k8sContainerContext`) for the keys this platform sets, so
the deployment tests can build the Jobs Dagster would create without the chart or a cluster.
Where the chart tarball is present, test_deploy_helm.py also renders the real chart.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

DAGSTER_HOME = "/opt/dagster/dagster_home"  # the chart's global.dagsterHome default


def load_values(*paths: str | Path, keep_nulls: bool = False) -> dict[str, Any]:
    """Values files merged like `helm -f a.yaml -f b.yaml` (maps merge deeply, the rest is replaced).

    A null deletes the key (Helm's rule) unless `keep_nulls`: overrides handed to Helm itself keep
    their nulls so that Helm removes the chart's defaults.
    """
    merged: dict[str, Any] = {}
    for path in paths:
        merged = deep_merge(merged, yaml.safe_load(Path(path).read_text()) or {}, keep_nulls=keep_nulls)
    return merged


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any], keep_nulls: bool = False) -> dict[str, Any]:
    """Helm's coalescing: maps merge recursively, a null removes the key, anything else replaces."""
    result = dict(base)
    for key, value in override.items():
        if value is None and not keep_nulls:
            result.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = deep_merge(result[key], value, keep_nulls=keep_nulls)
        else:
            result[key] = value
    return result


def dagster_fullname(release: str) -> str:
    """The Dagster chart's `dagster.fullname` (no overrides)."""
    return release if "dagster" in release else f"{release}-dagster"[:63].rstrip("-")


def user_deployments_fullname(release: str) -> str:
    """`dagster.fullname` inside the dagster-user-deployments subchart."""
    name = "dagster-user-deployments"
    return release if name in release else f"{release}-{name}"[:63].rstrip("-")


def service_account_name(dagster_values: Mapping[str, Any], release: str) -> str:
    global_ = dagster_values.get("global", {}) or {}
    account = dagster_values.get("serviceAccount", {}) or {}
    return global_.get("serviceAccountName") or account.get("name") or dagster_fullname(release)


def _names(entries: list[Mapping[str, Any]] | None) -> list[str]:
    return [entry["name"] for entry in entries or [] if "name" in entry]


def run_launcher_config(dagster_values: Mapping[str, Any], release: str, namespace: str) -> dict[str, Any]:
    """The `run_launcher.config` the chart renders for `runLauncher.type: K8sRunLauncher`."""
    launcher = dagster_values["runLauncher"]
    if launcher["type"] != "K8sRunLauncher":
        raise ValueError(f"expected runLauncher.type K8sRunLauncher, got {launcher['type']}")
    values = launcher["config"]["k8sRunLauncher"]
    global_ = dagster_values.get("global", {}) or {}
    config: dict[str, Any] = {
        "load_incluster_config": values.get("loadInclusterConfig", True),
        "job_namespace": values.get("jobNamespace") or namespace,
        "image_pull_policy": values.get("imagePullPolicy", "Always"),
        "service_account_name": service_account_name(dagster_values, release),
        "dagster_home": global_.get("dagsterHome", DAGSTER_HOME),
        "instance_config_map": f"{dagster_fullname(release)}-instance",
        "postgres_password_secret": global_.get("postgresqlSecretName")
        or f"{dagster_fullname(release)}-postgresql-secret",
    }
    if values.get("kubeconfigFile"):
        config["kubeconfig_file"] = values["kubeconfigFile"]
    if "image" in values:
        config["job_image"] = f"{values['image']['repository']}:{values['image']['tag']}"
    if dagster_values.get("imagePullSecrets"):
        config["image_pull_secrets"] = dagster_values["imagePullSecrets"]
    for source, target in (
        ("envVars", "env_vars"),
        ("volumeMounts", "volume_mounts"),
        ("volumes", "volumes"),
        ("labels", "labels"),
        ("resources", "resources"),
        ("securityContext", "security_context"),
    ):
        if values.get(source):
            config[target] = values[source]
    if _names(values.get("envConfigMaps")):
        config["env_config_maps"] = _names(values.get("envConfigMaps"))
    if _names(values.get("envSecrets")):
        config["env_secrets"] = _names(values.get("envSecrets"))
    if values.get("schedulerName"):
        config["scheduler_name"] = values["schedulerName"]
    if values.get("failPodOnRunFailure"):
        config["fail_pod_on_run_failure"] = True
    run_k8s = values.get("runK8sConfig") or {}
    renamed = {
        "containerConfig": "container_config",
        "podSpecConfig": "pod_spec_config",
        "podTemplateSpecMetadata": "pod_template_spec_metadata",
        "jobSpecConfig": "job_spec_config",
        "jobMetadata": "job_metadata",
    }
    if run_k8s:
        config["run_k8s_config"] = {renamed[key]: value for key, value in run_k8s.items() if value and key in renamed}
    return config


def postgres_db_config(dagster_values: Mapping[str, Any]) -> dict[str, Any]:
    """The `postgres_db` the chart gives each storage (`helpers/instance/_postgresql.tpl`, external Postgres)."""
    postgres = dagster_values["postgresql"]
    global_ = dagster_values.get("global", {}) or {}
    config: dict[str, Any] = {
        "username": {"env": "DAGSTER_PG_USERNAME"}
        if global_.get("postgresqlSecretUsernameKey")
        else postgres["postgresqlUsername"],
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": postgres["postgresqlHost"],
        "db_name": postgres["postgresqlDatabase"],
        "port": postgres["service"]["port"],
        "params": postgres.get("postgresqlParams") or {},
    }
    if postgres.get("postgresqlScheme"):
        config["scheme"] = postgres["postgresqlScheme"]
    return config


def instance_storages_yaml(dagster_values: Mapping[str, Any]) -> str:
    """The storage part of the chart's instance ConfigMap `dagster.yaml`, as text in the template's order.

    `configmap-instance.yaml` writes dagster_postgres' three storages, then (last of all) the raw
    `additionalInstanceConfig`; a key that appears twice keeps its last value when Dagster loads it.
    The text keeps both occurrences so that a test loads exactly what the chart hands Dagster.
    """
    postgres_db = {"postgres_db": postgres_db_config(dagster_values)}
    chart_storages = {
        "schedule_storage": {
            "module": "dagster_postgres.schedule_storage",
            "class": "PostgresScheduleStorage",
            "config": postgres_db,
        },
        "run_storage": {"module": "dagster_postgres.run_storage", "class": "PostgresRunStorage", "config": postgres_db},
        "event_log_storage": {
            "module": "dagster_postgres.event_log",
            "class": "PostgresEventLogStorage",
            "config": postgres_db,
        },
    }
    text = yaml.safe_dump(chart_storages, sort_keys=False)
    if dagster_values.get("additionalInstanceConfig"):
        text += yaml.safe_dump(dict(dagster_values["additionalInstanceConfig"]), sort_keys=False)
    return text


def instance_storages_yaml_loaded(dagster_values: Mapping[str, Any]) -> dict[str, Any]:
    """`instance_storages_yaml` as Dagster reads it (a repeated key keeps its last value)."""
    return yaml.safe_load(instance_storages_yaml(dagster_values))


def user_deployment(dagster_values: Mapping[str, Any], name: str | None = None) -> dict[str, Any]:
    deployments = dagster_values["dagster-user-deployments"]["deployments"]
    return next(d for d in deployments if name is None or d["name"] == name)


def user_deployment_container_context(
    dagster_values: Mapping[str, Any], release: str, namespace: str, name: str | None = None
) -> dict[str, Any]:
    """The container context a deployment with `includeConfigInLaunchedRuns` attaches to its runs."""
    deployment = user_deployment(dagster_values, name)
    if not deployment.get("includeConfigInLaunchedRuns", {}).get("enabled", True):
        return {}
    k8s: dict[str, Any] = {
        "image_pull_policy": deployment["image"].get("pullPolicy"),
        "env_config_maps": [
            f"{user_deployments_fullname(release)}-{deployment['name']}-user-env",
            *_names(deployment.get("envConfigMaps")),
        ],
    }
    if dagster_values.get("imagePullSecrets"):
        k8s["image_pull_secrets"] = dagster_values["imagePullSecrets"]
    if _names(deployment.get("envSecrets")):
        k8s["env_secrets"] = _names(deployment.get("envSecrets"))
    for source, target in (
        ("volumeMounts", "volume_mounts"),
        ("volumes", "volumes"),
        ("labels", "labels"),
        ("resources", "resources"),
    ):
        if deployment.get(source):
            k8s[target] = deployment[source]
    if deployment.get("schedulerName"):
        k8s["scheduler_name"] = deployment["schedulerName"]
    k8s["namespace"] = namespace
    global_ = dagster_values.get("global", {}) or {}
    k8s["service_account_name"] = (
        global_.get("serviceAccountName") or f"{user_deployments_fullname(release)}-user-deployments"
    )
    if isinstance(deployment.get("env"), list) and deployment["env"]:
        k8s["env"] = deployment["env"]
    run_k8s_config: dict[str, Any] = {"pod_spec_config": {"automount_service_account_token": True}}
    if deployment.get("annotations"):
        run_k8s_config["pod_template_spec_metadata"] = {"annotations": deployment["annotations"]}
    k8s["run_k8s_config"] = run_k8s_config
    return {"k8s": k8s}


def user_deployment_image(dagster_values: Mapping[str, Any], name: str | None = None) -> str:
    """What DAGSTER_CURRENT_IMAGE is on the code server, and so the image of its runs and steps."""
    image = user_deployment(dagster_values, name)["image"]
    return f"{image['repository']}:{image['tag']}"


def render_manifests(
    chart_dir: str | Path, values: Mapping[str, Any], release: str, namespace: str
) -> list[dict[str, Any]]:
    """Render a chart offline with Helm's own engine (helm-python-sdk, a test dependency); NOTES.txt left out."""
    import helm_python as helm

    with helm.Chart.load(str(chart_dir)) as chart:
        rendered = chart.render(dict(values), name=release, namespace=namespace, is_install=True)
    return [
        document
        for template, text in sorted(rendered.items())
        if not template.endswith("NOTES.txt")
        for document in yaml.safe_load_all(text)
        if document
    ]
