"""Category encodings fitted on the training rows and kept inside the model, so scoring encodes exactly
as training did: one-hot of the top-k values plus "other", frequency, and out-of-fold target mean.

The platform-made parts of a fitted encoder live in `portable.encoders` (shipped with the model); their
names here stay for models registered before they moved, whose files name this module."""

from __future__ import annotations

from typing import Any

from ml_platform.models.portable.encoders import MISSING, FrequencyEncoder, as_objects

__all__ = ["MISSING", "FrequencyEncoder", "as_objects", "category_encoder"]


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
        remainder="passthrough",
        verbose_feature_names_out=False,
    )
