"""Paired start-up: the k-th random start-up trial of every cell's study trains one setting.

In compare mode each cell has a study of its own, and each study's sampler draws its start-up
trials at random. Left alone, a cell's best-of value then mixes two kinds of luck: the cell's
and its draws'. With ``[sampler] paired_startup = true`` (or ``--paired-startup``) trial ``k``
(``k`` below the start-up count) of every study draws each parameter from a generator seeded
by the pairing seed, ``k`` and the parameter's name only, so every cell's ``k``-th start-up
trial gets the same value of every parameter the cells share (a cell's own parameters, such as
the forget-gate bias, are drawn the same way for the cells that have them). Its training seed
(``--seed + k``) is shared too, so the cells differ on those trials by the cell alone: the
paper's random grid, with one grid for all cells, as ``rnnopt evolve`` pairs its settings.

The pairing seed is stored in each study (``rnnopt.schema.PAIRED_STARTUP``); the one stored
first wins, so workers started with other ``--seed`` values still pair with the first run.
The pairing keys on the trial number, which the storage gives out, so it holds with any number
of workers on any number of machines; a failed trial's retry keeps its parameters but takes a
new number, which shifts that study's later start-up settings by one.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import FrozenTrial, TrialState

__all__ = ["PairedStartup", "setting_rng"]


def setting_rng(*parts: object) -> random.Random:
    """A generator seeded from ``parts`` alone (stable across processes and machines): setting
    ``k`` of a run is the same everywhere."""
    return random.Random(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest())


class PairedStartup(BaseSampler):
    """``base`` with its first ``n_paired`` trials drawn as shared settings (see the module)."""

    def __init__(self, base: BaseSampler, seed: int, n_paired: int) -> None:
        self._base = base
        self._seed = seed
        self._n_paired = n_paired

    def _paired(self, trial: FrozenTrial) -> bool:
        return trial.number < self._n_paired

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        if self._paired(trial):
            return {}
        return self._base.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if self._paired(trial):
            return {}
        return self._base.sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        if self._paired(trial):
            seed = setting_rng(self._seed, trial.number, param_name).getrandbits(32)
            draw = RandomSampler(seed=seed)
            return draw.sample_independent(study, trial, param_name, param_distribution)
        return self._base.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._base.before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._base.reseed_rng()
