"""What the report may call better or worse: intervals from rnnopt.stats."""

from __future__ import annotations

import pytest

from rnnopt import stats


def test_a_difference_is_called_only_when_its_interval_excludes_zero() -> None:
    noisy_a, noisy_b = [0.40, 0.45, 0.42, 0.47], [0.41, 0.44, 0.46, 0.43]
    assert stats.effect(noisy_a, noisy_b, "maximize")[0] == "within noise"
    low, high = stats.difference_interval(noisy_a, noisy_b, stats.best_statistic("maximize"))
    assert low < 0 < high
    clear_a, clear_b = [0.30, 0.31, 0.32], [0.50, 0.52, 0.51, 0.53]
    assert stats.effect(clear_a, clear_b, "maximize")[0] == "better"
    assert stats.effect(clear_a, clear_b, "minimize")[0] == "worse"  # e.g. perplexity
    assert stats.effect(clear_b, clear_a, "maximize")[0] == "worse"


def test_single_trials_are_never_called_better_or_worse() -> None:
    # The case of the issue: two 300-step trials 0.0008 apart.
    assert stats.effect([0.3012], [0.3004], "maximize") == ("too few trials", "")
    assert stats.difference_interval([0.3], [0.2, 0.4], max) is None


def test_too_few_trials_to_tell_luck_from_a_difference() -> None:
    # One side above the other in every value: chance 1 / C(n_a + n_b, n_a) for one direction.
    assert [stats.enough_trials(a, b) for a, b in [(2, 3), (3, 3), (2, 4), (3, 4), (2, 5)]] == [
        False, False, False, True, True  # 1/10, 1/20, 1/15, 1/35, 1/21
    ]
    assert stats.effect([0.30, 0.31], [0.50, 0.52, 0.51], "maximize") == ("too few trials", "")
    assert stats.effect([0.30, 0.31, 0.32], [0.50, 0.52, 0.51], "maximize") == (
        "too few trials", ""
    )
    assert stats.effect([0.30, 0.31], [0.50, 0.52, 0.51, 0.53, 0.54], "maximize")[0] == "better"


def test_rank_correlation_interval() -> None:
    paper = [0.1, 0.2, 0.3, 0.4]
    ordered = [[0.10, 0.11], [0.20, 0.21], [0.30, 0.31], [0.40, 0.41]]
    tau, low, high = stats.rank_correlation_interval(ordered, paper, "maximize")
    assert tau == pytest.approx(1.0) and low == pytest.approx(1.0) and high == pytest.approx(1.0)
    overlapping = [[0.1, 0.5], [0.2, 0.45], [0.3, 0.4], [0.35, 0.38]]
    tau, low, high = stats.rank_correlation_interval(overlapping, paper, "maximize")
    assert tau == pytest.approx(-1.0) and low <= tau and high - low > 0.5
    # Lower is better (perplexity): the sign flips so that the ordering reads the same.
    assert stats.rank_correlation_interval(ordered, paper, "minimize")[0] == pytest.approx(-1.0)
    assert stats.rank_correlation_interval([[0.1], [0.2, 0.3], [0.3, 0.4]], paper[:3],
                                           "maximize") is None
    assert stats.rank_correlation_interval(ordered[:2], paper[:2], "maximize") is None
