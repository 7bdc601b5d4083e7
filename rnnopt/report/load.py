"""Reading a storage: every trial of rnnopt's compare and search studies grouped by (task,
cell) (``load_groups``), confirmation trials kept apart."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import median

import optuna
from optuna.trial import FrozenTrial, TrialState

from rnnopt import schema, userdata
from rnnopt.errors import ConfigError, StorageError
from rnnopt.hpo import confirm as confirm_mod
from rnnopt.hpo.staged import filtered_cells
from rnnopt.storage import DEFAULT_URL, mask_url, open_existing

__all__ = ["Group", "float_attr", "int_attr", "load_groups", "shared_settings"]


@dataclass
class Group:
    """All trials of one (task, cell) pair, across every study that holds them."""

    task: str
    cell: str
    direction: str  # "maximize" | "minimize"
    metric: str
    studies: list[str] = field(default_factory=list)
    trials: list[FrozenTrial] = field(default_factory=list)
    # Retrained best settings (rnnopt/hpo/confirm.py); never part of the search's trials above.
    confirmations: list[FrozenTrial] = field(default_factory=list)
    # (step, value there) where the staged filter across cells dropped the cell (hpo/staged.py)
    filtered: tuple[int, float | None] | None = None

    @property
    def key(self) -> str:
        return f"{self.task}/{self.cell}"

    @property
    def complete(self) -> list[FrozenTrial]:
        return [
            t
            for t in self.trials
            if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)
        ]

    def count(self, state: TrialState) -> int:
        return sum(1 for t in self.trials if t.state == state)

    @property
    def best(self) -> FrozenTrial | None:
        done = self.complete
        if not done:
            return None
        pick = max if self.direction == "maximize" else min
        return pick(done, key=lambda t: t.value)

    @property
    def steps(self) -> int:
        return sum(int_attr(t, "steps") for t in self.trials)

    def median_top10(self) -> float | None:
        values = sorted((t.value for t in self.complete), reverse=self.direction == "maximize")
        if not values:
            return None
        return median(values[: math.ceil(len(values) / 10)])

    def better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "maximize" else a < b


def shared_settings(a: Group, b: Group) -> list[tuple[float, float]]:
    """(a's value, b's value) on each setting that both trained, in trial-number order: completed
    search trials of one number (so one training seed, ``--seed`` + number) whose shared
    parameters are all equal, as ``--paired-startup`` makes the start-up trials
    (rnnopt/hpo/paired.py) and a worker's seeded sampler often does by accident."""
    mine: dict[int, list[FrozenTrial]] = {}
    for t in a.complete:
        mine.setdefault(t.number, []).append(t)
    out = []
    for t in sorted(b.complete, key=lambda t: t.number):
        for u in mine.get(t.number, []):
            shared = u.params.keys() & t.params.keys()
            if shared and all(u.params[k] == t.params[k] for k in shared):
                out.append((float(u.value), float(t.value)))
                break
    return out


def int_attr(trial: FrozenTrial, key: str) -> int:
    value = trial.user_attrs.get(key)
    return int(value) if isinstance(value, int | float) and math.isfinite(value) else 0


def float_attr(trial: FrozenTrial, key: str) -> float | None:
    value = trial.user_attrs.get(key)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def load_groups(
    storage_url: str | None, tasks: Sequence[str] | None = None
) -> dict[tuple[str, str], Group]:
    """Group every trial of every rnnopt study at ``storage_url`` by (task, cell).

    A task studied on the user's files is named with its data (``userdata.data_label``, e.g.
    ``text (corpus.txt, 3fa2b1c9)``), so two data sets of one task stay apart; ``tasks``
    selects by the task's own name (``text`` selects every data set of it)."""
    storage = open_existing(storage_url)
    summaries = [
        s
        for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
        if schema.is_cell_study(s.user_attrs)
    ]
    if not summaries:
        raise StorageError(
            f"no rnnopt studies in {mask_url(storage_url or DEFAULT_URL)!r} "
            "(no compare or search study)"
        )
    available = sorted({str(s.user_attrs["rnnopt.task"]) for s in summaries})
    if tasks:
        unknown = [t for t in tasks if t not in available]
        if unknown:
            raise ConfigError(
                f"unknown task {unknown[0]!r}: this storage has studies for {', '.join(available)}"
            )
    groups: dict[tuple[str, str], Group] = {}
    for summary in summaries:
        attrs = summary.user_attrs
        if tasks and str(attrs[schema.TASK]) not in tasks:
            continue
        task = userdata.data_label(
            str(attrs[schema.TASK]), attrs.get(schema.DATA), attrs.get(schema.TRAIN)
        )
        direction = str(attrs.get("rnnopt.direction") or summary.direction.name.lower())
        metric = str(attrs.get("rnnopt.metric") or "value")
        study_cell = str(attrs.get("rnnopt.cell") or "*")
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        for trial in study.get_trials(deepcopy=False):
            cell = study_cell
            if cell == "*":
                cell = str(trial.params.get("cell") or trial.user_attrs.get("cell") or "?")
            group = groups.setdefault(
                (task, cell), Group(task=task, cell=cell, direction=direction, metric=metric)
            )
            if summary.study_name not in group.studies:
                group.studies.append(summary.study_name)
                group.filtered = filtered_cells(attrs.get(schema.STAGED)).get(cell, group.filtered)
            if confirm_mod.is_confirmation(trial):
                group.confirmations.append(trial)
            else:
                group.trials.append(trial)
    return groups
