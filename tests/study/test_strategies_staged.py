"""The staged filter across cells replayed on an exhaustive run's curves (benchmarks/strategies)."""

from __future__ import annotations

import math
from types import ModuleType

import pytest


def _trial(cell: str, values: list[float], value: float | None = None, every: int = 10) -> dict:
    """A trial's record; ``value`` its own (the trainer's final evaluation, on more data)."""
    return {"cell": cell, "steps": every * len(values), "value": value,
            "values": [[every * (i + 1), v] for i, v in enumerate(values)]}  # fmt: skip


def test_staged_filter_keeps_the_best_cells_and_counts_their_steps(strategies: ModuleType) -> None:
    # 100 steps, evaluations every 10. "slow" is last at 10% and best at 100: a filter drops it.
    trials = [
        _trial("fast", [0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6], value=0.61),
        _trial("fast", [0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4]),
        _trial("slow", [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]),
        _trial("mid", [0.3, 0.5, 0.55, 0.55, 0.55, 0.55, 0.55, 0.55, 0.55, 0.7]),
        _trial("bad", [0.0, 0.0, 0.0]),  # diverged after 30 steps: counts 30 at most
        _trial("bad", [math.nan]),  # failed at once: no value
    ]
    run = strategies.staged(trials, [(0.1, 2), (0.3, 1)], 100, maximize=True)
    # stage 0.1: every trial to 10 steps (6 x 10 = 60); fast 0.5, mid 0.3 go on, slow 0.1 does not
    # stage 0.3: fast's two and mid's one to 30 (3 x 20 = 60); fast 0.6 > mid 0.55
    # to the end: fast's two trials to 100 (2 x 70 = 140), and its own value counts there
    assert run["curve"] == [(260, "fast", 0.61)]
    assert run["best"] == {"fast": 0.61, "mid": 0.55, "slow": 0.1, "bad": 0.0}
    # with no filter before the end it is the exhaustive comparison: slow wins, all steps count
    keep_all = strategies.staged(trials, [(0.5, 4)], 100, maximize=True)
    assert keep_all["curve"] == [(4 * 100 + 30 + 10, "slow", 0.95)]
    # a minimised metric: the lowest value is best
    low = strategies.staged(trials[:4], [(0.1, 1)], 100, maximize=False)
    assert low["curve"][0][1] == "slow" and low["curve"][0][2] == 0.1


@pytest.mark.parametrize("text", ["0.1", "0.1:x", "0.3:2,0.1:1", "1.0:1", "0.1:0"])
def test_a_bad_schedule_is_refused(strategies: ModuleType, text: str) -> None:
    with pytest.raises(ValueError, match="--staged"):
        strategies.parse_schedule(text)
    assert strategies.parse_schedule("0.1:4,0.3:1") == [(0.1, 4), (0.3, 1)]
