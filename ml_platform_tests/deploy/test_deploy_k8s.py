"""The Kubernetes Jobs that Dagster itself would create for the platform's steps, built and validated.

No cluster: the Jobs come from Dagster's own code path. A platform job is executed with
`execute_job` on an instance whose run launcher is the `K8sRunLauncher` the Dagster chart
configures from helm/ml-platform/values.yaml, with the code-location image and container
context the chart's user-code deployment attaches to its runs, and with the environment of the
platform ConfigMap our chart renders. `k8s_job_executor` then builds each step's Job with
`construct_dagster_k8s_job` from the step's `dagster-k8s/config` op tag, exactly as in a
cluster, and hands it to the Kubernetes API client, which here records it (and reports the
Job failed, so that the run ends). For (a) a data step and (b) the GPU training step of a GPU
variant of the churn spec, the test asserts resources, GPU limit, tolerations, node selector,
image, env and secrets, and validates the Job against the Kubernetes OpenAPI schema.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import kubernetes
import kubernetes_validate
import pytest
from dagster_k8s import k8s_job_executor

from ml_platform.assets import keys
from ml_platform.dagster_internals import DagsterKubernetesClient
from ml_platform.definitions import build_definitions, load_specs
from ml_platform.k8s.executors import training_executor
from ml_platform.k8s.placement import GPU_RESOURCE, training_k8s_config
from ml_platform.settings import ENVIRONMENT_ENV as ENV_VAR
from ml_platform.settings import Settings
from ml_platform.spec import ResourceSpec, UseCaseSpec
from ml_platform_tests.support import dagster_chart

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "helm" / "ml-platform"
RELEASE = "ml-platform"
NAMESPACE = "ml-platform"
KUBE_VERSION = "1.30.0"
GPU_RESOURCES = ResourceSpec(gpu=2, cpu="8", memory="30Gi")


# --------------------------------------------------------------------------- what the charts say


@functools.cache
def chart_values(*files: str) -> dict[str, Any]:
    return dagster_chart.load_values(*(CHART / name for name in files))


@functools.cache
def platform_env(*files: str) -> dict[str, str]:
    """The data of the platform ConfigMap our chart renders with these values files."""
    values = chart_values(*files)
    overrides = dagster_chart.load_values(*(CHART / name for name in files if name != "values.yaml"), keep_nulls=True)
    documents = dagster_chart.render_manifests(CHART, overrides, RELEASE, NAMESPACE)
    (configmap,) = [
        d
        for d in documents
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == values["platform"]["configMapName"]
    ]
    return configmap["data"]


def gpu_variant(spec: UseCaseSpec) -> UseCaseSpec:
    """The churn spec asking for GPUs, node placement left to the cluster's GPU settings."""
    return spec.model_copy(update={"resources": GPU_RESOURCES})


# --------------------------------------------------------------------------- the job under test


def platform_job(job_name: str, gpu: bool, use_case: str = "churn") -> dg.JobDefinition:
    """A platform job as the code location builds it; module-level so Dagster can reconstruct it.

    `gpu` turns the churn spec into a GPU variant; shipped GPU use cases (fraud) come as they are.
    """
    spec = next(spec for spec in load_specs() if spec.name == use_case)
    job = build_definitions([gpu_variant(spec) if gpu else spec]).resolve_job_def(job_name)
    if job.executor_def.name != "k8s":  # see test_training_jobs_get_the_k8s_executor_on_kubernetes
        job = job.with_executor_def(k8s_job_executor)
    return job


class RecordingBatchApi:
    """Stands in for the cluster's batch/v1 API: keeps every Job it is asked to create, then refuses it.

    Refusing (403) ends the run at once; reporting the Job as failed instead would cost the
    executor's 20 s health-check interval per step.
    """

    def __init__(self) -> None:
        self.jobs: list[kubernetes.client.V1Job] = []
        self.namespaces: list[str] = []

    def create_namespaced_job(self, body: kubernetes.client.V1Job, namespace: str, **_: Any) -> kubernetes.client.V1Job:
        self.jobs.append(body)
        self.namespaces.append(namespace)
        raise kubernetes.client.ApiException(status=403, reason="Forbidden: no cluster in this test")

    def read_namespaced_job_status(self, name: str, namespace: str, **_: Any) -> kubernetes.client.V1Job:
        raise kubernetes.client.ApiException(status=404, reason="Not Found")

    def delete_namespaced_job(self, *_: Any, **__: Any) -> None:
        return None


class EmptyCoreApi:
    def list_namespaced_pod(self, *_: Any, **__: Any) -> kubernetes.client.V1PodList:
        return kubernetes.client.V1PodList(items=[])


KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: none, user: {token: unused}}]
contexts: [{name: none, context: {cluster: none, user: none, namespace: ml-platform}}]
current-context: none
"""


@pytest.fixture
def k8s_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingBatchApi]:
    batch = RecordingBatchApi()
    monkeypatch.setattr(
        DagsterKubernetesClient,
        "production_client",
        staticmethod(
            lambda batch_api_override=None, core_api_override=None: DagsterKubernetesClient(
                batch_api=batch,
                core_api=EmptyCoreApi(),
                logger=lambda *a, **k: None,
                sleeper=lambda *_: None,
                timer=__import__("time").time,
            )
        ),
    )
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    yield batch


def launch_steps(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    values_files: tuple[str, ...],
    job_name: str,
    gpu: bool,
    selection: list[dg.AssetKey],
    tags: dict[str, str] | None = None,
    use_case: str = "churn",
) -> None:
    """Execute `job_name` as its run pod would, on the instance the Dagster chart configures."""
    values = chart_values(*values_files)["dagster"]
    for name, value in platform_env(*values_files).items():
        if name not in ("ML_PLATFORM_DATA_DIR", "ML_PLATFORM_LAKE", "MLFLOW_TRACKING_URI"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("ML_PLATFORM_DATA_DIR", str(tmp_path / "data"))
    launcher = dagster_chart.run_launcher_config(values, RELEASE, NAMESPACE)
    # Outside a cluster: read the (never contacted) kubeconfig instead of the pod's service account.
    launcher = {**launcher, "load_incluster_config": False, "kubeconfig_file": str(tmp_path / "kubeconfig")}
    recon = dg.build_reconstructable_job(__name__, "platform_job", reconstructable_args=(job_name, gpu, use_case))
    repository = recon.repository._replace(
        container_image=dagster_chart.user_deployment_image(values),  # DAGSTER_CURRENT_IMAGE of the code server
        container_context=dagster_chart.user_deployment_container_context(values, RELEASE, NAMESPACE),
    )
    recon = recon._replace(repository=repository)
    overrides = {"run_launcher": {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": launcher}}
    with dg.instance_for_test(overrides=overrides) as instance:
        result = dg.execute_job(
            recon,
            instance=instance,
            asset_selection=selection,
            tags=tags or {},
            raise_on_error=False,
            run_config={"execution": {"config": {"retries": {"disabled": {}}}}},
        )
        assert not result.success  # the recorded Jobs are refused, so the run fails
        failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
        error = failure.event_specific_data.error
        assert "no cluster in this test" in str(error), error


def job_manifest(job: kubernetes.client.V1Job) -> dict[str, Any]:
    return kubernetes.client.ApiClient().sanitize_for_serialization(job)


def validate_manifest(manifest: dict[str, Any]) -> None:
    """Raises kubernetes_validate.ValidationError when the object does not match the OpenAPI schema."""
    kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    (only,) = manifest["spec"]["template"]["spec"]["containers"]
    return only


def env_sources(manifest: dict[str, Any]) -> tuple[set[str], set[str]]:
    env_from = container(manifest).get("envFrom", [])
    return (
        {source["configMapRef"]["name"] for source in env_from if "configMapRef" in source},
        {source["secretRef"]["name"] for source in env_from if "secretRef" in source},
    )


# --------------------------------------------------------------------------- tests


def test_a_data_step_gets_an_ordinary_pod_with_the_platform_image_env_and_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, churn_spec: UseCaseSpec, k8s_jobs: RecordingBatchApi
) -> None:
    launch_steps(
        tmp_path,
        monkeypatch,
        ("values.yaml",),
        f"{churn_spec.name}_training",
        gpu=True,
        selection=[keys.training_set(churn_spec)],
    )
    (job,) = k8s_jobs.jobs
    manifest = job_manifest(job)
    validate_manifest(manifest)

    values = chart_values("values.yaml")
    deployment = dagster_chart.user_deployment(values["dagster"])
    pod = manifest["spec"]["template"]["spec"]
    main = container(manifest)
    assert manifest["metadata"]["labels"]["dagster/op"] == f"{churn_spec.name}__training_set"
    assert manifest["metadata"]["labels"]["app.kubernetes.io/component"] == "step_worker"
    assert main["image"] == f"{values['image']['repository']}:{values['image']['tag']}"
    assert main["args"][:3] == ["dagster", "api", "execute_step"]
    assert main["resources"] == deployment["resources"]  # the deployment's defaults: no GPU
    assert GPU_RESOURCE not in main["resources"].get("limits", {})
    assert "tolerations" not in pod and "nodeSelector" not in pod
    config_maps, secrets = env_sources(manifest)
    assert values["platform"]["configMapName"] in config_maps
    assert values["secrets"]["platform"] in secrets
    env = {item["name"]: item for item in main["env"]}
    assert env["DAGSTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": values["secrets"]["postgres"],
        "key": "postgresql-password",
    }
    assert env["DAGSTER_HOME"]["value"] == dagster_chart.DAGSTER_HOME
    run_k8s = values["dagster"]["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]
    assert manifest["spec"]["ttlSecondsAfterFinished"] == run_k8s["jobSpecConfig"]["ttlSecondsAfterFinished"]
    assert manifest["spec"]["backoffLimit"] == 0
    assert pod["securityContext"]["runAsNonRoot"] is True
    mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
    assert mounts["data"] == values["platform"]["dataDir"]
    claims = {v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in pod["volumes"]}
    assert claims["data"] == values["data"]["claimName"]
    assert (
        pod["serviceAccountName"]
        == dagster_chart.user_deployment_container_context(values["dagster"], RELEASE, NAMESPACE)["k8s"][
            "service_account_name"
        ]
    )


@pytest.mark.parametrize(
    "values_files", [("values.yaml",), ("values.yaml", "values-gpu.yaml")], ids=["default", "gpu-pool"]
)
def test_the_gpu_training_step_gets_its_own_gpu_pod_from_the_spec_and_the_cluster_gpu_settings(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    churn_spec: UseCaseSpec,
    k8s_jobs: RecordingBatchApi,
    values_files: tuple[str, ...],
) -> None:
    launch_steps(
        tmp_path, monkeypatch, values_files, f"{churn_spec.name}_training", gpu=True, selection=[keys.model(churn_spec)]
    )
    (job,) = k8s_jobs.jobs
    manifest = job_manifest(job)
    validate_manifest(manifest)

    values = chart_values(*values_files)
    pod = manifest["spec"]["template"]["spec"]
    main = container(manifest)
    assert manifest["metadata"]["labels"]["dagster/op"] == f"{churn_spec.name}__model"
    assert main["image"] == f"{values['gpuImage']['repository']}:{values['gpuImage']['tag']}"
    assert main["resources"]["limits"][GPU_RESOURCE] == str(GPU_RESOURCES.gpu)
    assert main["resources"]["requests"] == {"cpu": GPU_RESOURCES.cpu, "memory": GPU_RESOURCES.memory}
    assert main["resources"]["limits"]["memory"] == GPU_RESOURCES.memory
    assert pod["nodeSelector"] == values["gpu"]["nodeSelector"]
    assert pod["tolerations"] == values["gpu"]["tolerations"]
    config_maps, secrets = env_sources(manifest)
    assert values["platform"]["configMapName"] in config_maps and values["secrets"]["platform"] in secrets
    assert {"name": "DAGSTER_RUN_STEP_KEY", "value": f"{churn_spec.name}__model"} in main["env"]
    assert manifest["spec"]["ttlSecondsAfterFinished"] == 43200


def test_shipped_gpu_and_cpu_use_cases_get_and_do_not_get_gpu_training_pods(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, k8s_jobs: RecordingBatchApi
) -> None:
    """fraud.yaml asks for a GPU with its own node selector and tolerations; churn.yaml asks for none."""
    specs = {spec.name: spec for spec in load_specs()}
    values = chart_values("values.yaml")
    for use_case in ("fraud", "churn"):
        launch_steps(
            tmp_path,
            monkeypatch,
            ("values.yaml",),
            f"{use_case}_training",
            gpu=False,
            selection=[keys.model(specs[use_case])],
            use_case=use_case,
        )
    fraud_job, churn_job = (job_manifest(job) for job in k8s_jobs.jobs)
    for manifest in (fraud_job, churn_job):
        validate_manifest(manifest)

    fraud = specs["fraud"].resources
    pod, main = fraud_job["spec"]["template"]["spec"], container(fraud_job)
    assert fraud_job["metadata"]["labels"]["dagster/op"] == "fraud__model"
    assert main["image"] == f"{values['gpuImage']['repository']}:{values['gpuImage']['tag']}"
    assert main["resources"]["limits"][GPU_RESOURCE] == str(fraud.gpu) == "1"
    assert main["resources"]["requests"] == {"cpu": fraud.cpu, "memory": fraud.memory}
    assert fraud.node_selector.items() <= pod["nodeSelector"].items()
    assert [t.model_dump(exclude_none=True) for t in fraud.tolerations] == pod["tolerations"]

    pod, main = churn_job["spec"]["template"]["spec"], container(churn_job)
    assert churn_job["metadata"]["labels"]["dagster/op"] == "churn__model"
    assert GPU_RESOURCE not in main["resources"].get("limits", {})
    assert not any(GPU_RESOURCE in str(t) for t in pod.get("tolerations") or [])
    assert main["image"] != f"{values['gpuImage']['repository']}:{values['gpuImage']['tag']}"


def test_a_gpu_spec_with_its_own_placement_overrides_the_cluster_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, churn_spec: UseCaseSpec
) -> None:
    for name, value in platform_env("values.yaml", "values-gpu.yaml").items():
        monkeypatch.setenv(name, value)
    own = churn_spec.model_copy(
        update={
            "resources": ResourceSpec(
                gpu=1,
                node_selector={"pool": "a100"},
                tolerations=[{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoExecute"}],
            )
        }
    )
    config = training_k8s_config(own, Settings.from_env())
    pod = config["pod_spec_config"]
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoExecute"}]
    assert pod["node_selector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4", "pool": "a100"}
    monkeypatch.setenv("ML_PLATFORM_GPU_TOLERATIONS", "{not json")
    with pytest.raises(ValueError, match="ML_PLATFORM_GPU_TOLERATIONS"):
        Settings.from_env()


def test_a_cpu_spec_keeps_the_training_step_off_gpu_nodes(
    churn_spec: UseCaseSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in platform_env("values.yaml").items():
        monkeypatch.setenv(name, value)
    cpu_only = churn_spec.model_copy(update={"resources": ResourceSpec(gpu=0, cpu="2", memory="4Gi")})
    config = training_k8s_config(cpu_only, Settings.from_env())
    assert config == {
        "container_config": {"resources": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "4Gi"}}}
    }


def test_training_jobs_get_the_k8s_executor_on_kubernetes(
    monkeypatch: pytest.MonkeyPatch, churn_spec: UseCaseSpec
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert training_executor(Settings.from_env()) is None
    monkeypatch.setenv(ENV_VAR, "k8s")
    assert training_executor(Settings.from_env()) is k8s_job_executor


def test_an_invalid_job_fails_schema_validation() -> None:
    """The validator is not vacuous: a Job with a misspelled field and a bad type is rejected."""
    broken = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "x"},
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "c", "image": "i", "resource": {}}], "restartPolicy": "Never"}
            },
            "backoffLimit": "zero",
        },
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_manifest(broken)


def test_the_platform_builds_its_training_jobs_with_the_k8s_executor_on_kubernetes(
    monkeypatch: pytest.MonkeyPatch, churn_spec: UseCaseSpec
) -> None:
    monkeypatch.setenv(ENV_VAR, "k8s")
    defs = build_definitions([gpu_variant(churn_spec)])
    assert defs.resolve_job_def(f"{churn_spec.name}_training").executor_def.name == "k8s"
    assert defs.resolve_job_def(f"{churn_spec.name}_daily").executor_def.name == "in_process"
