"""Who is champion: MLflow registry aliases, moved only through `change_champion`.

Every change (a gated promotion by training, a forced promotion, a rollback)
goes through one function, so every champion version carries the same audit
tags: what happened, why, by whom, when, and which version it replaced.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ml_platform.resources.mlflow_resource import (
    CHAMPION,
    PREVIOUS_CHAMPION,
    MlflowResource,
    RegistryUnavailable,
    does_not_exist,
)

Action = Literal["promoted", "forced_promotion", "promoted_on_live_evidence", "rolled_back"]


@dataclass(frozen=True)
class ChampionChange:
    champion: str
    previous: str | None
    action: Action
    reason: str
    actor: str
    at: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def change_champion(
    mlflow: MlflowResource, model_name: str, version: str, action: Action, reason: str, actor: str
) -> ChampionChange:
    """Point the champion alias at `version`; the replaced version keeps the previous_champion alias."""
    if not reason.strip():
        raise ValueError(f"{model_name}: a champion change needs a reason (it is recorded on the version)")
    client = mlflow.client()
    registered, previous = promotable_version(mlflow, model_name, version)
    if previous is not None:
        client.set_registered_model_alias(model_name, PREVIOUS_CHAMPION, previous)
    client.set_registered_model_alias(model_name, CHAMPION, str(registered.version))
    change = ChampionChange(
        champion=str(registered.version),
        previous=previous,
        action=action,
        reason=reason.strip(),
        actor=actor,
        at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    for name, value in {
        "champion_action": action,
        "champion_reason": change.reason,
        "champion_by": actor,
        "champion_since": change.at,
        "champion_replaced": previous or "none",
    }.items():
        client.set_model_version_tag(model_name, change.champion, name, value)
    return change


def promotable_version(mlflow: MlflowResource, model_name: str, version: str) -> tuple[Any, str | None]:
    """The registry entry of `version` and the current champion's version; a ValueError if it cannot become champion."""
    registered = registered_version(mlflow, model_name, version)
    current = mlflow.version_by_alias(model_name, CHAMPION)
    previous = str(current.version) if current is not None else None
    if previous == str(registered.version):
        raise ValueError(f"{model_name}: version {version} is already the champion")
    return registered, previous


def rollback_target(mlflow: MlflowResource, model_name: str, to_version: str | None) -> str:
    """The version a rollback restores: `to_version` if it has been trusted before, else the previous champion."""
    if not to_version:
        previous = mlflow.version_by_alias(model_name, PREVIOUS_CHAMPION)
        if previous is None:
            raise ValueError(f"{model_name}: no '{PREVIOUS_CHAMPION}' alias to roll back to; pass a version with --to")
        return str(previous.version)
    tags = registered_version(mlflow, model_name, to_version).tags
    if tags.get("gates") != "passed" and "champion_since" not in tags:
        raise ValueError(
            f"{model_name}: version {to_version} never passed its gates nor served as champion; "
            "force it with `ml-platform promote` if you mean it"
        )
    return to_version


def registered_version(mlflow: MlflowResource, model_name: str, version: str) -> Any:
    """The registry entry of `version`, or a ValueError naming the versions that exist."""
    from mlflow.exceptions import MlflowException

    client = mlflow.client()
    try:
        return client.get_model_version(model_name, str(version))
    except MlflowException as error:
        if not does_not_exist(error):
            raise RegistryUnavailable(
                mlflow.resolved_tracking_uri(), f"version {version} of '{model_name}'", error
            ) from error
    try:
        existing = sorted(int(v.version) for v in client.search_model_versions(f"name='{model_name}'"))
    except MlflowException as error:
        raise RegistryUnavailable(mlflow.resolved_tracking_uri(), f"versions of '{model_name}'", error) from error
    raise ValueError(f"{model_name}: no registered version '{version}' (versions: {existing or 'none'})")
