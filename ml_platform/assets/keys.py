"""Asset keys of a use case: every key is prefixed by the use-case name."""

from __future__ import annotations

import dagster as dg

from ml_platform.spec import UseCaseSpec


def raw_events(spec: UseCaseSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.name, "raw_events"])


def features(spec: UseCaseSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.name, "features"])


def training_set(spec: UseCaseSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.name, "training_set"])


def model(spec: UseCaseSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.name, "model"])


def champion(spec: UseCaseSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.name, "champion"])


def predictions(spec: UseCaseSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.name, "predictions"])


def drift(spec: UseCaseSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.name, "drift"])


def report(spec: UseCaseSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.name, "report"])


def shadow_predictions(spec: UseCaseSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.name, "shadow_predictions"])


def shadow_comparison(spec: UseCaseSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.name, "shadow_comparison"])


def performance(spec: UseCaseSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.name, "performance"])


STAGES = {
    "raw_events": raw_events,
    "features": features,
    "training_set": training_set,
    "model": model,
    "champion": champion,
    "predictions": predictions,
    "drift": drift,
    "report": report,
    "performance": performance,
    "shadow_predictions": shadow_predictions,
    "shadow_comparison": shadow_comparison,
}


def of_stage(spec: UseCaseSpec, stage: str) -> dg.AssetKey:
    """The asset key of a named stage of the use case; a ValueError naming the stages for anything else."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage '{stage}', expected one of {list(STAGES)}")
    return STAGES[stage](spec)
