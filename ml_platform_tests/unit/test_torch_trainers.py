"""PyTorch trainers on a GPU node: trained on `cuda` (`device: auto`), logged and scored from the CPU.

`log_model` moves the module to the CPU (the registered model loads where serving runs); scoring after
that, the input example's signature included, must follow the module there, not the training device.
The CPU test stands in for a GPU (a trainer whose training device is `cuda`, its module on the CPU, as
after a GPU fit); the second runs the real thing where CUDA is available.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ml_platform.models import torch_trainers
from ml_platform.models.torch_trainers import TorchMLPTrainer


@pytest.fixture
def frame() -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    rng = np.random.default_rng(0)
    features = pd.DataFrame(rng.normal(size=(400, 3)), columns=["a", "b", "c"])
    labels = (features["a"] + 0.3 * rng.normal(size=400) > 0.8).astype("int64")
    days = pd.Series(np.repeat([f"2025-01-{day:02d}" for day in range(1, 9)], 50))
    return features, labels, days


def _log_and_score(trainer: TorchMLPTrainer, features: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> dict:
    logged: dict = {}

    def log_pytorch_model(module, name, input_example, registered_model_name, predict):
        logged["device"] = next(module.parameters()).device.type
        logged["scores"] = predict(input_example)  # what MLflow's signature is inferred from

    monkeypatch.setattr(torch_trainers, "log_pytorch_model", log_pytorch_model)
    trainer.log_model("model", features.head(5), registered_model_name="fraud")
    return logged


def test_a_model_trained_on_a_gpu_is_logged_and_scores_on_the_cpu(frame, monkeypatch: pytest.MonkeyPatch) -> None:
    features, labels, days = frame
    trainer = TorchMLPTrainer(hidden=[8], epochs=3, device="cpu").fit(features, labels, days)
    before = trainer.predict(features)
    trainer.device = "cuda"  # as after a fit on a GPU node: the trainer's device is cuda
    logged = _log_and_score(trainer, features, monkeypatch)
    assert logged["device"] == "cpu"
    np.testing.assert_allclose(logged["scores"], before[:5])
    np.testing.assert_allclose(trainer.predict(features), before)  # the holdout can still be scored after logging


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fit_then_log_and_score_on_the_cpu(frame, monkeypatch: pytest.MonkeyPatch) -> None:
    features, labels, days = frame
    trainer = TorchMLPTrainer(hidden=[8], epochs=3, device="auto").fit(features, labels, days)
    assert trainer.device == "cuda" and next(trainer.module.parameters()).is_cuda
    before = trainer.predict(features)
    logged = _log_and_score(trainer, features, monkeypatch)
    assert logged["device"] == "cpu"
    np.testing.assert_allclose(logged["scores"], before[:5], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(trainer.predict(features), before, rtol=1e-5, atol=1e-6)
