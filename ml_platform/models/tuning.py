"""Hyperparameter search without Dagster: candidates from the spec's space, each scored by time-ordered
cross-validation over the training days, so no fold ever trains on days after the ones it is judged on."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml_platform.features.compute import DAY
from ml_platform.models.metrics import metric_value
from ml_platform.models.trainers import build_trainer
from ml_platform.models.training_set import NotEnoughHistory
from ml_platform.spec import LOWER_IS_BETTER, UseCaseSpec


@dataclass(frozen=True)
class Trial:
    number: int
    params: dict[str, Any]
    fold_scores: list[float]

    @property
    def score(self) -> float:
        return float(np.mean(self.fold_scores))


def candidates(space: dict[str, list[Any]], trials: int, seed: int) -> list[dict[str, Any]]:
    """Every combination when there are at most `trials`, else `trials` of them sampled under `seed`."""
    names = sorted(space)
    combinations = [dict(zip(names, values, strict=True)) for values in itertools.product(*(space[n] for n in names))]
    if len(combinations) <= trials:
        return combinations
    return random.Random(seed).sample(combinations, trials)


def time_folds(days: Sequence[str], folds: int, purge_days: int) -> list[tuple[list[str], list[str]]]:
    """(training days, validation days) per fold: the days in order cut into `folds` + 1 blocks; fold i
    validates on block i and trains on the blocks before it, minus the `purge_days` days right before the
    validation block (their labels look into it)."""
    ordered = sorted(set(days))
    blocks = [list(block) for block in np.array_split(np.array(ordered, dtype=object), folds + 1)]
    out = []
    for index in range(1, folds + 1):
        validation = blocks[index]
        if not validation:
            continue
        cutoff = np.datetime64(validation[0]) - np.timedelta64(purge_days, "D")
        train = [day for block in blocks[:index] for day in block if np.datetime64(day) < cutoff]
        if train:
            out.append((train, validation))
    if len(out) < folds:
        raise NotEnoughHistory(
            f"{len(ordered)} training day(s) are too few for {folds} time-ordered folds with a "
            f"{purge_days}-day purge: lower training.tuning.folds or widen training.window_days"
        )
    return out


def tune(
    spec: UseCaseSpec, train: pd.DataFrame, base_params: dict[str, Any], categories: dict[str, tuple[str, int]]
) -> tuple[dict[str, Any], list[Trial]]:
    """The best parameters (base params updated by the best candidate) and every trial, in order."""
    tuning = spec.training.tuning
    assert tuning is not None
    folds = time_folds(list(train[DAY].unique()), tuning.folds, spec.label.horizon_days)
    metric = spec.gates.compare_metric
    started, trials = time.monotonic(), list[Trial]()
    for number, candidate in enumerate(candidates(tuning.space, tuning.trials, spec.training.seed)):
        if trials and time.monotonic() - started > tuning.max_minutes * 60:
            break
        params = {**base_params, **candidate}
        scores = [_fold_score(spec, train, params, categories, fold, metric) for fold in folds]
        trials.append(Trial(number, params, scores))
    lower = metric in LOWER_IS_BETTER
    best = min(trials, key=lambda t: t.score) if lower else max(trials, key=lambda t: t.score)
    return best.params, trials


def _fold_score(
    spec: UseCaseSpec,
    train: pd.DataFrame,
    params: dict[str, Any],
    categories: dict[str, tuple[str, int]],
    fold: tuple[list[str], list[str]],
    metric: str,
) -> float:
    fit_days, validation_days = fold
    fit, validation = train[train[DAY].isin(fit_days)], train[train[DAY].isin(validation_days)]
    trainer = build_trainer(spec.model.type, params, categories).fit(fit[spec.feature_names], fit["label"], fit[DAY])
    scores = trainer.predict(validation[spec.feature_names])
    naive = validation[spec.label.naive_feature].to_numpy() if spec.label.naive_feature else None
    return metric_value(metric, validation["label"].to_numpy(), scores, trainer.threshold, naive)
