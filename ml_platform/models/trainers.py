"""The spec's model type -> its trainer. scikit-learn and torch are imported only here, when a
trainer is built, so loading the code location stays cheap."""

from __future__ import annotations

from typing import Any

from ml_platform.models.base import Trainer


def build_trainer(model_type: str, params: dict[str, Any], categories: dict[str, tuple[str, int]] | None = None) -> Trainer:
    """The trainer of `model_type`; `categories` (feature -> (encoding, top_k)) are encoded inside the model."""
    if model_type == "sklearn_random_forest":
        from ml_platform.models.sklearn_trainers import SklearnRandomForestTrainer

        return SklearnRandomForestTrainer(categories, **params)
    from ml_platform.models import torch_trainers

    trainers = {"torch_mlp": torch_trainers.TorchMLPTrainer, "torch_birnn": torch_trainers.TorchBiRNNTrainer}
    return trainers[model_type](**params)
