"""The training set without Dagster: which days to train and hold out, and the labelled frame.

The window is the latest `training.window_days` label-complete feature days after the warm-up
(days whose feature windows reach before the first raw day are never trained on); its last
`holdout_days` are the time-based holdout, separated from the training days by a purge gap of the
label horizon, so no training label overlaps a holdout day.

Under `source.missing_days: empty` the window and the holdout count days with events: a day without
events has no feature rows, so a holdout of weekend days would hold nothing to evaluate on. The purge
gap stays in calendar days, as the label horizon is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml_platform.features.compute import DAY, compute_labels, first_complete_day, label_input_days
from ml_platform.io.parquet_lake import DataLake
from ml_platform.spec import UseCaseSpec


class NotEnoughHistory(ValueError):
    """Too few label-complete feature days to train; the message says how many are needed."""


@dataclass(frozen=True)
class TrainingWindow:
    train: list[str]
    holdout: list[str]

    @property
    def days(self) -> list[str]:
        return [*self.train, *self.holdout]


def choose_window(
    spec: UseCaseSpec,
    raw_days: Sequence[str],
    feature_days: Sequence[str],
    without_events: Collection[str] = (),
) -> TrainingWindow:
    """Training and holdout days from what the lake holds; `NotEnoughHistory` if they do not fit. Days
    `without_events` (`steps.days_without_events`) are stored but add no rows: they are not counted."""
    raw, skipped = set(raw_days), set(without_events)
    warm = first_complete_day(spec, sorted(raw))
    complete = [
        day
        for day in feature_days
        if warm is not None
        and day >= warm
        and day not in skipped
        and all(later in raw for later in label_input_days(spec, [day]))
    ]
    training = spec.training
    window = complete[-training.window_days :]
    holdout = window[-training.holdout_days :]
    purge_start = (
        (dt.date.fromisoformat(holdout[0]) - dt.timedelta(days=spec.label.horizon_days)).isoformat() if holdout else ""
    )
    train = [day for day in window if day < purge_start]
    if not train or len(holdout) < training.holdout_days:
        raise NotEnoughHistory(
            f"{spec.name}: not enough label-complete feature days after the {spec.lookback_days - 1}-day warm-up "
            f"to train: have {len(complete)}, need at least "
            f"{training.holdout_days + spec.label.horizon_days + 1} (holdout + purge gap + 1)"
        )
    return TrainingWindow(train, holdout)


def assemble(
    lake: DataLake, spec: UseCaseSpec, features_key: Any, raw_key: Any, window: TrainingWindow
) -> tuple[pd.DataFrame, int]:
    """The window's features with their labels and a `split` column, and how many rows had no label.
    Rows whose outcome is unknown are left out of training and holdout (they are still scored every day);
    the training rows are sampled down to `training.max_rows` (the holdout is never sampled)."""
    frame = lake.read(features_key, window.days)
    label_columns = sorted({*spec.key_columns, spec.timestamp_column, spec.label.column})
    events = lake.read(raw_key, label_input_days(spec, window.days), columns=label_columns, missing_ok=True)
    frame["label"] = compute_labels(events, spec, frame)
    labelled = frame["label"].notna()
    frame = frame[labelled].reset_index(drop=True)
    frame["split"] = np.where(frame[DAY].isin(window.holdout), "holdout", "train")
    for split in ("train", "holdout"):  # a model needs both; say so here rather than let the trainer crash on none
        if not (frame["split"] == split).any():
            days = window.train if split == "train" else window.holdout
            raise NotEnoughHistory(
                f"{spec.name}: no labelled row in the {split} days {days[0]}..{days[-1]} "
                f"({int((~labelled).sum())} row(s) of the window have an unknown outcome); "
                "land more days with known outcomes"
            )
    is_train = frame["split"] == "train"
    if is_train.sum() > spec.training.max_rows:
        keep = frame[is_train].sample(spec.training.max_rows, random_state=spec.training.seed).index
        frame = frame[~is_train | frame.index.isin(keep)].reset_index(drop=True)
    return frame, int((~labelled).sum())
