"""What the report computes from the grouped trials: hyperparameter importance, the
ablations, the cells on shared settings, the warnings and the order of cells and tasks
(``build_report`` -> ``Report``)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from statistics import median
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from rnnopt import paper
from rnnopt import stats as rnnopt_stats
from rnnopt.errors import ConfigError
from rnnopt.hpo import confirm as confirm_mod
from rnnopt.hpo.space import GATE_NAMES
from rnnopt.report.load import Group, float_attr, load_groups, shared_settings
from rnnopt.storage import existing_storage, mask_url

__all__ = [
    "IMPORTANCE_METHODS",
    "PAIRED_COLUMNS",
    "Report",
    "build_report",
    "evaluator",
    "paired_rows",
    "trial_study",
]

IMPORTANCE_METHODS = ("fanova", "ped-anova", "mdi")
GATE_PARAMS = GATE_NAMES
LSTM_ABLATIONS = ("lstm-i", "lstm-o", "lstm-f", "lstm-b")
ALL_CELLS = "all cells"  # the importance row of a task's trials pooled, the cell a parameter
# A best value within this fraction of its range (log-scaled for log ranges) is "at the edge".
EDGE_FRACTION = 0.02


@dataclass
class Report:
    """Everything the report shows, as data (rendered by :func:`write_report`)."""

    storage: str
    groups: dict[tuple[str, str], Group]
    tasks: list[str]
    cells: list[str]
    importance: dict[tuple[str, str], dict[str, float]]
    importance_method: str
    ablation: list[dict[str, Any]]
    warnings: list[str]
    notes: list[str]
    min_trials: int
    # The in-memory studies the importance was computed on (for Optuna's importance plot).
    importance_studies: dict[tuple[str, str], optuna.Study] = field(default_factory=dict)
    # Each cell against the reference cell on the settings both trained (``paired_rows``).
    paired: list[dict[str, Any]] = field(default_factory=list)

    def leaderboard(self) -> list[dict[str, Any]]:
        rows = []
        for (task, cell), g in sorted(self.groups.items()):
            best = g.best
            rows.append({
                "task": task, "cell": cell, "direction": g.direction, "metric": g.metric,
                "n_trials": len(g.trials), "n_complete": len(g.complete),
                "n_pruned": g.count(TrialState.PRUNED), "n_failed": g.count(TrialState.FAIL),
                "best_value": None if best is None else best.value,
                "median_top10": g.median_top10(),
                "best_test": None if best is None else float_attr(best, "test_metric"),
                "steps": g.steps,
            })
        return rows

    def table1(self) -> list[dict[str, Any]]:
        """One row per (cell, task): our best value and the paper's, for the Table 1 layout."""
        rows = []
        for cell in self.cells:
            for task in self.tasks:
                g = self.groups.get((task, cell))
                best = None if g is None else g.best
                rows.append({
                    "cell": cell, "task": task,
                    "ours": None if best is None else best.value,
                    "metric": None if g is None else g.metric,
                    "n_complete": 0 if g is None else len(g.complete),
                    "paper": paper.paper_value(cell, task),
                })
        return rows


def evaluator(method: str) -> optuna.importance.BaseImportanceEvaluator:
    if method == "fanova":
        return optuna.importance.FanovaImportanceEvaluator(seed=0)
    if method == "ped-anova":
        return optuna.importance.PedAnovaImportanceEvaluator()
    if method == "mdi":
        return optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=0)
    raise ConfigError(
        f"unknown importance method {method!r}; allowed: {', '.join(IMPORTANCE_METHODS)}"
    )


def trial_study(
    pairs: Sequence[tuple[str, FrozenTrial]], direction: str, *, with_cell: bool
) -> optuna.Study:
    """An in-memory study of completed trials (for Optuna's importance and plots); with
    ``with_cell`` the cell becomes a categorical parameter, so that trials of several cells
    (one task's compare studies) are one study."""
    cells = sorted({c for c, _ in pairs})
    study = optuna.create_study(direction=direction)
    for cell, t in pairs:
        params = {k: v for k, v in t.params.items() if k != "cell"}
        dists = {k: t.distributions[k] for k in params}
        if with_cell:
            params["cell"], dists["cell"] = cell, CategoricalDistribution(cells)
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists,
                                                  value=t.value))
    return study


def _importance(study: optuna.Study, method: str) -> dict[str, float]:
    """Normalised hyperparameter importance over ``study``'s completed trials."""
    importances = optuna.importance.get_param_importances(
        study, evaluator=evaluator(method), normalize=True
    )
    return {k: float(v) for k, v in importances.items()}


def _edge_warning(name: str, value: Any, dist: BaseDistribution) -> str | None:
    if isinstance(dist, FloatDistribution | IntDistribution):
        low, high = float(dist.low), float(dist.high)
        if high <= low:
            return None
        if dist.log:
            pos = (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
        else:
            pos = (value - low) / (high - low)
        if pos <= EDGE_FRACTION or pos >= 1 - EDGE_FRACTION:
            side = "lower" if pos <= EDGE_FRACTION else "upper"
            return f"{name}={value:g} sits at the {side} edge of [{low:g}, {high:g}]"
        return None
    if isinstance(dist, CategoricalDistribution):
        choices = dist.choices
        numeric = all(isinstance(c, int | float) and not isinstance(c, bool) for c in choices)
        if numeric and len(choices) >= 3 and value in (min(choices), max(choices)):
            side = "lower" if value == min(choices) else "upper"
            return (f"{name}={value:g} sits at the {side} edge of the grid "
                    f"{{{', '.join(f'{c:g}' for c in sorted(choices))}}}")
    return None


def _warnings(groups: dict[tuple[str, str], Group], min_trials: int) -> list[str]:
    few: dict[str, list[str]] = {}
    edges = []
    for (task, cell), g in sorted(groups.items()):
        n = len(g.complete)
        if n < min_trials:
            few.setdefault(task, []).append(f"{cell} ({n})")
        best = g.best
        if best is None or n < 2:
            continue
        for name, value in sorted(best.params.items()):
            dist = best.distributions.get(name)
            msg = None if dist is None else _edge_warning(name, value, dist)
            if msg:
                edges.append(f"{task}/{cell}: best trial #{best.number}: {msg}; widen the range")
    # One line per task: a compare study's cells all have the same few trials by design.
    return [
        f"{task}: fewer than {min_trials} completed trials (--min-trials) for {', '.join(cells)}: "
        "no importance of their own"
        for task, cells in few.items()
    ] + edges


def _ablation_row(
    g: Group, factor: str, cell: str, level_a: str, a: list[float], level_b: str, b: list[float]
) -> dict[str, Any]:
    best_a, best_b = _best(a, g.direction), _best(b, g.direction)
    verdict, interval = rnnopt_stats.effect(a, b, g.direction)
    return {
        "task": g.task, "cell": cell, "factor": factor,
        "level_a": f"{level_a} (n={len(a)})", "best_a": best_a,
        "level_b": f"{level_b} (n={len(b)})", "best_b": best_b,
        "delta": best_b - best_a, "interval": interval, "effect": verdict,
    }


def _ablation(groups: dict[tuple[str, str], Group]) -> list[dict[str, Any]]:
    """b against a per factor; ``effect`` is better/worse only when the 95% bootstrap interval
    of the difference of best values (trials resampled) excludes zero (rnnopt.stats)."""
    rows: list[dict[str, Any]] = []
    tasks = sorted({task for task, _ in groups})
    for task in tasks:
        base = groups.get((task, "lstm"))
        if base is None or not base.complete:
            continue
        base_values = [t.value for t in base.complete]
        for variant in LSTM_ABLATIONS:
            g = groups.get((task, variant))
            if g is None or not g.complete:
                continue
            rows.append(_ablation_row(g, "cell vs lstm", variant, "lstm", base_values, variant,
                                      [t.value for t in g.complete]))
    for (_, cell), g in sorted(groups.items()):
        done = g.complete
        for gate in GATE_PARAMS:
            on = [t.value for t in done if t.params.get(gate) is True]
            off = [t.value for t in done if t.params.get(gate) is False]
            if on and off:
                rows.append(_ablation_row(g, gate, cell, "True", on, "False", off))
        fb = [(t.params["forget_bias"], t.value) for t in done
              if isinstance(t.params.get("forget_bias"), int | float)]
        if len({v for v, _ in fb}) >= 2:
            cut = median(v for v, _ in fb)
            low = [val for v, val in fb if v <= cut]
            high = [val for v, val in fb if v > cut]
            if low and high:
                rows.append(_ablation_row(g, "forget_bias", cell, f"<= {cut:g}", low,
                                          f"> {cut:g}", high))
    return rows


PAIRED_COLUMNS = ("task", "cell", "pairs", "cell_ahead", "reference_mean", "cell_mean",
                  "difference", "interval", "effect")  # fmt: skip


def paired_rows(
    groups: dict[tuple[str, str], Group], cells: Sequence[str]
) -> list[dict[str, Any]]:
    """Each cell against ``confirm.REFERENCE_CELL`` on the settings both trained
    (``load.shared_settings``): the mean difference over those pairs, signed so that + is
    better, its 95% Student-t interval over the pairs (differences of one setting, so the
    setting's luck cancels) and better / worse only when it excludes zero."""
    rows: list[dict[str, Any]] = []
    for task in sorted({t for t, _ in groups}):
        ref = groups.get((task, confirm_mod.REFERENCE_CELL))
        if ref is None:
            continue
        sign = 1.0 if ref.direction == "maximize" else -1.0
        for cell in cells:
            g = groups.get((task, cell))
            if g is None or cell == ref.cell:
                continue
            pairs = shared_settings(ref, g)
            if not pairs:
                continue
            diffs = [sign * (b - a) for a, b in pairs]
            mean, low, high = rnnopt_stats.mean_interval(diffs)
            interval, effect = None, "too few pairs"
            if len(pairs) >= 2:
                interval = f"[{low:+.4g}, {high:+.4g}]"
                effect = confirm_mod.Difference.of(mean, low, high).verdict
            rows.append({
                "task": task, "cell": cell, "pairs": len(pairs),
                "cell_ahead": f"{sum(d > 0 for d in diffs)}/{len(pairs)}",
                "reference_mean": sum(a for a, _ in pairs) / len(pairs),
                "cell_mean": sum(b for _, b in pairs) / len(pairs),
                "difference": mean, "interval": interval, "effect": effect,
            })  # fmt: skip
    return rows


def _best(values: Iterable[float], direction: str) -> float:
    return max(values) if direction == "maximize" else min(values)


def _cell_order(cells: Iterable[str]) -> list[str]:
    cells = set(cells)
    known = [c for c in paper.CELL_ORDER if c in cells]
    return known + sorted(cells - set(known))


def build_report(
    storage_url: str | None,
    *,
    tasks: Sequence[str] | None = None,
    min_trials: int = 10,
    importance: str = "fanova",
) -> Report:
    """Read the rnnopt studies at ``storage_url`` and compute every table of the report."""
    if importance not in IMPORTANCE_METHODS:
        raise ConfigError(
            f"unknown importance method {importance!r}; allowed: {', '.join(IMPORTANCE_METHODS)}"
        )
    if min_trials < 2:
        raise ConfigError(f"min_trials must be at least 2, got {min_trials}")
    groups = load_groups(storage_url, tasks)
    notes: list[str] = []
    imp: dict[tuple[str, str], dict[str, float]] = {}
    imp_studies: dict[tuple[str, str], optuna.Study] = {}
    candidates = {key: ([(g.cell, t) for t in g.complete], g) for key, g in groups.items()}
    # Across the cells of a task (the cell a parameter): the default study's 3 trials per
    # cell are too few per cell, but its ten cells together are not.
    for task in sorted({t for t, _ in groups}):
        mine = [g for (t, _), g in sorted(groups.items()) if t == task]
        if len(mine) > 1:
            pairs = [(g.cell, t) for g in mine for t in g.complete]
            candidates[(task, ALL_CELLS)] = (pairs, mine[0])
    for key, (pairs, g) in sorted(candidates.items()):
        name = f"{key[0]}/{key[1]}"
        if len(pairs) < min_trials:
            notes.append(
                f"{name}: importance not computed ({len(pairs)} completed trials, "
                f"need {min_trials})"
            )
            continue
        try:
            study = trial_study(pairs, g.direction, with_cell=key[1] == ALL_CELLS)
            values = _importance(study, importance)
        except (ValueError, RuntimeError) as exc:
            notes.append(f"{name}: importance not computed ({exc})")
            continue
        if values:
            imp[key], imp_studies[key] = values, study
        else:
            notes.append(f"{name}: importance not computed (no parameter varies)")
    all_tasks = sorted({t for t, _ in groups})
    ordered_tasks = [t for t in paper.TABLE1_TASKS if t in all_tasks]
    ordered_tasks += [t for t in all_tasks if t not in ordered_tasks]
    if "ptb" in ordered_tasks:
        notes.append(
            "ptb: our value is validation perplexity (lower is better); the paper's PTB column "
            "has an unclear unit (higher is better): compare orderings, not values"
        )
    cells = _cell_order(c for _, c in groups)
    return Report(
        storage=mask_url(existing_storage(storage_url)), groups=groups, tasks=ordered_tasks,
        cells=cells, importance=imp, importance_method=importance,
        importance_studies=imp_studies, paired=paired_rows(groups, cells),
        ablation=_ablation(groups), warnings=_warnings(groups, min_trials), notes=notes,
        min_trials=min_trials,
    )
