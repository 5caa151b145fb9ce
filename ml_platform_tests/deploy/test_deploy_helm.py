"""helm/ml-platform rendered offline with Helm's own engine, linted and validated as Kubernetes objects.

Rendering and linting use helm-python-sdk (Helm's Go SDK as a library: no binary, no cluster,
no network). The official Dagster chart is a declared dependency that `helm dependency update`
downloads; there is no network here, so these tests render our own templates (the dependency
is simply absent from charts/) and check the values we hand to the Dagster chart separately:
against the repo's dagster.yaml (queue limits, monitoring, retries) and against the names our
own templates create. If the Dagster chart tarball has been fetched into charts/, the last test
also renders the whole release, Dagster chart included, and validates every object of it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import kubernetes_validate
import pytest
import sqlalchemy as sa
import yaml
from dagster_postgres import PostgresRunStorage, PostgresScheduleStorage

from demo.ui import MLFLOW_SERVER_ENV
from ml_platform.k8s.placement import GPU_POOL
from ml_platform.settings import Settings, stage_threads
from ml_platform.storage.postgres import PooledPostgresEventLogStorage
from ml_platform_tests.support import dagster_chart as charts
from ml_platform_tests.support.instance_config import (
    chart_values_for,
    instance_sections_from_chart_values,
    load_instance_config,
    postgres_env,
    shared_sections,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "helm" / "ml-platform"
PRODUCTION_YAML = REPO_ROOT / "deploy" / "dagster-postgres.yaml"
RELEASE = "ml-platform"
NAMESPACE = "ml-platform"
# The chart's minimum (Chart.yaml kubeVersion) and the newest schema kubernetes-validate ships.
KUBE_VERSIONS = ("1.27.0", "1.37.0")

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "gpu": charts.load_values(CHART / "values-gpu.yaml", keep_nulls=True),
    "pvc-artifacts": {"mlflow": {"artifacts": {"type": "pvc"}}, "data": {"create": False}},
    "minio-no-metrics": {
        "mlflow": {"artifacts": {"s3": {"endpointUrl": "http://minio.minio:9000"}}},
        "prometheus": {"scrapeAnnotations": False},
        "platform": {
            "lake": "s3://ml-platform/lake",
            "extraEnv": {"FSSPEC_S3_ENDPOINT_URL": "http://minio.minio:9000"},
        },
    },
    "without-mlflow": {"mlflow": {"enabled": False}},
    "without-metrics-exporter": {"metricsExporter": {"enabled": False}},
    "serving": {
        "serving": {"enabled": True, "useCases": ["churn", "fraud"]},
        "networkPolicy": {"servingFrom": [{"namespaceSelector": {"matchLabels": {"name": "apps"}}}]},
    },
}
EXPORTER = "ml-platform-metrics-exporter"


def render(overrides: dict[str, Any]) -> list[dict[str, Any]]:
    return charts.render_manifests(CHART, overrides, RELEASE, NAMESPACE)


def by_kind(documents: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in documents}


def default_values() -> dict[str, Any]:
    return charts.load_values(CHART / "values.yaml")


def assert_contains(actual: Any, expected: Any, path: str = "") -> None:
    """Every key of `expected` is in `actual` with the same value (maps compared recursively)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected a mapping, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{path}.{key} missing"
            assert_contains(actual[key], value, f"{path}.{key}")
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


# --------------------------------------------------------------------------- rendering


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_rendered_manifest_is_a_valid_kubernetes_object(variant: str) -> None:
    documents = render(VARIANTS[variant])
    assert documents
    for document in documents:
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(document, version, strict=True)
    kinds = {(doc["kind"], doc["metadata"]["name"]) for doc in documents}
    assert ("ConfigMap", "ml-platform-config") in kinds
    assert (("Deployment", "ml-platform-mlflow") in kinds) == (variant != "without-mlflow")
    assert (("PersistentVolumeClaim", "ml-platform-data") in kinds) == (variant != "pvc-artifacts")
    assert (("PersistentVolumeClaim", "ml-platform-mlflow-artifacts") in kinds) == (variant == "pvc-artifacts")
    assert (("ResourceQuota", "ml-platform-gpu") in kinds) == (variant == "gpu")
    for kind in ("ServiceAccount", "Service", "Deployment"):
        assert ((kind, EXPORTER) in kinds) == (variant != "without-metrics-exporter")
    ours = [
        doc for doc in documents if doc["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "ml-platform"
    ]
    assert ours and not [doc for doc in ours if doc["kind"] == "Secret"], "our chart never renders credentials"


def test_the_platform_configmap_carries_the_environment_of_every_platform_pod() -> None:
    values = default_values()
    configmap = by_kind(render({}))[("ConfigMap", values["platform"]["configMapName"])]["data"]
    assert configmap["ML_PLATFORM_ENV"] == "k8s"
    assert configmap["ML_PLATFORM_DATA_DIR"] == values["platform"]["dataDir"]
    assert configmap["MLFLOW_TRACKING_URI"] == f"http://ml-platform-mlflow.{NAMESPACE}.svc.cluster.local:5000"
    assert configmap["ML_PLATFORM_GPU_IMAGE"] == f"{values['gpuImage']['repository']}:{values['gpuImage']['tag']}"
    assert json.loads(configmap["ML_PLATFORM_GPU_NODE_SELECTOR"]) == values["gpu"]["nodeSelector"]
    assert json.loads(configmap["ML_PLATFORM_GPU_TOLERATIONS"]) == values["gpu"]["tolerations"]
    assert "ML_PLATFORM_LAKE" not in configmap  # default: <dataDir>/lake on the shared volume
    # run pods have no CPU limit: the thread count is set, and is one the platform accepts
    assert (
        stage_threads({"ML_PLATFORM_THREADS": configmap["ML_PLATFORM_THREADS"]}) == values["platform"]["stageThreads"]
    )
    assert "ML_PLATFORM_UI_URL" not in configmap
    linked = by_kind(render({"platform": {"uiUrl": "https://dagster.example.com"}}))
    assert (
        linked[("ConfigMap", values["platform"]["configMapName"])]["data"]["ML_PLATFORM_UI_URL"]
        == "https://dagster.example.com"
    )


def test_gpu_values_set_the_gpu_pool_and_a_namespace_gpu_quota() -> None:
    documents = by_kind(render(VARIANTS["gpu"]))
    quota = documents[("ResourceQuota", "ml-platform-gpu")]
    assert quota["spec"]["hard"] == {"requests.nvidia.com/gpu": "2"}
    configmap = documents[("ConfigMap", "ml-platform-config")]["data"]
    assert json.loads(configmap["ML_PLATFORM_GPU_NODE_SELECTOR"]) == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert json.loads(configmap["ML_PLATFORM_GPU_TOLERATIONS"]) == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}
    ]
    assert configmap["ML_PLATFORM_GPU_IMAGE"].startswith("europe-docker.pkg.dev/")


def test_mlflow_uses_postgres_and_proxied_artifacts_without_a_password_in_the_manifest() -> None:
    values = default_values()
    store = values["mlflow"]["backendStore"]
    deployment = by_kind(render({}))[("Deployment", "ml-platform-mlflow")]
    pod = deployment["spec"]["template"]
    (server,) = pod["spec"]["containers"]
    args = server["args"]
    env = {item["name"]: item for item in server["env"]}
    # the URI (password expanded by Kubernetes) reaches `mlflow server` through its environment, not argv
    assert env["MLFLOW_BACKEND_STORE_URI"]["value"] == (
        f"postgresql+psycopg2://$(MLFLOW_DB_USER):$(MLFLOW_DB_PASSWORD)@{store['host']}:{store['port']}/{store['database']}"
    )
    assert not [arg for arg in [*server["command"], *args] if "store-uri" in arg or "PASSWORD" in arg]
    assert "--serve-artifacts" in args
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"]["value"] == MLFLOW_SERVER_ENV["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"]
    assert f"--artifacts-destination={values['mlflow']['artifacts']['s3']['destination']}" in args
    allowed = next(arg for arg in args if arg.startswith("--allowed-hosts=")).split("=", 1)[1].split(",")
    assert f"ml-platform-mlflow.{NAMESPACE}.svc.cluster.local:5000" in allowed and "ml-platform-mlflow:5000" in allowed
    assert env["MLFLOW_DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": store["passwordSecret"],
        "key": store["passwordKey"],
    }
    for name, item in env.items():
        if any(word in name for word in ("PASSWORD", "SECRET", "KEY")):
            assert "value" not in item, f"{name} must come from a Secret"
    assert pod["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "5000",
        "prometheus.io/path": "/metrics",
    }
    assert "--expose-prometheus=/tmp/mlflow-metrics" in args
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert server["readinessProbe"]["httpGet"]["path"] == "/health"

    plain = by_kind(render(VARIANTS["minio-no-metrics"]))[("Deployment", "ml-platform-mlflow")]["spec"]["template"]
    assert "annotations" not in plain["metadata"]
    assert {"name": "MLFLOW_S3_ENDPOINT_URL", "value": "http://minio.minio:9000"} in plain["spec"]["containers"][0][
        "env"
    ]
    pvc = by_kind(render(VARIANTS["pvc-artifacts"]))[("Deployment", "ml-platform-mlflow")]
    assert pvc["spec"]["strategy"] == {"type": "Recreate"}
    assert "--artifacts-destination=/mlartifacts" in pvc["spec"]["template"]["spec"]["containers"][0]["args"]


def test_the_metrics_exporter_reads_the_dagster_instance_and_the_platform_environment() -> None:
    values = default_values()
    documents = by_kind(render({}))
    deployment = documents[("Deployment", EXPORTER)]
    pod = deployment["spec"]["template"]
    (exporter,) = pod["spec"]["containers"]
    assert exporter["image"] == f"{values['image']['repository']}:{values['image']['tag']}"
    assert exporter["command"] + exporter["args"] == ["ml-platform", "metrics", "--host=0.0.0.0", "--port=9108"]
    assert pod["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9108",
        "prometheus.io/path": "/metrics",
    }
    for probe in ("readinessProbe", "livenessProbe"):
        assert exporter[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    assert exporter["ports"] == [{"name": "metrics", "containerPort": 9108, "protocol": "TCP"}]
    assert exporter["resources"] == values["metricsExporter"]["resources"]

    # The platform ConfigMap and Secret, exactly as the code location, run and step pods get them.
    context = charts.user_deployment_container_context(values["dagster"], RELEASE, NAMESPACE)["k8s"]
    assert exporter["envFrom"] == [
        {"configMapRef": {"name": values["platform"]["configMapName"]}},
        {"secretRef": {"name": values["secrets"]["platform"]}},
    ]
    assert values["platform"]["configMapName"] in context["env_config_maps"]
    assert context["env_secrets"] == [values["secrets"]["platform"]]

    # The Dagster chart's instance ConfigMap at $DAGSTER_HOME/dagster.yaml, and the password it reads.
    env = {item["name"]: item for item in exporter["env"]}
    launcher = charts.run_launcher_config(values["dagster"], RELEASE, NAMESPACE)
    assert env["DAGSTER_HOME"]["value"] == launcher["dagster_home"] == charts.DAGSTER_HOME
    assert env["DAGSTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": launcher["postgres_password_secret"],
        "key": "postgresql-password",
    }
    for name, item in env.items():
        if any(word in name for word in ("PASSWORD", "SECRET", "KEY")):
            assert "value" not in item, f"{name} must come from a Secret"
    volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in exporter["volumeMounts"]}
    instance = mounts[f"{charts.DAGSTER_HOME}/dagster.yaml"]
    assert instance["subPath"] == "dagster.yaml"
    assert volumes[instance["name"]]["configMap"] == {"name": launcher["instance_config_map"]}
    assert "emptyDir" in volumes[mounts[charts.DAGSTER_HOME]["name"]]  # writable: the CLI may create it
    # The default lake is <dataDir>/lake on the shared volume, mounted like in the platform pods.
    data = mounts[values["platform"]["dataDir"]]
    assert volumes[data["name"]]["persistentVolumeClaim"]["claimName"] == values["data"]["claimName"]

    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["runAsUser"] != 0
    assert exporter["securityContext"]["allowPrivilegeEscalation"] is False
    service = documents[("Service", EXPORTER)]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert pod["metadata"]["labels"].items() >= service["spec"]["selector"].items()
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9108, "targetPort": "metrics", "protocol": "TCP"}]

    # An S3 lake needs no shared volume; without scrape annotations the pod is not annotated.
    s3 = by_kind(render(VARIANTS["minio-no-metrics"]))[("Deployment", EXPORTER)]["spec"]["template"]
    assert "annotations" not in s3["metadata"]
    assert "persistentVolumeClaim" not in str(s3["spec"]["volumes"])
    # A release name containing "dagster" makes the Dagster chart drop its suffix.
    renamed = by_kind(charts.render_manifests(CHART, {}, "dagster-prod", NAMESPACE))
    renamed_volumes = renamed[("Deployment", "dagster-prod-ml-platform-metrics-exporter")]["spec"]["template"]["spec"][
        "volumes"
    ]
    expected = charts.run_launcher_config(values["dagster"], "dagster-prod", NAMESPACE)["instance_config_map"]
    assert {"name": "dagster-instance", "configMap": {"name": expected}} in renamed_volumes


def test_the_metrics_exporter_can_be_disabled() -> None:
    documents = render({"metricsExporter": {"enabled": False}})
    assert not [doc for doc in documents if "metrics-exporter" in doc["metadata"]["name"]]
    assert not [
        doc
        for doc in documents
        if doc["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "metrics-exporter"
    ]


# --------------------------------------------------------------------------- lint and schema


def test_the_chart_lints_clean_apart_from_the_unfetched_dependency(tmp_path: Path) -> None:
    import helm_python as helm

    report = helm.lint(str(CHART), kube_version="v1.30.0")
    assert report["errors"] == []
    warnings = [m["error"] for m in report["messages"] if m["severity"] >= 2]
    assert warnings == ["chart directory is missing these dependencies: dagster"] or warnings == [], warnings

    # Strict lint (warnings are errors) of the same templates with the dependency declaration removed.
    copy = Path(shutil.copytree(CHART, tmp_path / "ml-platform", ignore=shutil.ignore_patterns("charts")))
    metadata = yaml.safe_load((copy / "Chart.yaml").read_text())
    metadata.pop("dependencies")
    (copy / "Chart.yaml").write_text(yaml.safe_dump(metadata))
    for values in ({}, VARIANTS["gpu"], VARIANTS["pvc-artifacts"]):
        strict = helm.lint(str(copy), values, strict=True, kube_version="v1.30.0")
        assert strict["errors"] == [], strict


@pytest.mark.parametrize(
    "bad, where",
    [
        ({"image": {"tag": 1}}, "/image/tag"),
        ({"gpu": {"quota": -1}}, "/gpu/quota"),
        ({"gpu": {"tolerations": [{"key": "k", "effect": "Sometimes"}]}}, "/gpu/tolerations/0/effect"),
        ({"platform": {"dataDir": "relative/path"}}, "/platform/dataDir"),
        ({"platform": {"unknown": True}}, "/platform"),
        ({"mlflow": {"artifacts": {"type": "ftp"}}}, "/mlflow/artifacts/type"),
        ({"secrets": {"platform": "Not_A_Name"}}, "/secrets/platform"),
        ({"metricsExporter": {"port": 0}}, "/metricsExporter/port"),
        ({"metricsExporter": {"unknown": True}}, "/metricsExporter"),
    ],
)
def test_the_values_schema_rejects_mistakes_naming_the_key(bad: dict[str, Any], where: str) -> None:
    import helm_python as helm

    with pytest.raises(helm.HelmValuesError, match=where):
        render(bad)


def test_the_values_schema_documents_every_key_of_our_own() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = default_values()
    assert set(values) <= set(schema["properties"])
    text = (CHART / "values.yaml").read_text()
    for key in set(values) - {"dagster"}:
        index = text.index(f"\n{key}:")
        assert text[:index].rstrip().splitlines()[-1].startswith("#"), f"{key} has no comment above it"


# --------------------------------------------------------------------------- the Dagster chart's values


def test_the_dagster_chart_values_agree_with_the_local_dagster_yaml() -> None:
    """One definition of the queue, monitoring and retries: dagster.yaml, and the chart says the same."""
    local = load_instance_config(REPO_ROOT / "dagster.yaml")
    dagster_values = default_values()["dagster"]
    assert_contains(dagster_values, chart_values_for(local), "dagster")
    rendered = instance_sections_from_chart_values(dagster_values)
    assert shared_sections(rendered) == shared_sections(local)
    # Kubernetes adds only what its launcher can do: resume a run whose pod died.
    assert rendered["run_monitoring"]["max_resume_run_attempts"] >= 1


def test_the_dagster_chart_values_wire_our_image_config_secrets_and_volume() -> None:
    values = default_values()
    dagster_values = values["dagster"]
    dependency = yaml.safe_load((CHART / "Chart.yaml").read_text())["dependencies"][0]
    assert (dependency["name"], dependency["version"]) == ("dagster", importlib.metadata.version("dagster"))

    deployment = charts.user_deployment(dagster_values)
    assert deployment["image"] == {key: value for key, value in values["image"].items() if key != "digest"}
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    args = deployment["dagsterApiGrpcArgs"]
    module = importlib.import_module(args[args.index("--module-name") + 1])
    assert hasattr(module, args[args.index("--attribute") + 1])
    assert [c["name"] for c in deployment["envConfigMaps"]] == [values["platform"]["configMapName"]]
    assert [s["name"] for s in deployment["envSecrets"]] == [values["secrets"]["platform"]]
    assert deployment["volumes"][0]["persistentVolumeClaim"]["claimName"] == values["data"]["claimName"]
    assert deployment["volumeMounts"][0]["mountPath"] == values["platform"]["dataDir"]

    assert dagster_values["global"]["postgresqlSecretName"] == values["secrets"]["postgres"]
    assert dagster_values["generatePostgresqlPasswordSecret"] is False
    assert dagster_values["postgresql"]["enabled"] is False
    assert dagster_values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    assert dagster_values["migrate"]["enabled"] is True
    assert dagster_values["runLauncher"]["type"] == "K8sRunLauncher"
    launcher = charts.run_launcher_config(dagster_values, RELEASE, NAMESPACE)
    assert launcher["run_k8s_config"]["job_spec_config"]["ttlSecondsAfterFinished"] > 0
    assert launcher["postgres_password_secret"] == values["secrets"]["postgres"]
    assert launcher["instance_config_map"] == "ml-platform-dagster-instance"


def test_the_release_runs_the_platform_event_log_on_the_chart_postgres_without_a_password_in_values() -> None:
    """What the chart's instance ConfigMap says about storage: its run and schedule storages, and (last,
    so the one Dagster keeps) the platform's event log class on the very same database."""
    dagster_values = default_values()["dagster"]
    production = load_instance_config(PRODUCTION_YAML)
    text = charts.instance_storages_yaml(dagster_values)
    assert text.count("event_log_storage:") == 2, "the chart's own, then ours"
    loaded = yaml.safe_load(text)
    ours = loaded["event_log_storage"]
    assert (ours["module"], ours["class"]) == (
        production["event_log_storage"]["module"],
        production["event_log_storage"]["class"],
    )
    assert (
        ours["config"] == loaded["run_storage"]["config"] == {"postgres_db": charts.postgres_db_config(dagster_values)}
    ), "dagster.additionalInstanceConfig.event_log_storage must name the database of dagster.postgresql"
    assert ours["config"]["postgres_db"]["password"] == {"env": "DAGSTER_PG_PASSWORD"}

    def secrets_in(node: Any, path: str) -> list[str]:
        if isinstance(node, dict):
            return [hit for key, value in node.items() for hit in secrets_in(value, f"{path}.{key}")]
        if isinstance(node, list):
            return [hit for i, value in enumerate(node) for hit in secrets_in(value, f"{path}[{i}]")]
        return [path] if path.rsplit(".", 1)[-1].lower().endswith("password") and isinstance(node, str | int) else []

    assert secrets_in(default_values(), "values") == [], "no password in values"
    # Every process that loads this instance runs our image, which has the class.
    ours_image = {key: value for key, value in default_values()["image"].items() if key != "digest"}
    for component in ("dagsterWebserver", "dagsterDaemon"):  # the migrate Job runs the webserver's image
        assert dagster_values[component]["image"] == ours_image, component
    assert charts.user_deployment(dagster_values)["image"] == ours_image


def test_the_chart_rendered_instance_loads_in_dagster_with_the_platform_storages(
    tmp_path: Path, postgres_database: Callable[[], sa.URL]
) -> None:
    """The chart's dagster.yaml (storages as the chart writes them, duplicate key included, and the shared
    sections from our values), pointed at a real Postgres, is an instance with the platform's event log, the
    queue and the pools of dagster.yaml; an asset in the `gpu` pool takes its limit from the config."""
    url = postgres_database()
    dagster_values = charts.deep_merge(
        default_values()["dagster"],
        {
            "postgresql": {
                "postgresqlHost": url.host,
                "postgresqlUsername": url.username,
                "postgresqlDatabase": url.database,
                "service": {"port": url.port or 5432},
            }
        },
    )
    # The shipped values name one database twice (checked above); here both name the test database.
    ours = dagster_values["additionalInstanceConfig"]["event_log_storage"]
    ours["config"] = {"postgres_db": charts.postgres_db_config(dagster_values)}
    sections = instance_sections_from_chart_values(dagster_values)
    sections["run_monitoring"].pop("max_resume_run_attempts")  # K8sRunLauncher only; this instance launches locally
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(charts.instance_storages_yaml(dagster_values) + yaml.safe_dump(sections))

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_PG_PASSWORD", postgres_env(url)["DAGSTER_PG_PASSWORD"])
        instance = dg.DagsterInstance.from_config(str(home))
    try:
        assert isinstance(instance.event_log_storage, PooledPostgresEventLogStorage)
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        local = load_instance_config(REPO_ROOT / "dagster.yaml")
        pools = instance.get_concurrency_config().pool_config
        assert pools.default_pool_limit == local["concurrency"]["pools"]["default_limit"]

        @dg.asset(pool=GPU_POOL)
        def smoke() -> int:
            return 1

        assert dg.materialize([smoke], instance=instance).success
        assert instance.get_latest_materialization_event(dg.AssetKey("smoke")) is not None
        info = instance.event_log_storage.get_concurrency_info(GPU_POOL)
        assert (info.slot_count, info.using_default_limit) == (pools.default_pool_limit, True)
    finally:
        instance.dispose()


def test_gpu_values_size_the_gpu_pool_to_the_gpu_quota() -> None:
    """Dagster's instance config has no per-pool limit; the platform's only pool takes the default one."""
    values = charts.load_values(CHART / "values.yaml", CHART / "values-gpu.yaml")
    assert values["dagster"]["concurrency"]["pools"]["defaultLimit"] == values["gpu"]["quota"] > 0
    rendered = instance_sections_from_chart_values(values["dagster"])
    assert rendered["concurrency"]["pools"]["default_limit"] == values["gpu"]["quota"]
    dg_config_keys = {"default_limit", "granularity", "op_granularity_run_buffer"}
    assert set(rendered["concurrency"]["pools"]) <= dg_config_keys


def test_the_whole_release_with_the_fetched_dagster_chart_is_valid() -> None:
    tarballs = sorted((CHART / "charts").glob("dagster-*.tgz"))
    if not tarballs:
        pytest.skip("the Dagster chart is not in helm/ml-platform/charts/: `helm dependency update` needs network")
    documents = render({})
    for document in documents:
        kubernetes_validate.validate(document, KUBE_VERSIONS[-1], strict=True)
    instance = next(d for d in documents if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-instance"))
    text = instance["data"]["dagster.yaml"]
    rendered = yaml.safe_load(text)
    local = load_instance_config(REPO_ROOT / "dagster.yaml")
    for section in (
        "run_coordinator",
        "concurrency",
        "run_retries",
        "telemetry",
        "sensors",
        "python_logs",
        "freshness",
    ):
        assert_contains(rendered[section], local[section], section)
    # the chart's own event log first, ours last: the one Dagster keeps
    assert text.count("\nevent_log_storage:") == 2
    assert (
        rendered["event_log_storage"]
        == charts.instance_storages_yaml_loaded(default_values()["dagster"])["event_log_storage"]
    )
    assert rendered["event_log_storage"]["class"] == load_instance_config(PRODUCTION_YAML)["event_log_storage"]["class"]


# --------------------------------------------------------------------------- hardening


def containers_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    spec = document["spec"]["template"]["spec"] if "template" in document.get("spec", {}) else {}
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_workload_of_ours_is_locked_down(variant: str) -> None:
    """Non-root, read-only root filesystem, no privilege escalation, no capabilities, no service-account
    token, and no secret on any command line."""
    documents = render(VARIANTS[variant])
    workloads = [doc for doc in documents if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job")]
    assert workloads or variant == "without-mlflow"
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        name = workload["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in containers_of(workload):
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, (name, container["name"])
            assert context["allowPrivilegeEscalation"] is False and context["capabilities"]["drop"] == ["ALL"]
            line = " ".join([*container.get("command", []), *container.get("args", [])])
            assert "PASSWORD" not in line.upper() and "SECRET" not in line.upper(), (name, line)
            assert {mount["mountPath"] for mount in container["volumeMounts"]} >= {"/tmp"}, "somewhere to write"
    for account in (doc for doc in documents if doc["kind"] == "ServiceAccount"):
        assert account["automountServiceAccountToken"] is False


def test_network_policies_deny_by_default_and_open_mlflow_to_platform_pods_only() -> None:
    values = default_values()
    documents = render({})
    policies = by_kind(documents)
    deny = policies[("NetworkPolicy", "ml-platform-default-deny-ingress")]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}
    mlflow = policies[("NetworkPolicy", "ml-platform-mlflow")]["spec"]
    [rule] = mlflow["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": values["networkPolicy"]["mlflowClientLabels"]}}]
    assert rule["ports"] == [{"port": 5000, "protocol": "TCP"}]
    # every MLflow client carries the label: the exporter here, the code server and run/step pods via the Dagster values
    exporter = policies[("Deployment", EXPORTER)]["spec"]["template"]["metadata"]["labels"]
    assert values["networkPolicy"]["mlflowClientLabels"].items() <= exporter.items()
    dagster = values["dagster"]
    code_server = dagster["dagster-user-deployments"]["deployments"][0]["labels"]
    run_pods = dagster["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]["podTemplateSpecMetadata"]["labels"]
    for labels in (code_server, run_pods):
        assert values["networkPolicy"]["mlflowClientLabels"].items() <= labels.items()
    grpc = policies[("NetworkPolicy", "ml-platform-code-server")]["spec"]
    assert grpc["podSelector"]["matchLabels"].items() <= code_server.items()
    assert {kind for kind, _ in policies} >= {"NetworkPolicy"} and len(
        [k for k in policies if k[0] == "NetworkPolicy"]
    ) == 5
    assert not [k for k in by_kind(render({"networkPolicy": {"enabled": False}})) if k[0] == "NetworkPolicy"]


def test_the_dagster_ui_is_exposed_only_through_an_authenticating_ingress() -> None:
    import helm_python as helm

    assert not [d for d in render({}) if d["kind"] == "Ingress"], "no ingress unless asked for"
    basic = {"ingress": {"enabled": True, "host": "dagster.example.com", "tlsSecret": "dagster-tls"}}
    [ingress] = [d for d in render(basic) if d["kind"] == "Ingress"]
    for version in KUBE_VERSIONS:
        kubernetes_validate.validate(ingress, version, strict=True)
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/auth-type"] == "basic"
    assert annotations["nginx.ingress.kubernetes.io/auth-secret"] == "ml-platform-ui-htpasswd"
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "ml-platform-dagster-webserver", "port": {"number": 80}}
    oauth = {
        "ingress": {
            "enabled": True,
            "host": "dagster.example.com",
            "auth": {
                "type": "oauth2",
                "oauth2": {
                    "authUrl": "http://oauth2-proxy.auth/oauth2/auth",
                    "signinUrl": "https://auth.example.com/start",
                },
            },
        }
    }
    [proxied] = [d for d in render(oauth) if d["kind"] == "Ingress"]
    assert (
        proxied["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-url"]
        == "http://oauth2-proxy.auth/oauth2/auth"
    )
    with pytest.raises(helm.HelmError, match=r"oauth2\.authUrl"):
        render({"ingress": {"enabled": True, "host": "x.example.com", "auth": {"type": "oauth2"}}})


def test_an_image_digest_pins_the_image() -> None:
    digest = "sha256:" + "a" * 64
    deployment = by_kind(render({"image": {"digest": digest}}))[("Deployment", "ml-platform-mlflow")]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"ghcr.io/your-org/ml-platform@{digest}"


def test_mlflow_authenticates_every_request_with_its_config_from_a_secret() -> None:
    values = default_values()
    pod = by_kind(render({}))[("Deployment", "ml-platform-mlflow")]["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    assert "--app-name=basic-auth" in server["args"]
    env = {item["name"]: item for item in server["env"]}
    assert env["MLFLOW_AUTH_CONFIG_PATH"]["value"] == "/etc/mlflow-auth/basic_auth.ini"
    assert (
        env["MLFLOW_FLASK_SERVER_SECRET_KEY"]["valueFrom"]["secretKeyRef"]["name"] == values["mlflow"]["auth"]["secret"]
    )
    [volume] = [v for v in pod["volumes"] if v["name"] == "auth"]
    assert volume["secret"]["secretName"] == values["mlflow"]["auth"]["secret"]
    assert {"name": "auth", "mountPath": "/etc/mlflow-auth", "readOnly": True} in server["volumeMounts"]
    unauthenticated = by_kind(render({"mlflow": {"auth": {"enabled": False}}}))[("Deployment", "ml-platform-mlflow")]
    assert "--app-name=basic-auth" not in unauthenticated["spec"]["template"]["spec"]["containers"][0]["args"]


def test_serving_deploys_one_scoring_service_per_listed_use_case() -> None:
    kinds = by_kind(render(VARIANTS["serving"]))
    deployment = kinds[("Deployment", "ml-platform-serve-churn")]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["ml-platform", "serve", "churn"]
    assert "--host=0.0.0.0" in container["args"] and "--port=8080" in container["args"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"  # a champion loaded
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"  # the server answers
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 30  # gunicorn's graceful 30 s
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["ml-platform.io/mlflow-client"] == "true", "MLflow's NetworkPolicy admits it"
    assert kinds[("Service", "ml-platform-serve-fraud")]["spec"]["ports"][0]["port"] == 8080
    policy = kinds[("NetworkPolicy", "ml-platform-serve-churn")]["spec"]["ingress"][0]
    assert policy["from"] == [{"namespaceSelector": {"matchLabels": {"name": "apps"}}}]
    assert not [name for kind, name in by_kind(render({})) if "-serve-" in name], "off by default"


def test_each_scoring_service_is_autoscaled_on_cpu_and_kept_available_through_drains() -> None:
    kinds = by_kind(render(VARIANTS["serving"]))
    for use_case in ("churn", "fraud"):
        name = f"ml-platform-serve-{use_case}"
        deployment = kinds[("Deployment", name)]
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert "replicas" not in deployment["spec"], "the autoscaler owns the pod count"
        assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
        assert {"--workers=1", "--threads=16"} <= set(container["args"])
        autoscaler = kinds[("HorizontalPodAutoscaler", name)]["spec"]
        assert autoscaler["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert (autoscaler["minReplicas"], autoscaler["maxReplicas"]) == (2, 10)
        assert autoscaler["metrics"] == [
            {
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
            }
        ]
        budget = kinds[("PodDisruptionBudget", name)]["spec"]
        assert budget["minAvailable"] == 1
        assert budget["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    fixed = by_kind(
        render(
            {
                "serving": {
                    "enabled": True,
                    "useCases": ["churn"],
                    "replicas": 3,
                    "autoscaling": {"enabled": False},
                    "podDisruptionBudget": {"enabled": False},
                }
            }
        )
    )
    assert fixed[("Deployment", "ml-platform-serve-churn")]["spec"]["replicas"] == 3
    assert not [kind for kind, _ in fixed if kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget")]
    with pytest.raises(Exception, match=r"minReplicas .* must not exceed maxReplicas"):
        render(
            {"serving": {"enabled": True, "useCases": ["churn"], "autoscaling": {"minReplicas": 5, "maxReplicas": 2}}}
        )


def test_the_model_cache_and_its_key_live_on_each_pods_own_emptydir_under_the_charts_environment() -> None:
    """Whoever can write a model cache entry chooses what the next reader unpickles: under the chart's
    environment the cache and its key file are on the pod's own emptyDir, never on the shared data volume."""
    values = default_values()
    configmap = by_kind(render({}))[("ConfigMap", values["platform"]["configMapName"])]["data"]
    deployment = charts.user_deployment(values["dagster"])  # code server, and its run and step pods
    serving = by_kind(render(VARIANTS["serving"]))[("Deployment", "ml-platform-serve-churn")]["spec"]["template"][
        "spec"
    ]
    [server] = serving["containers"]
    pods = {
        "code server, run and step pods": (configmap, deployment["volumes"], deployment["volumeMounts"]),
        "serving": (
            {**configmap, **{e["name"]: e["value"] for e in server.get("env", []) if "value" in e}},
            serving["volumes"],
            server["volumeMounts"],
        ),
    }
    for pod, (environment, volumes, mounts) in pods.items():
        settings = Settings.from_env(environment)
        assert settings.model_cache_dir is not None, pod
        for path in (settings.model_cache_dir, settings.model_cache_key_file):
            mount = max((m for m in mounts if path.is_relative_to(m["mountPath"])), key=lambda m: len(m["mountPath"]))
            [volume] = [v for v in volumes if v["name"] == mount["name"]]
            assert "emptyDir" in volume and not path.is_relative_to(settings.data_dir), (pod, path, volume)
