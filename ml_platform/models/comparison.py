"""Is the challenger better than the champion beyond noise? A one-sided paired bootstrap on the same holdout rows."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ml_platform.models.metrics import metric_value


@dataclass(frozen=True)
class ImprovementTest:
    """Paired bootstrap comparison of two models scored on the same holdout rows."""

    method: str
    resamples: int
    challenger: float
    champion: float
    improvement: float  # challenger minus champion, signed so that positive is better
    ci_level: float  # 1 - 2 * alpha: the interval's lower end is above zero about when p < alpha
    ci_low: float  # percentile interval of the improvement over the resamples
    ci_high: float
    p_value: float  # one-sided: share of resamples on which the challenger is not better

    def significant(self, alpha: float) -> bool:
        return self.improvement > 0 and self.p_value < alpha

    def as_tags(self) -> dict[str, str]:
        return {f"promotion_{name}": str(value) for name, value in asdict(self).items()}


def paired_bootstrap_test(
    metric: str,
    lower_is_better: bool,
    labels: np.ndarray,
    naive: np.ndarray | None,
    challenger: tuple[np.ndarray, float | None],
    champion: tuple[np.ndarray, float | None],
    resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> ImprovementTest:
    """Resample holdout rows with replacement, score both models on each resample, and test whether
    the challenger's metric is higher (lower, for errors) than the champion's beyond resampling noise."""
    sign = -1.0 if lower_is_better else 1.0

    def improvement(rows: np.ndarray | slice) -> float:
        sample_naive = naive[rows] if naive is not None else None
        ours = metric_value(metric, labels[rows], challenger[0][rows], challenger[1], sample_naive)
        theirs = metric_value(metric, labels[rows], champion[0][rows], champion[1], sample_naive)
        return sign * (ours - theirs)

    rng = np.random.default_rng(seed)
    samples = np.array([improvement(rng.integers(0, len(labels), size=len(labels))) for _ in range(resamples)])
    everything = slice(None)
    return ImprovementTest(
        method=f"paired bootstrap of {metric} on the holdout",
        resamples=resamples,
        challenger=metric_value(metric, labels, challenger[0], challenger[1], naive),
        champion=metric_value(metric, labels, champion[0], champion[1], naive),
        improvement=improvement(everything),
        ci_level=1 - 2 * alpha,
        ci_low=float(np.quantile(samples, alpha)),
        ci_high=float(np.quantile(samples, 1 - alpha)),
        p_value=float((np.sum(samples <= 0) + 1) / (resamples + 1)),
    )
