"""The Dagster instance settings every environment shares, and how the Helm chart spells them.

The repo's dagster.yaml (embedded default) is the source of truth for the run queue, run and pool
limits, run monitoring and run retries. `deploy/dagster-postgres.yaml` repeats those sections on
Postgres, and on Kubernetes the official Dagster chart renders `dagster.yaml` from its values
(`dagsterDaemon.runCoordinator`, `.runMonitoring`, `.runRetries`, `.sensors`, `concurrency`,
`telemetry`, `pythonLogs`; `freshness` has no chart value and goes through `additionalInstanceConfig`).
`chart_values_for` translates the shared sections into those chart values and
`instance_sections_from_chart_values` translates back, following the chart's
`configmap-instance.yaml`, so the deployment tests can hold all three to one definition.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

# Sections that must be identical in every environment (storage and launcher differ on purpose).
SHARED_SECTIONS = (
    "run_coordinator",
    "concurrency",
    "run_monitoring",
    "run_retries",
    "telemetry",
    "sensors",
    "python_logs",
    "freshness",
)

# Environment variables of the Postgres instance: the names the Dagster Helm chart uses.
POSTGRES_ENV = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_DB", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD")

# Kubernetes-only settings: K8sRunLauncher can resume a run whose pod died, the default launcher cannot.
K8S_ONLY_RUN_MONITORING = ("max_resume_run_attempts",)

_QUEUE_KEYS = {"dequeue_interval_seconds": "dequeueIntervalSeconds"}
_RUN_LIMIT_KEYS = {"max_concurrent_runs": "maxConcurrentRuns", "tag_concurrency_limits": "tagConcurrencyLimits"}
_POOL_KEYS = {
    "default_limit": "defaultLimit",
    "granularity": "granularity",
    "op_granularity_run_buffer": "opGranularityRunBuffer",
}
_MONITORING_KEYS = {
    "enabled": "enabled",
    "start_timeout_seconds": "startTimeoutSeconds",
    "cancel_timeout_seconds": "cancelTimeoutSeconds",
    "poll_interval_seconds": "pollIntervalSeconds",
    "max_resume_run_attempts": "maxResumeRunAttempts",
}
_SENSOR_KEYS = {"use_threads": "useThreads", "num_workers": "numWorkers"}
_PYTHON_LOGS_KEYS = {"python_log_level": "pythonLogLevel"}
_RETRY_KEYS = {
    "enabled": "enabled",
    "max_retries": "maxRetries",
    "retry_on_asset_or_op_failure": "retryOnAssetOrOpFailure",
}
# Dagster's QueuedRunCoordinator plus backfill lanes; the Helm chart renders it as a CustomRunCoordinator.
RUN_COORDINATOR = ("ml_platform.run_coordinator", "BackfillLaneRunCoordinator")


def postgres_env(url: sa.URL) -> dict[str, str]:
    """The POSTGRES_ENV variables of a database URL, as a deployment sets them."""
    return {
        "DAGSTER_PG_HOST": url.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(url.port or 5432),
        "DAGSTER_PG_DB": url.database or "",
        "DAGSTER_PG_USERNAME": url.username or "postgres",
        "DAGSTER_PG_PASSWORD": url.password or "",
    }


def load_instance_config(path: str | Path) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text()) or {}


def shared_sections(config: Mapping[str, Any]) -> dict[str, Any]:
    """The sections of an instance config that must not differ between environments."""
    sections = {name: config.get(name) for name in SHARED_SECTIONS}
    monitoring = dict(sections["run_monitoring"] or {})
    for key in K8S_ONLY_RUN_MONITORING:
        monitoring.pop(key, None)
    sections["run_monitoring"] = monitoring
    return sections


def chart_values_for(config: Mapping[str, Any]) -> dict[str, Any]:
    """The Dagster Helm chart values that render `config`'s queue, concurrency, monitoring, retry, sensor,
    telemetry and python-log sections."""
    coordinator = config["run_coordinator"]
    if (coordinator["module"], coordinator["class"]) != RUN_COORDINATOR:
        raise ValueError(f"expected {'.'.join(RUN_COORDINATOR)}, got {coordinator['module']}.{coordinator['class']}")
    queue = coordinator.get("config", {})
    concurrency = config.get("concurrency", {})
    return {
        "dagsterDaemon": {
            "runCoordinator": {
                "enabled": True,
                "type": "CustomRunCoordinator",
                "config": {
                    "customRunCoordinator": {
                        "module": RUN_COORDINATOR[0],
                        "class": RUN_COORDINATOR[1],
                        "config": _rename(queue, {key: key for key in _QUEUE_KEYS}),
                    }
                },
            },
            "runMonitoring": _rename(config.get("run_monitoring", {}), _MONITORING_KEYS),
            "runRetries": _rename(config.get("run_retries", {}), _RETRY_KEYS),
            "sensors": _rename(config.get("sensors", {}), _SENSOR_KEYS),
        },
        "concurrency": {
            "enabled": bool(concurrency),
            "runs": _rename(concurrency.get("runs", {}), _RUN_LIMIT_KEYS),
            "pools": _rename(concurrency.get("pools", {}), _POOL_KEYS),
        },
        "telemetry": {"enabled": bool(config.get("telemetry", {}).get("enabled", True))},
        "pythonLogs": _rename(config.get("python_logs", {}), _PYTHON_LOGS_KEYS),
        "additionalInstanceConfig": {"freshness": config["freshness"]} if "freshness" in config else {},
    }


def instance_sections_from_chart_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """What the Dagster chart writes into dagster.yaml for these sections (its configmap-instance template,
    `concurrency:` from helpers/instance/_concurrency.tpl only when `concurrency.enabled`)."""
    daemon = values["dagsterDaemon"]
    custom = daemon["runCoordinator"]["config"]["customRunCoordinator"]
    concurrency = values.get("concurrency", {})
    return {
        "run_coordinator": {
            "module": custom["module"],
            "class": custom["class"],
            "config": _rename(custom.get("config") or {}, {key: key for key in _QUEUE_KEYS}),
        },
        "run_monitoring": _rename(daemon["runMonitoring"], {v: k for k, v in _MONITORING_KEYS.items()}),
        "run_retries": _rename(daemon["runRetries"], {v: k for k, v in _RETRY_KEYS.items()}),
        "sensors": _rename(daemon["sensors"], {v: k for k, v in _SENSOR_KEYS.items()}),
        "concurrency": {
            name: section
            for name, keys in (("runs", _RUN_LIMIT_KEYS), ("pools", _POOL_KEYS))
            if (section := _rename(concurrency.get(name, {}), {v: k for k, v in keys.items()}))
        }
        if concurrency.get("enabled")
        else None,
        "telemetry": {"enabled": values.get("telemetry", {}).get("enabled", True)},
        "python_logs": _rename(values.get("pythonLogs", {}), {v: k for k, v in _PYTHON_LOGS_KEYS.items()}),
        "freshness": (values.get("additionalInstanceConfig") or {}).get("freshness"),
    }


def _rename(section: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    return {names[key]: value for key, value in section.items() if key in names and value is not None}


def max_concurrent_runs(config: Mapping[str, Any]) -> int:
    """How many runs the queue lets run at once."""
    return int(config["concurrency"]["runs"]["max_concurrent_runs"])


def tag_limit(config: Mapping[str, Any], key: str, value: str) -> int | None:
    """The queue's concurrency limit for runs tagged `key=value`, if there is one."""
    for limit in config["concurrency"]["runs"].get("tag_concurrency_limits", []):
        if limit["key"] == key and limit.get("value") == value:
            return int(limit["limit"])
    return None
