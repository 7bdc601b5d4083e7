"""Results read back from a run's finished evaluations, the scores of genomes and the rounds of
paired settings (the comparisons themselves are ``known.paired_score`` and ``paired_best``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from optuna.trial import FrozenTrial, TrialState

from rnnopt.evolve.config import SearchConfig
from rnnopt.evolve.known import Results, paired_score

__all__ = ["collect_results", "next_round", "population", "score"]


def collect_results(trials: Iterable[FrozenTrial]) -> dict[str, Results]:
    """genome text -> task -> setting index -> value, from finished evaluation trials."""
    out: dict[str, Results] = defaultdict(lambda: defaultdict(dict))
    for t in trials:
        g, task = t.user_attrs["genome"], t.user_attrs["task"]
        out[g][task][int(t.user_attrs["setting"])] = float(t.value)
    return out


def next_round(steps: list[FrozenTrial], evals: list[FrozenTrial], genome: str, n: int) -> int:
    """The round of ``genome``'s next step: after every earlier step's round, and one whose
    ``n`` settings it has not been evaluated on (the GRU also trains beside re-evaluations)."""
    rounds = [t.user_attrs.get("round", 0) for t in steps if t.user_attrs.get("genome") == genome]
    have = {t.user_attrs.get("setting") for t in evals if t.user_attrs.get("genome") == genome}
    r = max(rounds, default=-1) + 1
    while any(r * n + k in have for k in range(n)):
        r += 1
    return r


def score(config: SearchConfig, results: Results, gru: Results) -> float | None:
    """min over tasks of accuracy / GRU accuracy (GRU / genome for a minimized metric) over
    the settings both have (None until every task has one)."""
    return paired_score(results, gru, config.tasks, config.minimize)


def population(
    config: SearchConfig, steps: list[FrozenTrial], results: dict[str, Results], gru: str
) -> list[tuple[float, str]]:
    """The best ``population`` members as (score, genome text), best first."""
    members = {
        t.user_attrs["genome"]
        for t in steps
        if t.state == TrialState.COMPLETE and t.user_attrs.get("status") == "member"
    }
    scored = []
    for g in members:
        s = score(config, results.get(g, {}), results.get(gru, {}))
        if s is not None:
            scored.append((s, g))
    scored.sort(key=lambda p: (-p[0], p[1]))
    return scored[: config.population]
