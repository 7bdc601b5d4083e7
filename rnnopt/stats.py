"""Intervals that decide what the report may call a difference: percentile bootstrap
(``scipy.stats.bootstrap``) over trials, deterministic so that a report reads the same twice.

A difference is ``better``/``worse`` only when its 95% interval excludes zero; otherwise it is
``within noise``. It is ``too few trials`` when a side has fewer than two values to resample, or
when the two sides are so small that one beating the other in every value happens by chance at
least one time in 20 (two trials against three: one in ten): a percentile bootstrap then excludes
zero on luck alone (the default study's 2-3 search trials per cell).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "LEVEL",
    "best_statistic",
    "difference_interval",
    "effect",
    "enough_trials",
    "mean_difference_interval",
    "mean_interval",
    "rank_correlation_interval",
]

LEVEL = 0.95
RESAMPLES = 2000
# Two samples of sizes n_a, n_b from one distribution fall wholly apart (every value of one above
# every value of the other) with chance 2 / C(n_a + n_b, n_a); one direction: 1 / C(...).
_MIN_ARRANGEMENTS = round(1 / (1 - LEVEL))  # 20
_SEED = 0

Statistic = Callable[[np.ndarray], float]


def best_statistic(direction: str) -> Statistic:
    """The best of a sample: its max when maximising, its min when minimising."""
    return np.max if direction == "maximize" else np.min


def _bootstrap(data: tuple[Sequence[float], ...], statistic: Callable[..., float]):
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate (constant) resamples are fine here
        return stats.bootstrap(
            tuple(np.asarray(d, dtype=float) for d in data),
            statistic,
            n_resamples=RESAMPLES,
            vectorized=False,
            method="percentile",
            confidence_level=LEVEL,
            rng=np.random.default_rng(_SEED),
        ).confidence_interval


def difference_interval(
    a: Sequence[float], b: Sequence[float], statistic: Statistic
) -> tuple[float, float] | None:
    """95% interval of ``statistic(b) - statistic(a)``, trials resampled within each side;
    None when either side has fewer than two values, or when even a complete separation of the
    two would be chance one time in 20 or more (``enough_trials``)."""
    if not enough_trials(len(a), len(b)):
        return None
    ci = _bootstrap((a, b), lambda x, y: float(statistic(y) - statistic(x)))
    return float(ci.low), float(ci.high)


def enough_trials(n_a: int, n_b: int) -> bool:
    """Whether samples of these sizes can show a difference at ``LEVEL``: two values or more on
    each side, and one side above the other in every value is rarer than one time in 20 by
    chance (3 against 4 trials is enough, 3 against 3 or 2 against 3 is not)."""
    return n_a >= 2 and n_b >= 2 and math.comb(n_a + n_b, n_a) > _MIN_ARRANGEMENTS


def effect(a: Sequence[float], b: Sequence[float], direction: str) -> tuple[str, str]:
    """(verdict, interval text) for b's best against a's: ``better``/``worse`` when the interval
    of the difference excludes zero, else ``within noise``; ``too few trials`` where
    ``enough_trials`` says no interval can be trusted."""
    interval = difference_interval(a, b, best_statistic(direction))
    if interval is None:
        return "too few trials", ""
    low, high = interval
    text = f"[{low:+.4g}, {high:+.4g}]"
    if low > 0 or high < 0:
        higher = low > 0
        return ("better" if higher == (direction == "maximize") else "worse"), text
    return "within noise", text


def rank_correlation_interval(
    samples: Sequence[Sequence[float]], reference: Sequence[float], direction: str
) -> tuple[float, float, float] | None:
    """Kendall's tau between each sample's best and ``reference`` (higher is better there),
    with its 95% interval from resampling every sample's trials; None unless there are at
    least three samples, each with at least two values, and the interval is finite."""
    from scipy.stats import kendalltau

    if len(samples) < 3 or any(len(s) < 2 for s in samples):
        return None
    best = best_statistic(direction)
    sign = 1.0 if direction == "maximize" else -1.0

    def tau(*resampled: np.ndarray) -> float:
        ours = [sign * float(best(s)) for s in resampled]
        return float(kendalltau(ours, reference).statistic)

    point = tau(*map(np.asarray, samples))
    ci = _bootstrap(tuple(samples), tau)
    low, high = float(ci.low), float(ci.high)
    if not all(math.isfinite(x) for x in (point, low, high)):
        return None
    return point, low, high


# Over a few confirmation seeds (2-5 values) a percentile bootstrap is far too narrow (with 3
# values it spans about half of the t interval), so means over seeds use Student's t.


def mean_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, low, high): the 95% Student-t interval of the mean; NaN bounds under two values."""
    if not values:
        return math.nan, math.nan, math.nan
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, math.nan, math.nan
    from scipy import stats

    sem = float(stats.sem(values))
    if sem == 0:
        return mean, mean, mean
    low, high = stats.t.interval(LEVEL, len(values) - 1, loc=mean, scale=sem)
    return mean, float(low), float(high)


def mean_difference_interval(
    a: Sequence[float], b: Sequence[float]
) -> tuple[float, float] | None:
    """95% Welch interval of ``mean(b) - mean(a)``; None when either side has under two
    values. Two constant samples give a zero-width interval at their difference."""
    if len(a) < 2 or len(b) < 2:
        return None
    if max(a) == min(a) and max(b) == min(b):
        d = float(b[0] - a[0])
        return d, d
    from scipy import stats

    ci = stats.ttest_ind(b, a, equal_var=False).confidence_interval(LEVEL)
    return float(ci.low), float(ci.high)
