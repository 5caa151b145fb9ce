"""Bad data as an upstream system would deliver it, written into a test's lake copy."""

from __future__ import annotations

import numpy as np

from ml_platform.assets import keys
from ml_platform.io.parquet_lake import DataLake
from ml_platform.spec import UseCaseSpec


def scramble_labels(lake: DataLake, spec: UseCaseSpec, seed: int = 0) -> None:
    """Permute the label column across every stored raw day: labels that no longer carry any signal,
    so any model trained on them must fail its thresholds."""
    key = keys.raw_events(spec)
    days = lake.existing_partitions(key)
    frames = [lake.read(key, [day]) for day in days]
    labels = np.random.default_rng(seed).permutation(np.concatenate([f[spec.label.column].to_numpy() for f in frames]))
    offset = 0
    for day, frame in zip(days, frames, strict=True):
        frame[spec.label.column] = labels[offset : offset + len(frame)]
        lake.write_partition(key, day, frame)
        offset += len(frame)
