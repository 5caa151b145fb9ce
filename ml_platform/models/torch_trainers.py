"""PyTorch trainers: an MLP classifier (fraud) and a bidirectional GRU forecaster.

Both train on `cuda` when available and the CPU otherwise, are deterministic
under a fixed seed, stop early on a time-based validation split (the latest
days of the training window), and log a self-contained module with
`mlflow.pytorch`: normalisation and the output transform live inside the
module (`portable.torch_modules`, shipped with the model so that it loads
without the platform), so the registered model maps raw feature columns to
scores.

Only `build_trainer` imports this module, so torch is loaded by training runs
alone, never when the code location loads.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch

from ml_platform.models import shipping
from ml_platform.models.base import validation_split
from ml_platform.models.portable import torch_modules

# the module classes under their old name too: models registered before they moved name them here
from ml_platform.models.portable.torch_modules import BiGRUForecaster, StandardizedMLP


def _device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def _seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


class _TorchTrainer:
    flavor = "pytorch"

    def __init__(
        self,
        *,
        epochs: int,
        batch_size: int,
        lr: float,
        patience: int,
        weight_decay: float,
        validation_fraction: float,
        random_state: int,
        device: str,
    ) -> None:
        self.epochs, self.batch_size, self.lr, self.patience = epochs, batch_size, lr, patience
        self.weight_decay, self.validation_fraction, self.seed = weight_decay, validation_fraction, random_state
        self.device = _device(device)
        self.module: Any = None
        self.history: list[float] = []

    def _train(
        self, module: Any, loss_fn: Any, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray
    ) -> Any:
        module = module.to(self.device)
        optimizer = torch.optim.Adam(module.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        x_t, y_t = (torch.tensor(a, dtype=torch.float32, device=self.device) for a in (x, y))
        xv_t, yv_t = (torch.tensor(a, dtype=torch.float32, device=self.device) for a in (x_val, y_val))
        generator = torch.Generator().manual_seed(self.seed)
        best, best_state, stale = float("inf"), copy.deepcopy(module.state_dict()), 0
        for _ in range(self.epochs):
            module.train()
            for batch in torch.split(torch.randperm(len(x_t), generator=generator), self.batch_size):
                batch = batch.to(self.device)
                optimizer.zero_grad()
                loss_fn(module(x_t[batch]), y_t[batch]).backward()
                optimizer.step()
            module.eval()
            with torch.no_grad():
                validation_loss = float(loss_fn(module(xv_t), yv_t))
            self.history.append(validation_loss)
            if validation_loss < best - 1e-6:
                best, best_state, stale = validation_loss, copy.deepcopy(module.state_dict()), 0
            else:
                stale += 1
                if stale >= self.patience:
                    break
        module.load_state_dict(best_state)
        return module.eval()

    def _forward(self, features: pd.DataFrame) -> np.ndarray:
        # wherever the module is now: trained on `self.device`, but on the CPU once `log_model` has moved it there
        device = next(self.module.parameters()).device
        with torch.no_grad():
            x = torch.tensor(features.to_numpy(dtype=np.float32), device=device)
            return self.module(x).cpu().numpy().astype("float64")

    def log_model(self, name: str, input_example: pd.DataFrame, registered_model_name: str) -> Any:
        return log_pytorch_model(self.module.cpu(), name, input_example, registered_model_name, self._forward)


class TorchMLPTrainer(_TorchTrainer):
    """Class-weighted MLP classifier; the decision threshold is chosen on validation, never the holdout."""

    def __init__(
        self,
        hidden: list[int] | tuple[int, ...] = (64, 32),
        epochs: int = 60,
        batch_size: int = 512,
        lr: float = 2e-3,
        patience: int = 6,
        weight_decay: float = 1e-5,
        validation_fraction: float = 0.2,
        random_state: int = 0,
        device: str = "auto",
    ) -> None:
        super().__init__(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            patience=patience,
            weight_decay=weight_decay,
            validation_fraction=validation_fraction,
            random_state=random_state,
            device=device,
        )
        self.hidden = list(hidden)
        self.threshold = 0.5

    def fit(self, features: pd.DataFrame, labels: pd.Series, days: pd.Series) -> TorchMLPTrainer:
        _seed(self.seed)
        train, validation = validation_split(days, self.validation_fraction)
        x, y = features.to_numpy(dtype=np.float32), labels.to_numpy(dtype=np.float32)
        mean, std = x[train].mean(axis=0), x[train].std(axis=0) + 1e-6
        positives = max(float(y[train].sum()), 1.0)
        pos_weight = torch.tensor((len(y[train]) - positives) / positives, device=self.device)
        module = StandardizedMLP(x.shape[1], self.hidden, mean, std)
        module.emit_logits = True
        loss = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        self.module = self._train(module, loss, x[train], y[train], x[validation], y[validation])
        self.module.emit_logits = False
        self.threshold = _best_f1_threshold(y[validation], self._forward(features[validation]))
        return self

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return self._forward(features)


class TorchBiRNNTrainer(_TorchTrainer):
    """Bidirectional GRU over the lag features (most recent first) predicting the next value."""

    threshold = None

    def __init__(
        self,
        hidden: int = 32,
        layers: int = 1,
        epochs: int = 80,
        batch_size: int = 256,
        lr: float = 3e-3,
        patience: int = 8,
        weight_decay: float = 0.0,
        validation_fraction: float = 0.2,
        random_state: int = 0,
        device: str = "auto",
    ) -> None:
        super().__init__(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            patience=patience,
            weight_decay=weight_decay,
            validation_fraction=validation_fraction,
            random_state=random_state,
            device=device,
        )
        self.hidden, self.layers = hidden, layers

    def fit(self, features: pd.DataFrame, labels: pd.Series, days: pd.Series) -> TorchBiRNNTrainer:
        _seed(self.seed)
        train, validation = validation_split(days, self.validation_fraction)
        x, y = features.to_numpy(dtype=np.float32), labels.to_numpy(dtype=np.float32)
        self.module = self._train(
            BiGRUForecaster(self.hidden, self.layers),
            torch.nn.L1Loss(),
            x[train],
            y[train],
            x[validation],
            y[validation],
        )
        return self

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return self._forward(features)


def _best_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The score cut that maximises F1 on the given (validation) rows."""
    order = np.argsort(-scores, kind="stable")
    true_positives = np.cumsum(labels[order] == 1)
    flagged = np.arange(1, len(order) + 1)
    f1 = 2 * true_positives / (flagged + max(int((labels == 1).sum()), 1))
    return float(scores[order][int(np.argmax(f1))]) if len(order) else 0.5


def log_pytorch_model(
    module: Any,
    name: str,
    input_example: pd.DataFrame,
    registered_model_name: str,
    predict: Callable[[pd.DataFrame], np.ndarray],
) -> Any:
    import mlflow
    import mlflow.pytorch
    from mlflow.models import infer_signature

    signature = infer_signature(input_example.astype("float64"), predict(input_example))
    with shipping.portable_code(torch_modules) as code_paths:
        return mlflow.pytorch.log_model(
            module,
            name=name,
            signature=signature,
            input_example=input_example.astype("float64"),
            registered_model_name=registered_model_name,
            # pickle keeps the GRU and buffers as they are (torch.export's pt2 format would re-trace them);
            # the pickle names the module classes, shipped with the model
            serialization_format="pickle",
            code_paths=code_paths,
            pip_requirements=shipping.pinned(shipping.TORCH_REQUIREMENTS),
        )
