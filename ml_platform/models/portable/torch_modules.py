"""The PyTorch modules of the `torch_mlp` and `torch_birnn` model types: normalisation and the output
transform live inside the module, so the registered model maps raw feature columns to scores."""

from __future__ import annotations

import numpy as np
import torch


class StandardizedMLP(torch.nn.Module):
    """Standardize -> MLP -> probability of the positive class (logits while training)."""

    mean: torch.Tensor  # buffers (saved with the model, moved with it to a device)
    std: torch.Tensor

    def __init__(self, n_inputs: int, hidden: list[int], mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
        layers: list[torch.nn.Module] = []
        width = n_inputs
        for size in hidden:
            layers += [torch.nn.Linear(width, size), torch.nn.ReLU()]
            width = size
        layers.append(torch.nn.Linear(width, 1))
        self.net = torch.nn.Sequential(*layers)
        self.emit_logits = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net((x - self.mean) / self.std).squeeze(-1)
        return logits if self.emit_logits else torch.sigmoid(logits)


class BiGRUForecaster(torch.nn.Module):
    """Lags (most recent first) -> relative changes -> bidirectional GRU -> next value."""

    def __init__(self, hidden: int, layers: int) -> None:
        super().__init__()
        self.rnn = torch.nn.GRU(1, hidden, num_layers=layers, batch_first=True, bidirectional=True)
        self.head = torch.nn.Linear(2 * hidden, 1)

    def forward(self, lags: torch.Tensor) -> torch.Tensor:
        last = lags[:, :1]
        relative = (lags / last - 1.0).flip(1).unsqueeze(-1)  # chronological order
        encoded, _ = self.rnn(relative)
        change = self.head(encoded[:, -1, :]).squeeze(-1)
        return last.squeeze(-1) * (1.0 + change)
