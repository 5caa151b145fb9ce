"""Category encodings fitted on the training rows and kept inside the model, so scoring encodes exactly
as training did: one-hot of the top-k values plus "other", frequency, and out-of-fold target mean."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin


MISSING = "\x00missing"  # a missing value, counted as a value of its own


class FrequencyEncoder(TransformerMixin, BaseEstimator):
    """Each value's share of the training rows (a missing value is a value too); unseen values get 0."""

    def fit(self, X: Any, y: Any = None) -> FrequencyEncoder:  # noqa: N803 - scikit-learn's argument names
        frame = _with_missing_as_value(pd.DataFrame(X))
        self.shares_ = [frame[column].value_counts(normalize=True).to_dict() for column in frame.columns]
        self.n_features_in_ = frame.shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray:  # noqa: N803
        frame = _with_missing_as_value(pd.DataFrame(X))
        return np.column_stack([
            frame[column].map(lambda value, shares=shares: shares.get(value, 0.0)).to_numpy(dtype=float)
            for column, shares in zip(frame.columns, self.shares_, strict=True)
        ])

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([f"{name}_frequency" for name in (input_features if input_features is not None else [])], dtype=object)


def as_objects(X: Any) -> pd.DataFrame:  # noqa: N803
    """Category columns as Python objects with NaN for missing (scikit-learn's encoders do not take pd.NA)."""
    return _as_objects(pd.DataFrame(X))


def _as_objects(frame: pd.DataFrame) -> pd.DataFrame:
    converted = frame.astype(object)
    return converted.where(frame.notna(), np.nan)


def _with_missing_as_value(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype(object).where(frame.notna(), MISSING)


def category_encoder(encodings: dict[str, tuple[str, int]], seed: int) -> Any:
    """A ColumnTransformer encoding each category column by its spec (`encoding`, `top_k`); every other
    column passes through unchanged. Target encoding cross-fits, so a training row's own label never
    shapes its encoding."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, TargetEncoder

    def encoder(encoding: str, top_k: int) -> Any:
        if encoding == "one_hot":
            return OneHotEncoder(max_categories=top_k + 1, handle_unknown="infrequent_if_exist", sparse_output=False)
        if encoding == "target":
            return TargetEncoder(target_type="binary", random_state=seed)
        return FrequencyEncoder()

    objects = FunctionTransformer(as_objects, feature_names_out="one-to-one")
    return ColumnTransformer(
        [(name, make_pipeline(objects, encoder(*spec)), [name]) for name, spec in encodings.items()],
        remainder="passthrough", verbose_feature_names_out=False,
    )
