"""Tuning: candidates are deterministic under the seed, and the time-ordered folds never train on days
at or after the ones they validate on (the label horizon purged in between)."""

from __future__ import annotations

import datetime as dt

import pytest

from ml_platform.definitions import load_specs
from ml_platform.models.tuning import candidates, time_folds
from ml_platform.spec import UseCaseSpec

DAYS = [(dt.date(2025, 1, 1) + dt.timedelta(days=i)).isoformat() for i in range(20)]


def test_folds_train_strictly_before_validation_with_the_horizon_purged() -> None:
    folds = time_folds(DAYS, folds=3, purge_days=2)
    assert len(folds) == 3
    for train, validation in folds:
        assert max(train) < min(validation)
        gap = (dt.date.fromisoformat(min(validation)) - dt.date.fromisoformat(max(train))).days
        assert gap > 2, "the purge keeps labels that look into the validation days out of training"
    assert [len(train) for train, _ in folds] == sorted(len(train) for train, _ in folds), "expanding windows"
    assert sorted({day for _, validation in folds for day in validation}) == sorted(set(DAYS) - set(DAYS[:5]))


def test_too_few_days_for_the_folds_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="too few for 5 time-ordered folds"):
        time_folds(DAYS[:4], folds=5, purge_days=1)


def test_candidates_are_every_combination_or_a_seeded_sample() -> None:
    space = {"max_depth": [4, 8, 12], "n_estimators": [20, 50]}
    assert len(candidates(space, trials=10, seed=1)) == 6
    assert candidates(space, trials=3, seed=1) == candidates(space, trials=3, seed=1)
    assert len({tuple(sorted(c.items())) for c in candidates(space, trials=3, seed=1)}) == 3


def test_a_candidate_the_model_type_does_not_accept_fails_at_load_naming_it() -> None:
    churn = next(spec for spec in load_specs() if spec.name == "churn").model_dump()
    tuning = {"space": {"max_depth": [4, 0]}, "trials": 2}
    with pytest.raises(
        ValueError, match=r"training.tuning.space.max_depth: 0: Input should be greater than or equal to 1"
    ):
        UseCaseSpec.model_validate({**churn, "training": {**churn["training"], "tuning": tuning}})
