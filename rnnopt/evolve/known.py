"""The paper's hand-designed cells written as genomes (PAPER.md "Cells").

``1 - z`` has no node of its own in the paper's node set, so the interpolations are written
``z h + (1 - z) g = g + z (h - g)`` (GRU) and ``g z + h (1 - z) = h + z (g - h)`` (MUT1-3): the
same functions.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Sequence

from rnnopt.evolve.genome import Genome, parse

__all__ = [
    "KNOWN_TEXTS",
    "known",
    "mean_ratio_interval",
    "oriented",
    "passes",
    "shared_pairs",
    "task_ratio",
]

KNOWN_TEXTS: dict[str, str] = {
    "lstm": (
        "g=(tanh (lin x h)); i=(sigmoid (lin x h)); f=(sigmoid (lin x h)); "
        "o=(sigmoid (lin x h)); cn=(+ (* f c) (* i g)); h'=(* o (tanh cn)); c'=cn"
    ),
    "gru": (
        "r=(sigmoid (lin x h)); z=(sigmoid (lin x h)); g=(tanh (lin x (* r h))); "
        "h'=(+ g (* z (- h g)))"
    ),
    "mut1": (
        "z=(sigmoid (lin x)); r=(sigmoid (lin x h)); g=(tanh (+ (lin (* r h)) (tanh x))); "
        "h'=(+ h (* z (- g h)))"
    ),
    "mut2": (
        "z=(sigmoid (lin x h)); r=(sigmoid (+ x (lin h))); g=(tanh (lin (* r h) x)); "
        "h'=(+ h (* z (- g h)))"
    ),
    "mut3": (
        "z=(sigmoid (lin x (tanh h))); r=(sigmoid (lin x h)); g=(tanh (lin (* r h) x)); "
        "h'=(+ h (* z (- g h)))"
    ),
}


def known(name: str) -> Genome:
    """The genome of a hand-designed cell: one of lstm, gru, mut1, mut2, mut3."""
    from rnnopt.errors import ConfigError

    if name not in KNOWN_TEXTS:
        raise ConfigError(f"no genome for cell {name!r}; known: {', '.join(KNOWN_TEXTS)}")
    return parse(KNOWN_TEXTS[name])


def _names(*groups: tuple[str, ...]) -> dict[str, str]:
    """Linear node k's operands and bias in canonical order -> the paper's names."""
    out: dict[str, str] = {}
    for k, group in enumerate(groups, start=1):
        *weights, bias = group
        out.update({f"W{k}_{j}": w for j, w in enumerate(weights)})
        out[f"b{k}"] = bias
    return out


# Genome parameter names -> the hand-written cell's equation_parameters() names (by the
# canonical order of the linear nodes; a test checks both sides are covered exactly).
PAPER_NAMES: dict[str, dict[str, str]] = {
    "lstm": _names(
        ("W_hg", "W_xg", "b_g"),
        ("W_hi", "W_xi", "b_i"),
        ("W_hf", "W_xf", "b_f"),
        ("W_ho", "W_xo", "b_o"),
    ),
    "gru": _names(("W_hr", "W_xr", "b_r"), ("W_hh", "W_xh", "b_h"), ("W_hz", "W_xz", "b_z")),
    "mut1": _names(("W_xz", "b_z"), ("W_hr", "W_xr", "b_r"), ("W_hh", "b_h")),
    "mut2": _names(("W_hz", "W_xz", "b_z"), ("W_hr", "b_r"), ("W_hh", "W_xh", "b_h")),
    "mut3": _names(("W_hr", "W_xr", "b_r"), ("W_hh", "W_xh", "b_h"), ("W_hz", "W_xz", "b_z")),
}


def relative_score(
    accs: dict[str, float],
    gru: dict[str, float],
    tasks: list[str] | tuple[str, ...],
    minimize: Collection[str] = (),
) -> float | None:
    """The paper's score: min over tasks of (best accuracy / the GRU's best accuracy); on a task
    in ``minimize`` (scored by a metric where lower is better, e.g. perplexity or MSE) the ratio
    is turned round, the GRU's best / the genome's best, so above 1 is better on every task.

    None until every task has a result for both. The GRU scores exactly 1 by definition, also
    where its accuracy on a task is 0 (a cell that matches it there counts as 1, a better one
    as infinitely better on that task).
    """
    if any(t not in accs or t not in gru for t in tasks):
        return None
    return min(task_ratio(accs[t], gru[t], t in minimize) for t in tasks)


def task_ratio(value: float, gru: float, minimize: bool = False) -> float:
    """One task's ratio to the GRU, above 1 when the genome is better: ``value / gru``, or
    ``gru / value`` for a metric that is minimized; equal values give exactly 1."""
    a, g = (gru, value) if minimize else (value, gru)
    if a == g:
        return 1.0
    return a / g if g > 0 else math.inf


def passes(value: float, gru: float, threshold: float, minimize: bool = False) -> bool:
    """The staged filter: the genome's best is within ``threshold`` of the GRU's (at least
    ``threshold`` x the GRU's accuracy; for a minimized metric, at most the GRU's / threshold)."""
    if minimize:
        return not gru < threshold * value
    return not value < threshold * gru


# task -> setting index -> best validation accuracy of one genome on that setting
Results = dict[str, dict[int, float]]


def paired_best(
    results: Results,
    gru: Results,
    tasks: list[str] | tuple[str, ...],
    minimize: Collection[str] = (),
) -> tuple[dict[str, float], dict[str, float]] | None:
    """Per task, the best accuracy of a genome and of the GRU over the settings (hyperparameters
    and training seed) that both were evaluated on; None while a task has no common setting.
    The best is the lowest value on a task in ``minimize``.

    Comparing bests over the same settings keeps the comparison fair: the GRU is re-evaluated
    far more often than a new mutant, and a best over more random settings is higher by luck.
    """
    mine: dict[str, float] = {}
    ref: dict[str, float] = {}
    for t in tasks:
        common = results.get(t, {}).keys() & gru.get(t, {}).keys()
        if not common:
            return None
        best = min if t in minimize else max
        mine[t] = best(results[t][k] for k in common)
        ref[t] = best(gru[t][k] for k in common)
    return mine, ref


def paired_score(
    results: Results,
    gru: Results,
    tasks: list[str] | tuple[str, ...],
    minimize: Collection[str] = (),
) -> float | None:
    """The paper's score (``relative_score``) over the settings shared with the GRU."""
    pair = paired_best(results, gru, tasks, minimize)
    return None if pair is None else relative_score(pair[0], pair[1], tasks, minimize)


def head_to_head(
    results: Results, gru: Results, task: str, minimize: bool = False
) -> tuple[int, int, float] | None:
    """Setting by setting against the GRU on ``task``: (settings where the genome's accuracy is
    at least the GRU's, settings both trained on, the genome's mean accuracy over those settings
    divided by the GRU's); None without a common setting. For a minimized metric: settings where
    the genome's value is at most the GRU's, and the GRU's mean / the genome's.

    A best over a few settings can beat the GRU's by luck; this says how often it does.
    """
    pairs = shared_pairs(results, gru, task)
    if not pairs:
        return None
    won = sum(a <= g if minimize else a >= g for a, g in pairs)
    return won, len(pairs), _mean_ratio(oriented(pairs, minimize))


def oriented(pairs: Sequence[tuple[float, float]], minimize: bool) -> list[tuple[float, float]]:
    """(genome, GRU) pairs as ``_mean_ratio`` takes them: turned round for a minimized metric,
    so that the ratio is above 1 when the genome is better."""
    return [(g, a) for a, g in pairs] if minimize else list(pairs)


def shared_pairs(results: Results, gru: Results, task: str) -> list[tuple[float, float]]:
    """(genome accuracy, GRU accuracy) on each setting both trained on for ``task``, in
    setting order."""
    mine, ref = results.get(task, {}), gru.get(task, {})
    return [(mine[k], ref[k]) for k in sorted(mine.keys() & ref.keys())]


def _mean_ratio(pairs: Sequence[tuple[float, float]]) -> float:
    a, g = sum(p[0] for p in pairs), sum(p[1] for p in pairs)
    return 1.0 if a == g else a / g if g > 0 else math.inf


def mean_ratio_interval(
    pairs: Sequence[tuple[float, float]], level: float = 0.95, resamples: int = 2000
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of ``head_to_head``'s mean ratio from (genome accuracy,
    GRU accuracy) pairs (``oriented`` for a minimized metric), one per shared setting, resampled
    as pairs; None under two settings.

    Deterministic (a fixed generator), so a report reads the same every time.
    """
    if len(pairs) < 2:
        return None
    rng = random.Random(0)
    ratios = []
    for _ in range(resamples):
        ratios.append(_mean_ratio(rng.choices(pairs, k=len(pairs))))
    ratios.sort()
    tail = (1.0 - level) / 2
    return ratios[int(tail * resamples)], ratios[min(resamples - 1, int((1 - tail) * resamples))]
