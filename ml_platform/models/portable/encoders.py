"""Category encodings that live inside a scikit-learn model: the frequency encoder and the conversion of
category columns to Python objects (scikit-learn's own encoders do the rest)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

MISSING = "\x00missing"  # a missing value, counted as a value of its own


class FrequencyEncoder(TransformerMixin, BaseEstimator):
    """Each value's share of the training rows (a missing value is a value too); unseen values get 0."""

    def fit(self, X: Any, y: Any = None) -> FrequencyEncoder:
        frame = _with_missing_as_value(pd.DataFrame(X))
        self.shares_ = [frame[column].value_counts(normalize=True).to_dict() for column in frame.columns]
        self.n_features_in_ = frame.shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray:
        frame = _with_missing_as_value(pd.DataFrame(X))
        return np.column_stack(
            [
                frame[column].map(shares).fillna(0.0).to_numpy(dtype=float)
                for column, shares in zip(frame.columns, self.shares_, strict=True)
            ]
        )

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(
            [f"{name}_frequency" for name in (input_features if input_features is not None else [])], dtype=object
        )


def as_objects(X: Any) -> pd.DataFrame:
    """Category columns as Python objects with NaN for missing (scikit-learn's encoders do not take pd.NA)."""
    frame = pd.DataFrame(X)
    return frame.astype(object).where(frame.notna(), np.nan)


def _with_missing_as_value(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype(object).where(frame.notna(), MISSING)
