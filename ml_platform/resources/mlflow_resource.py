"""MLflow tracking and registry as a Dagster resource.

dagster-mlflow's `mlflow_tracking` is an op-era `@resource` that opens a run
per step; we need the registry (versions, aliases) as much as tracking, so
this is a small `ConfigurableResource` of our own. With no configuration it
uses a local SQLite store and artifact directory under the data dir; set
`MLFLOW_TRACKING_URI` to use a tracking server instead.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import dagster as dg

from ml_platform.resources.secrets import redact

CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous_champion"
DRIFT_REFERENCE = "drift_reference.json"
_IMPORT_LOCK = threading.Lock()


def _import_mlflow() -> Any:
    """mlflow and the parts the resource uses, imported by one thread at a time: the daemon evaluates sensors
    in parallel threads, and MLflow's circular imports show a second importing thread a partially initialised
    module ("partially initialized module 'mlflow' has no attribute 'version'")."""
    with _IMPORT_LOCK:
        import mlflow
        import mlflow.exceptions
        import mlflow.tracking
    return mlflow


class RegistryUnavailable(dg.Failure):
    """The registry could not answer (not: "there is no such model"). Never retried by the step: MLflow's own
    HTTP retries (`http_max_retries`) already ran, and nothing may be promoted or scored on a guess."""

    def __init__(self, tracking_uri: str, what: str, error: Exception) -> None:
        super().__init__(
            description=redact(
                f"MLflow registry at {tracking_uri} is unavailable ({what}): {type(error).__name__}: {error}",
                tracking_uri,
            ),
            allow_retries=False,
        )


class MlflowResource(dg.ConfigurableResource[Any]):
    data_dir: str
    tracking_uri: str = ""
    ui_url: str = "http://127.0.0.1:5000"
    dagster_ui_url: str = "http://127.0.0.1:3000"  # runs and versions link back to the run that trained them
    # MLflow's defaults (7 retries, backoff factor 2, 120 s timeout) wait over ten minutes on a dead server
    http_max_retries: int = 2
    http_backoff_factor: int = 1
    http_timeout_s: int = 15
    model_cache_dir: str = ""  # loaded models kept here by registry identity (empty: no cache)
    model_cache_key: str = ""  # HMAC key of cache entries (dg.EnvVar of a secret); empty: model_cache_key_file
    model_cache_key_file: str = ""  # a random key created there on first use (ml_platform/models/model_cache.py)

    def resolved_tracking_uri(self) -> str:
        if self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"):
            return self.tracking_uri or os.environ["MLFLOW_TRACKING_URI"]
        store = Path(self.data_dir).resolve() / "mlflow"
        store.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{store / 'mlflow.db'}"

    def configure(self) -> Any:
        """Point the mlflow module at our store; returns the imported module."""
        mlflow = _import_mlflow()
        uri = self.resolved_tracking_uri()
        os.environ.update(
            {  # read by MLflow's HTTP client on every request
                "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(self.http_max_retries),
                "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": str(self.http_backoff_factor),
                "MLFLOW_HTTP_REQUEST_TIMEOUT": str(self.http_timeout_s),
            }
        )
        user_setting = os.environ.get("MLFLOW_TRACKING_URI")
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        # set_tracking_uri also exports MLFLOW_TRACKING_URI; put the user's setting back so that it
        # alone decides, and a local store chosen for one data dir never leaks into the next.
        if user_setting is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = user_setting
        return mlflow

    def client(self) -> Any:
        self.configure()
        from mlflow.tracking import MlflowClient

        return MlflowClient()

    def experiment_id(self, name: str) -> str:
        mlflow = self.configure()
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        artifacts = None
        if self.resolved_tracking_uri().startswith("sqlite:"):
            artifacts = (Path(self.data_dir).resolve() / "mlflow" / "artifacts").as_uri()
        return mlflow.create_experiment(name, artifact_location=artifacts)

    def version_by_alias(self, model_name: str, alias: str) -> Any | None:
        """The version at `alias`; None only when the registry says the model or alias does not exist."""
        client = self.client()
        from mlflow.exceptions import MlflowException

        try:  # the model's alias table answers "no such alias" definitely; a failed lookup by alias does not
            aliases = client.get_registered_model(model_name).aliases
            return client.get_model_version(model_name, aliases[alias]) if alias in aliases else None
        except MlflowException as error:
            if does_not_exist(error):
                return None
            raise RegistryUnavailable(
                self.resolved_tracking_uri(), f"alias '{alias}' of '{model_name}'", error
            ) from error

    def load_model(self, model_name: str, version: str) -> Any:
        """Load a registered version as a pyfunc model (its predict gives scores), through the local model
        cache when one is configured (the registry still says which model that version is)."""
        mlflow = self.configure()
        uri = f"models:/{model_name}/{version}"
        if not self.model_cache_dir:
            return mlflow.pyfunc.load_model(uri)
        from ml_platform.models.model_cache import CacheKey, load_through_cache

        registered = self.client().get_model_version(model_name, str(version))
        identity = {
            "tracking_uri": self.resolved_tracking_uri(),
            "name": model_name,
            "version": str(version),
            "run_id": str(registered.run_id),
            "source": str(registered.source),
            "created": str(registered.creation_timestamp),
        }
        secret = self.model_cache_key
        if isinstance(secret, dg.EnvVar):  # outside a run (`serve`, the CLI) Dagster has not resolved it
            secret = secret.get_value() or ""
        key = CacheKey(secret, Path(self.model_cache_key_file) if self.model_cache_key_file else None)
        return load_through_cache(
            Path(self.model_cache_dir),
            key,
            identity,
            download=lambda: Path(mlflow.artifacts.download_artifacts(artifact_uri=uri)),
            load=lambda artifact: mlflow.pyfunc.load_model(str(artifact)),
        )

    def load_reference(self, run_id: str) -> dict[str, Any]:
        """The drift reference logged with a model's training run."""
        mlflow = self.configure()
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{DRIFT_REFERENCE}")

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return f"{self.ui_url}/#/experiments/{experiment_id}/runs/{run_id}"

    def version_url(self, model_name: str, version: str) -> str:
        return f"{self.ui_url}/#/models/{model_name}/versions/{version}"

    def dagster_run_url(self, run_id: str) -> str:
        return f"{self.dagster_ui_url.rstrip('/')}/runs/{run_id}"


def does_not_exist(error: Exception) -> bool:
    """MLflow's definite "no such model, version or alias" (any other error is an unavailable registry)."""
    return getattr(error, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"
