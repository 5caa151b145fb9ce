"""Category encodings inside the model: fitted on training rows only, and target encoding never sees a
row's own label (it cross-fits)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml_platform.models.encoders import FrequencyEncoder, category_encoder


def test_target_encoding_of_a_training_row_never_uses_its_own_label() -> None:
    """Every row its own category: an encoder that saw the row's label would reproduce the label exactly."""
    labels = np.tile([0, 1], 200)
    frame = pd.DataFrame({"merchant": [f"m{i}" for i in range(len(labels))]}, dtype="string")
    encoded = category_encoder({"merchant": ("target", 20)}, seed=0).fit_transform(frame, labels)
    assert encoded.shape == (len(labels), 1)
    assert np.all((encoded[:, 0] > 0.3) & (encoded[:, 0] < 0.7)), "out-of-fold: only other rows' labels"
    assert abs(encoded[labels == 1, 0].mean() - encoded[labels == 0, 0].mean()) < 0.05


def test_one_hot_keeps_the_top_k_values_plus_other_and_unseen_values_go_to_other() -> None:
    train = pd.DataFrame({"carrier": ["a"] * 5 + ["b"] * 4 + ["c"] * 2 + ["d"]}, dtype="string")
    encoder = category_encoder({"carrier": ("one_hot", 2)}, seed=0).fit(train, np.zeros(len(train)))
    assert list(encoder.get_feature_names_out()) == ["carrier_a", "carrier_b", "carrier_infrequent_sklearn"]
    scored = encoder.transform(pd.DataFrame({"carrier": ["a", "zz", pd.NA]}, dtype="string"))
    assert scored.tolist() == [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]


def test_frequency_is_the_training_share_missing_counts_as_a_value_and_unseen_is_zero() -> None:
    train = pd.DataFrame({"channel": ["pos", "pos", "online", None]}, dtype="string")
    encoder = FrequencyEncoder().fit(train)
    scored = encoder.transform(pd.DataFrame({"channel": ["pos", "online", "atm", None]}, dtype="string"))
    assert scored[:, 0].tolist() == [0.5, 0.25, 0.0, 0.25]


def test_other_columns_pass_through_unchanged() -> None:
    frame = pd.DataFrame({"carrier": pd.array(["a", "b", "a"], dtype="string"), "amount": [1.5, 2.5, 3.5]})
    encoded = category_encoder({"carrier": ("frequency", 20)}, seed=0).fit_transform(frame, np.array([0, 1, 0]))
    assert encoded[:, -1].tolist() == [1.5, 2.5, 3.5]
