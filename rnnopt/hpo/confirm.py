"""Confirmation seeds: each cell's best setting retrained with K new seeds (``--confirm K``).

The best-of value over a search is what the paper reports, and it is biased upward by luck: the
best of N noisy runs. After a study's search holds its ``--n-trials``, the best setting of each
cell is enqueued K more times with fixed parameters and a new training seed. They are ordinary
trials of the same study (claimed by any worker, heartbeated, retried from their checkpoint
after a crash), told apart by the user attributes

- ``confirm_of``: the number of the search trial whose setting they retrain;
- ``confirm_seed``: their training seed (``seed + CONFIRM_SEED_OFFSET + i``, i = 0..K-1: the
  same K seeds for every cell, none of them a search trial's seed).

They never count toward ``--n-trials``, are never pruned, and the report shows their mean with a
95% interval beside the best-of value (docs/studies.md, "Confirmation seeds").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rnnopt import stats

__all__ = [
    "AGAINST_HEADER",
    "CONFIRM_ATTR",
    "CONFIRM_SEED_OFFSET",
    "REFERENCE_CELL",
    "SEED_ATTR",
    "Confirmation",
    "Difference",
    "against_reference",
    "best_search_trials",
    "compare_cells",
    "confirmation_of",
    "describe",
    "difference",
    "is_confirmation",
    "replaced_trials",
    "report_rows",
    "top_up",
]

CONFIRM_ATTR = "confirm_of"
SEED_ATTR = "confirm_seed"
# Search trials train with seed + trial number; confirmation seeds start far above those.
CONFIRM_SEED_OFFSET = 1_000_000
# The paper states its findings against the LSTM; confirmed cells are also held to it.
REFERENCE_CELL = "lstm"
AGAINST_HEADER = f"against {REFERENCE_CELL} (+: better) [95%]"
# What a confirmation interval does not cover (measured: benchmarks/RESULTS.md, "Findings").
SCOPE = (
    "The intervals cover the seeds' noise around this run's best setting per cell, not the "
    "search's own luck: a run with another --seed can find other settings. Read several runs "
    "together (benchmarks/findings.py) before calling a cell better."
)


def is_confirmation(trial: Any) -> bool:
    """True for a confirmation trial (frozen or live)."""
    return CONFIRM_ATTR in trial.user_attrs


def replaced_trials(trials: Sequence[Any]) -> set[int]:
    """Numbers of the trials replaced by a retry (rnnopt.storage.replaced_numbers)."""
    from rnnopt.storage import replaced_numbers

    return replaced_numbers(trials)


def _value_ok(trial: Any) -> bool:
    from optuna.trial import TrialState

    return trial.state == TrialState.COMPLETE and trial.value is not None and math.isfinite(
        trial.value
    )


def best_search_trials(
    trials: Sequence[Any], cells: Sequence[str], *, search: bool, direction: str
) -> dict[str, Any]:
    """The best completed search trial of each cell (compare mode: ``cells`` is one cell)."""
    pick = max if direction == "maximize" else min
    out = {}
    for cell in cells:
        mine = [
            t for t in trials
            if _value_ok(t) and not is_confirmation(t)
            and (not search or t.params.get("cell") == cell)
        ]  # fmt: skip
        if mine:
            out[cell] = pick(mine, key=lambda t: t.value)
    return out


def top_up(
    study: Any,
    trials: Sequence[Any],
    cells: Sequence[str],
    *,
    search: bool,
    direction: str,
    k: int,
    seed: int,
) -> int:
    """Enqueue the confirmation trials that the current best settings still lack; return how
    many were enqueued. Call it under the study's lock, once the search is done (no search
    trial RUNNING or WAITING); it is idempotent, so a rerun after a crash (or with a larger K)
    enqueues only what is missing."""
    from optuna.trial import TrialState

    if k <= 0:
        return 0
    if any(
        t.state in (TrialState.RUNNING, TrialState.WAITING) and not is_confirmation(t)
        for t in trials
    ):
        return 0
    replaced = replaced_trials(trials)
    added = 0
    for best in best_search_trials(trials, cells, search=search, direction=direction).values():
        have = {
            t.user_attrs.get(SEED_ATTR)
            for t in trials
            if t.user_attrs.get(CONFIRM_ATTR) == best.number and t.number not in replaced
        }
        for i in range(k):
            s = seed + CONFIRM_SEED_OFFSET + i
            if s in have:
                continue
            study.enqueue_trial(best.params, user_attrs={CONFIRM_ATTR: best.number, SEED_ATTR: s})
            added += 1
    return added


@dataclass(frozen=True)
class Confirmation:
    """The confirmation of one cell's best setting: values over the seeds that finished."""

    best_value: float  # the search's best-of value (what the paper reports)
    values: tuple[float, ...]  # completed confirmation runs
    n_runs: int  # confirmation trials finished in any state (diverged ones have no value)
    mean: float
    low: float  # 95% interval of the mean (rnnopt.stats.mean_interval); NaN with < 2 values
    high: float


def confirmation_of(best: Any, trials: Sequence[Any]) -> Confirmation | None:
    """The confirmation runs of the search trial ``best`` among ``trials`` (None if none)."""
    replaced = replaced_trials(trials)
    mine = [
        t for t in trials
        if t.user_attrs.get(CONFIRM_ATTR) == best.number and t.number not in replaced
        and t.state.is_finished()
    ]  # fmt: skip
    if not mine:
        return None
    values = tuple(float(t.value) for t in mine if _value_ok(t))
    mean, low, high = stats.mean_interval(values)
    return Confirmation(float(best.value), values, len(mine), mean, low, high)


@dataclass(frozen=True)
class Difference:
    """One cell's confirmation mean against another's, signed so that positive is better."""

    value: float  # mean difference; positive: the cell is better than the one it is held to
    low: float  # 95% Welch interval (rnnopt.stats.mean_difference_interval), same sign
    high: float
    verdict: str  # "better" / "worse" when the interval excludes zero, else "within noise"

    def __str__(self) -> str:
        return f"{self.value:+.4g} [{self.low:+.4g}, {self.high:+.4g}] {self.verdict}"

    @classmethod
    def of(cls, value: float, low: float, high: float) -> Difference:
        """The difference ``value`` with its interval, and the verdict that interval gives."""
        verdict = "better" if low > 0 else ("worse" if high < 0 else "within noise")
        return cls(value, low, high, verdict)


def difference(ref: Confirmation, conf: Confirmation, direction: str) -> Difference | None:
    """``conf`` against ``ref`` (None when either has under two values)."""
    interval = stats.mean_difference_interval(ref.values, conf.values)
    if interval is None:
        return None
    sign = 1.0 if direction == "maximize" else -1.0
    low, high = sorted((sign * interval[0], sign * interval[1]))
    return Difference.of(sign * (conf.mean - ref.mean), low, high)


def compare_cells(
    confirmed: Mapping[str, Confirmation], direction: str
) -> dict[str, str]:
    """Per cell, against the cell with the best confirmed mean: ``"best"``, ``"worse"`` when the
    95% Welch interval of the difference of means excludes zero, else ``"within noise"``
    (``"too few seeds"`` below two values on either side)."""
    usable = {c: v for c, v in confirmed.items() if v.values}
    if not usable:
        return {}
    pick = max if direction == "maximize" else min
    top = pick(usable, key=lambda c: usable[c].mean)
    out = {}
    for cell, conf in usable.items():
        if cell == top:
            out[cell] = "best"
            continue
        d = difference(usable[top], conf, direction)
        out[cell] = "too few seeds" if d is None else d.verdict
    return out


def against_reference(
    confirmed: Mapping[str, Confirmation], direction: str
) -> dict[str, Difference | None]:
    """Per cell but the reference (the LSTM, as in the paper's claims), its confirmation mean
    against the reference's; empty when the reference has no confirmation values."""
    ref = confirmed.get(REFERENCE_CELL)
    if ref is None or not ref.values:
        return {}
    return {
        cell: difference(ref, conf, direction)
        for cell, conf in confirmed.items()
        if cell != REFERENCE_CELL and conf.values
    }


def describe(
    conf: Confirmation, verdict: str | None = None, against: Difference | None = None
) -> str:
    """``confirm 0.4512 [0.4401, 0.4623] (3/3 seeds; within noise; vs lstm +0.09 [+0.05, +0.13]
    better)``: mean, 95% interval, the verdict against the best cell and the difference from
    the reference cell."""
    if not conf.values:
        return f"confirm - (0/{conf.n_runs} seeds finished with a value)"
    interval = (
        f" [{conf.low:.4f}, {conf.high:.4f}]" if math.isfinite(conf.low) else " [one seed]"
    )
    tail = f"; {verdict}" if verdict else ""
    if against is not None:
        tail += f"; vs {REFERENCE_CELL} {against}"
    return f"confirm {conf.mean:.4f}{interval} ({len(conf.values)}/{conf.n_runs} seeds{tail})"


def report_rows(
    groups: Mapping[tuple[str, str], Any], tasks: Sequence[str], cells: Sequence[str]
) -> tuple[list[str], list[list[str]]]:
    """The report's confirmation table: per task and cell the search's best-of value, the
    confirmation mean with its 95% interval, the verdict against the best confirmed cell and,
    where the LSTM is confirmed, the difference from it (positive: better than the LSTM).
    ``groups`` are report.Group objects (``best``, ``confirmations``, ``direction``)."""
    from rnnopt import paper

    header = ["task", "cell", "best of search", "paper", "seeds", "mean", "95% interval",
              "against the best cell", AGAINST_HEADER]
    rows = []
    for task in tasks:
        confirmed = {}
        direction = "maximize"
        for cell in cells:
            g = groups.get((task, cell))
            if g is None or g.best is None or not g.confirmations:
                continue
            conf = confirmation_of(g.best, g.confirmations)
            if conf is not None:
                confirmed[cell] = conf
                direction = g.direction
        verdicts = compare_cells(confirmed, direction)
        against = against_reference(confirmed, direction)
        for cell, conf in confirmed.items():
            theirs = paper.paper_value(cell, task)
            d = against.get(cell)
            rows.append([
                task, cell, f"{conf.best_value:.4g}", "–" if theirs is None else f"{theirs:g}",
                f"{len(conf.values)}/{conf.n_runs}",
                f"{conf.mean:.4g}" if conf.values else "–",
                f"[{conf.low:.4g}, {conf.high:.4g}]" if math.isfinite(conf.low) else "–",
                verdicts.get(cell, "no value"),
                "–" if d is None else str(d),
            ])  # fmt: skip
    if not any(r[-1] != "–" for r in rows):
        header, rows = header[:-1], [r[:-1] for r in rows]
    return header, rows
