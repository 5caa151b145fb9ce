"""Every non-secret setting of the platform: one `Settings` object, read from the environment once.

The code location reads it once when it builds its definitions (`build_definitions`), and the CLI once
per command; every builder and resource gets its values from that object, so nothing else reads the
environment. A value the platform cannot use fails naming the variable and what was expected.
Secrets are not settings: they reach resources as `dg.EnvVar` (a table source's URL, alert webhooks),
and MLflow reads its own credentials (`MLFLOW_TRACKING_USERNAME/PASSWORD`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATA_DIR_ENV = "ML_PLATFORM_DATA_DIR"
LAKE_ENV = "ML_PLATFORM_LAKE"
SPECS_DIR_ENV = "ML_PLATFORM_SPECS_DIR"
SENSOR_INTERVAL_ENV = "ML_PLATFORM_SENSOR_INTERVAL"
AUTOMATION_ENV = "ML_PLATFORM_AUTOMATION"
UI_URL_ENV = "ML_PLATFORM_UI_URL"
MLFLOW_UI_URL_ENV = "MLFLOW_UI_URL"
ENVIRONMENT_ENV = "ML_PLATFORM_ENV"
GPU_IMAGE_ENV = "ML_PLATFORM_GPU_IMAGE"
GPU_NODE_SELECTOR_ENV = "ML_PLATFORM_GPU_NODE_SELECTOR"
GPU_TOLERATIONS_ENV = "ML_PLATFORM_GPU_TOLERATIONS"
MODEL_CACHE_ENV = "ML_PLATFORM_MODEL_CACHE"
SERVE_WORKERS_ENV = "ML_PLATFORM_SERVE_WORKERS"
SERVE_THREADS_ENV = "ML_PLATFORM_SERVE_THREADS"
SERVE_BATCH_WAIT_ENV = "ML_PLATFORM_SERVE_BATCH_WAIT_MS"
SERVE_MAX_BATCH_ENV = "ML_PLATFORM_SERVE_MAX_BATCH_ROWS"
SHIPPED_USE_CASES_ENV = "ML_PLATFORM_SHIPPED_USE_CASES"
PARTITIONS_START_ENV = "ML_PLATFORM_PARTITIONS_START"
SHIPPED_SPECS_DIR = Path(__file__).parent / "use_cases"
KUBERNETES = "k8s"


class SettingError(ValueError):
    """An environment variable holds something the platform cannot use; the message names it."""


@dataclass(frozen=True)
class ServeSettings:
    """`ml-platform serve` (ml_platform/serving.py): gunicorn processes and threads (`--workers`/`--threads`
    override them), and micro-batching: how long a batch waits for requests being parsed, and its rows."""

    workers: int = 2  # each loads the champion; a pod with 1 CPU wants 1-2
    threads: int = 16  # concurrent requests per worker, which micro-batching coalesces
    batch_wait_ms: int = 2  # 0..5: the most a request waits for others to join its batch
    max_batch_rows: int = 256

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServeSettings:
        return cls(
            workers=_int(env, SERVE_WORKERS_ENV, cls.workers, 1, 64),
            threads=_int(env, SERVE_THREADS_ENV, cls.threads, 1, 256),
            batch_wait_ms=_int(env, SERVE_BATCH_WAIT_ENV, cls.batch_wait_ms, 0, 5),
            max_batch_rows=_int(env, SERVE_MAX_BATCH_ENV, cls.max_batch_rows, 1, 10_000),
        )


@dataclass(frozen=True)
class Settings:
    data_dir: Path  # landed files, the Parquet lake and the local MLflow store
    lake_path: str  # the lake's base path; any fsspec URL (e.g. s3://bucket/lake)
    user_specs_dir: Path | None  # the user's own specs, next to the shipped ones
    shipped_use_cases: tuple[str, ...]  # which shipped example use cases load (an image without torch: none of theirs)
    sensor_interval_override: int | None  # seconds between every sensor's ticks (tests, demos)
    automation_running: bool  # default status of schedules and sensors
    dagster_ui_url: str  # links in alerts and MLflow runs
    mlflow_ui_url: str  # links in asset metadata
    environment: str  # `local` or `k8s` (set by the Helm chart's ConfigMap)
    gpu_image: str  # CUDA image for GPU training steps on Kubernetes (empty: the run's own image)
    model_cache_dir: Path | None  # loaded registry models kept on private local disk (None: off; pods start empty)
    model_cache_key_file: Path  # the cache's HMAC key when ML_PLATFORM_MODEL_CACHE_KEY (a secret) is unset
    gpu_node_selector: dict[str, str] = field(default_factory=dict)
    gpu_tolerations: list[dict[str, Any]] = field(default_factory=list)
    serve: ServeSettings = field(default_factory=ServeSettings)
    # This deployment's first partition day, for every use case whose spec starts earlier (the demo's first landed
    # day, so the UI does not list a year of Missing days before it); the specs stay as they are.
    partitions_start: dt.date | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        data_dir = Path(env.get(DATA_DIR_ENV, "data")).resolve()
        specs = env.get(SPECS_DIR_ENV, "").strip()
        return cls(
            data_dir=data_dir,
            lake_path=env.get(LAKE_ENV) or str(data_dir / "lake"),
            user_specs_dir=Path(specs) if specs else None,
            shipped_use_cases=_shipped_use_cases(env),
            sensor_interval_override=_seconds(env, SENSOR_INTERVAL_ENV),
            automation_running=_choice(env, AUTOMATION_ENV, ("stopped", "running")) == "running",
            dagster_ui_url=env.get(UI_URL_ENV, "http://127.0.0.1:3000"),
            mlflow_ui_url=env.get(MLFLOW_UI_URL_ENV, "http://127.0.0.1:5000"),
            environment=_choice(env, ENVIRONMENT_ENV, ("local", KUBERNETES)),
            gpu_image=env.get(GPU_IMAGE_ENV, "").strip(),
            model_cache_dir=_model_cache(env),
            model_cache_key_file=_user_dir(env, "XDG_CONFIG_HOME", ".config") / "ml_platform" / "model_cache.key",
            gpu_node_selector=_json(env, GPU_NODE_SELECTOR_ENV, dict),
            gpu_tolerations=_json(env, GPU_TOLERATIONS_ENV, list),
            serve=ServeSettings.from_env(env),
            partitions_start=_iso_date(env, PARTITIONS_START_ENV),
        )

    @property
    def spec_dirs(self) -> list[Path]:
        """Shipped use cases plus, optionally, a directory of the user's own specs."""
        return [SHIPPED_SPECS_DIR, *([self.user_specs_dir] if self.user_specs_dir else [])]

    @property
    def spec_paths(self) -> list[Path]:
        """The selected shipped specs, then every spec of the user's directory, each directory in name order."""
        shipped = [SHIPPED_SPECS_DIR / f"{name}.yaml" for name in sorted(self.shipped_use_cases)]
        return shipped + (sorted(self.user_specs_dir.glob("*.yaml")) if self.user_specs_dir else [])

    @property
    def on_kubernetes(self) -> bool:
        return self.environment == KUBERNETES

    def sensor_interval(self, default_seconds: int) -> int:
        """A sensor's minimum seconds between ticks: its own default unless overridden for every sensor."""
        return self.sensor_interval_override or default_seconds


def _model_cache(env: Mapping[str, str]) -> Path | None:
    """ML_PLATFORM_MODEL_CACHE: a directory, or `off`; default `<user cache dir>/ml_platform/models`.

    Never the data directory by default: that is the volume every pod shares on Kubernetes, and whoever
    writes a cache entry chooses what the next reader unpickles. The user's cache directory is private to
    the user, and on Kubernetes (HOME=/tmp, the chart's per-pod emptyDir) to the pod."""
    raw = env.get(MODEL_CACHE_ENV)
    if raw is None:
        return _user_dir(env, "XDG_CACHE_HOME", ".cache") / "ml_platform" / "models"
    raw = raw.strip()
    return None if raw.lower() in ("", "off") else Path(raw).resolve()


def _user_dir(env: Mapping[str, str], xdg_variable: str, under_home: str) -> Path:
    """An XDG base directory: the variable if it holds an absolute path (the spec ignores others), else ~/under_home."""
    raw = env.get(xdg_variable, "").strip()
    if raw and Path(raw).is_absolute():
        return Path(raw)
    return Path(env.get("HOME") or Path.home()) / under_home


def _seconds(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise SettingError(f"{name} must be a whole number of seconds >= 1, got '{raw}'")
    return int(raw)


def _iso_date(env: Mapping[str, str], name: str) -> dt.date | None:
    """A calendar day as YYYY-MM-DD; unset or empty is None."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):  # fromisoformat alone also takes 20250101 and 2025-W01-1
            return dt.date.fromisoformat(raw)
    except ValueError:
        pass
    raise SettingError(f"{name} must be a date as YYYY-MM-DD, got '{raw}'")


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """A whole number in [low, high]; unset or empty is `default`."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise SettingError(f"{name} must be a whole number from {low} to {high}, got '{raw}'")
    return int(raw)


def _shipped_use_cases(env: Mapping[str, str]) -> tuple[str, ...]:
    """ML_PLATFORM_SHIPPED_USE_CASES: `all` (unset), `none`, or a comma-separated list of shipped use cases.

    The shipped examples include torch and text model types; an image built without those extras (only
    scikit-learn use cases of its own) loads none or some of them."""
    available = tuple(sorted(path.stem for path in SHIPPED_SPECS_DIR.glob("*.yaml")))
    raw = env.get(SHIPPED_USE_CASES_ENV, "").strip().lower()
    if raw in ("", "all"):
        return available
    if raw == "none":
        return ()
    names = tuple(dict.fromkeys(name.strip() for name in raw.split(",") if name.strip()))
    unknown = [name for name in names if name not in available]
    if unknown or not names:
        raise SettingError(
            f"{SHIPPED_USE_CASES_ENV} must be 'all', 'none' or a comma-separated list of "
            f"{', '.join(available)}; got '{raw}'"
        )
    return names


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    """One of `allowed` (case-insensitive); unset or empty is the first."""
    raw = env.get(name, "").strip().lower() or allowed[0]
    if raw not in allowed:
        raise SettingError(f"{name} must be {' or '.join(repr(a) for a in allowed)}, got '{raw}'")
    return raw


def _json(env: Mapping[str, str], name: str, expected: type) -> Any:
    raw = env.get(name, "").strip()
    if not raw:
        return expected()
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as error:
        raise SettingError(f"{name} must be JSON ({expected.__name__}): {error}") from None
    if not isinstance(value, expected):
        raise SettingError(f"{name} must be a JSON {expected.__name__}, got {type(value).__name__}")
    return value


THREADS_ENV = "ML_PLATFORM_THREADS"
MAX_THREADS = 256


def stage_threads(environ: Mapping[str, str] | None = None, cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """Threads each daily stage (raw events, features, predictions) spreads its days over: ML_PLATFORM_THREADS
    (1..256), else the container's CPU limit (a Kubernetes pod's `resources.limits.cpu`, rounded up), else the
    cores this process may run on. Read per stage run, so a run launched with the variable uses it; the outputs
    are the same for every value."""
    env = os.environ if environ is None else environ
    if env.get(THREADS_ENV, "").strip():
        return _int(env, THREADS_ENV, 1, 1, MAX_THREADS)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    limit = cgroup_cpu_limit(cgroup_root)
    return max(1, min(cores, limit) if limit else cores)


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The cgroup's CPU quota in whole cores, rounded up (cgroup v2 `cpu.max`, else v1 `cpu.cfs_quota_us`);
    None when there is none or it cannot be read (not in a container)."""
    try:
        if (root / "cpu.max").is_file():
            quota, period = (root / "cpu.max").read_text().split()[:2]
        else:
            quota = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        if quota in ("max", "-1") or int(period) <= 0:
            return None
        return max(1, -(-int(quota) // int(period)))
    except (OSError, ValueError):
        return None
