"""The spec's model type -> its trainer. scikit-learn, torch and sentence-transformers are imported only
here, when a trainer is built, so loading the code location stays cheap."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ml_platform.models.base import Trainer


def build_trainer(
    model_type: str,
    params: dict[str, Any],
    categories: dict[str, tuple[str, int]] | None = None,
    classes: Sequence[str] = (),
) -> Trainer:
    """The trainer of `model_type`; `categories` (feature -> (encoding, top_k)) are encoded inside the model;
    `classes`: a multiclass label's classes, in the order of the model's probability columns."""
    if model_type == "pretrained_text":
        from ml_platform.models.text_trainers import PretrainedTextTrainer

        return PretrainedTextTrainer(classes, **params)
    if model_type == "sklearn_random_forest":
        from ml_platform.models.sklearn_trainers import SklearnRandomForestTrainer

        return SklearnRandomForestTrainer(categories, **params)
    from ml_platform.models import torch_trainers

    trainers = {"torch_mlp": torch_trainers.TorchMLPTrainer, "torch_birnn": torch_trainers.TorchBiRNNTrainer}
    return trainers[model_type](**params)
