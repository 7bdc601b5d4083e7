"""Samplers and pruners by name, with the options a study file's ``[sampler]`` / ``[pruner]``
tables may set, and start-up trials sized to the study.

Optuna's TPE and GP samplers draw their first ``n_startup_trials`` (10 by default) at random
before they model anything. A default study has 3 trials per cell, so with Optuna's default
every "tpe" study would be random search; here the start-up is sized to the study
(:func:`startup_trials`) unless the study file sets it. ``paired_startup = true`` draws the
start-up trials as settings shared by every cell's study (:mod:`rnnopt.hpo.paired`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from rnnopt.errors import ConfigError

__all__ = [
    "PRUNERS",
    "PRUNER_OPTIONS",
    "SAMPLERS",
    "SAMPLER_OPTIONS",
    "check_options",
    "make_pruner",
    "make_sampler",
    "paired_trials",
    "startup_text",
    "startup_trials",
]

SAMPLERS = ("tpe", "random", "gp", "cmaes", "qmc", "paper")
PRUNERS = ("hyperband", "successive-halving", "median", "percentile", "staged", "none")

# The constructor keyword arguments a study file may set, and their types.
SAMPLER_OPTIONS: dict[str, dict[str, type]] = {
    "tpe": {
        "paired_startup": bool, "n_startup_trials": int, "n_ei_candidates": int,
        "multivariate": bool, "group": bool, "constant_liar": bool, "consider_endpoints": bool,
        "prior_weight": float,
    },
    "random": {"paired_startup": bool},
    "paper": {"paired_startup": bool},
    "gp": {"paired_startup": bool, "n_startup_trials": int, "deterministic_objective": bool},
    "cmaes": {
        "n_startup_trials": int, "sigma0": float, "popsize": int, "with_margin": bool,
        "consider_pruned_trials": bool,
    },
    "qmc": {"qmc_type": str, "scramble": bool},
}  # fmt: skip
_STEPS = {"n_startup_trials": int, "n_warmup_steps": int, "interval_steps": int}
PRUNER_OPTIONS: dict[str, dict[str, type]] = {
    "median": dict(_STEPS),
    "percentile": {"percentile": float, **_STEPS},
    "hyperband": {
        "min_resource": int, "max_resource": int, "reduction_factor": int, "bootstrap_count": int,
    },
    "successive-halving": {
        "min_resource": int, "reduction_factor": int, "min_early_stopping_rate": int,
        "bootstrap_count": int,
    },
    "staged": {"schedule": str},  # rnnopt/hpo/staged.py
    "none": {},
}  # fmt: skip
MAX_STARTUP = 10  # Optuna's default for TPE and GP
# Lowest allowed values (Optuna accepts some of the bad ones and fails later, mid-study).
_MINIMUM = {"reduction_factor": 2, "min_resource": 1, "max_resource": 1, "n_ei_candidates": 1,
            "popsize": 1, "interval_steps": 1}  # fmt: skip


def startup_trials(n_trials: int) -> int:
    """Random start-up trials of a study of ``n_trials``: a third of them, 2 to 10 (a model
    of a single trial would only search around it)."""
    return max(2, min(MAX_STARTUP, n_trials // 3))


def _random_trials(name: str, n_trials: int, options: Mapping[str, Any] | None) -> int:
    """How many of a study's first trials the sampler draws without a model."""
    if name in ("random", "paper", "qmc"):
        return n_trials
    default = 1 if name == "cmaes" else startup_trials(n_trials)
    return min(n_trials, dict(options or {}).get("n_startup_trials", default))


def paired_trials(name: str, n_trials: int, options: Mapping[str, Any] | None = None) -> int:
    """How many of a study's first trials are paired across cells: 0 unless the options set
    ``paired_startup``; then the random start-up (every trial of ``random`` and ``paper``)."""
    if not dict(options or {}).get("paired_startup"):
        return 0
    return _random_trials(name, n_trials, options)


def check_options(
    kind: str, name: str, options: Mapping[str, Any], source: str = ""
) -> dict[str, Any]:
    """Validate a ``[sampler]`` or ``[pruner]`` table against the chosen one's options."""
    table = SAMPLER_OPTIONS if kind == "sampler" else PRUNER_OPTIONS
    allowed = table[name]
    where = f" in {source}" if source else ""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"unknown [{kind}] key(s) {', '.join(unknown)} for {kind} {name!r}{where}; "
            f"allowed: {', '.join(allowed) or 'none'}"
        )
    out = {}
    for key, value in options.items():
        want = allowed[key]
        ok = (
            isinstance(value, bool)
            if want is bool
            else isinstance(value, want) and not isinstance(value, bool)
            if want in (int, str)
            else isinstance(value, int | float) and not isinstance(value, bool)
        )
        if not ok:
            what = {int: "an integer", bool: "true or false", str: "a string"}.get(want, "a number")
            raise ConfigError(f"[{kind}] {key} = {value!r}{where}: must be {what}")
        lowest = _MINIMUM.get(key, 0)
        if want in (int, float) and not (
            value >= lowest and (key != "percentile" or value <= 100)
        ):
            bound = "in [0, 100]" if key == "percentile" else f">= {lowest}"
            raise ConfigError(f"[{kind}] {key} = {value!r}{where}: must be {bound}")
        out[key] = value
    return out


def make_sampler(
    name: str,
    seed: int | None,
    *,
    n_trials: int = 10,
    options: Mapping[str, Any] | None = None,
    pairing_seed: int = 0,
) -> Any:
    """The Optuna sampler ``name``; ``n_trials`` (per study) sizes the random start-up, and
    ``pairing_seed`` draws the paired start-up settings where the options ask for them."""
    if name not in SAMPLERS:
        raise ConfigError(f"unknown sampler {name!r}; allowed: {', '.join(SAMPLERS)}")
    n_paired = paired_trials(name, n_trials, options)
    sampler = _base_sampler(name, seed, n_trials, options)
    if not n_paired:
        return sampler
    from rnnopt.hpo.paired import PairedStartup

    return PairedStartup(sampler, pairing_seed, n_paired)


def _base_sampler(
    name: str, seed: int | None, n_trials: int, options: Mapping[str, Any] | None
) -> Any:
    import optuna

    opts = dict(options or {})
    opts.pop("paired_startup", None)
    if "n_startup_trials" in SAMPLER_OPTIONS[name] and name != "cmaes":
        opts.setdefault("n_startup_trials", startup_trials(n_trials))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            if name == "tpe":
                return optuna.samplers.TPESampler(seed=seed, **{"constant_liar": True, **opts})
            if name in ("random", "paper"):
                return optuna.samplers.RandomSampler(seed=seed)
            if name == "gp":
                return optuna.samplers.GPSampler(seed=seed, **opts)
            if name == "cmaes":
                return optuna.samplers.CmaEsSampler(
                    seed=seed, warn_independent_sampling=False, **opts
                )
            return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False, **opts)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"sampler {name!r} refused its options {opts}: {exc}") from None


def startup_text(name: str, n_trials: int, options: Mapping[str, Any] | None = None) -> str:
    """How many of a study's trials the sampler draws at random before it models."""
    if name in ("random", "paper", "qmc"):
        text = f"sampler {name}: all {n_trials} trials per study are drawn without a model"
        if paired_trials(name, n_trials, options):
            text += "; paired across cells (trial k of every study: one setting)"
        return text
    n = _random_trials(name, n_trials, options)
    text = (
        f"sampler {name}: the first {n} of {n_trials} trials per study are random start-up, "
        f"{n_trials - n} modelled (n_startup_trials; set it in [sampler])"
    )
    paired = paired_trials(name, n_trials, options)
    if paired:
        text += f"; start-up settings paired across cells (trial k < {paired}: one setting)"
    return text


def make_pruner(
    name: str, *, max_steps: int, eval_interval: int, options: Mapping[str, Any] | None = None
) -> Any:
    """Pruners measure resources in training steps (the intermediate values' keys)."""
    import optuna

    opts = dict(options or {})
    try:
        if name == "hyperband":
            kwargs = {"min_resource": eval_interval, "max_resource": max_steps,
                      "reduction_factor": 3, **opts}  # fmt: skip
            if kwargs["min_resource"] > kwargs["max_resource"]:
                raise ValueError("min_resource must not exceed max_resource")
            return optuna.pruners.HyperbandPruner(**kwargs)
        if name == "successive-halving":
            return optuna.pruners.SuccessiveHalvingPruner(
                **{"min_resource": eval_interval, "reduction_factor": 3, **opts}
            )
        if name == "median":
            return optuna.pruners.MedianPruner(
                **{"n_startup_trials": 2, "n_warmup_steps": eval_interval, **opts}
            )
        if name == "percentile":
            return optuna.pruners.PercentilePruner(
                **{"percentile": 25.0, "n_startup_trials": 2, "n_warmup_steps": eval_interval,
                   **opts}
            )  # fmt: skip
        if name == "staged":
            # The filter works across the cells' studies (rnnopt/hpo/staged.py); within a
            # study nothing is pruned.
            from rnnopt.hpo.staged import gate_steps, schedule_of

            gate_steps(schedule_of(opts), max_steps, eval_interval)
            return optuna.pruners.NopPruner()
        if name == "none":
            return optuna.pruners.NopPruner()
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"pruner {name!r} refused its options {opts}: {exc}") from None
    raise ConfigError(f"unknown pruner {name!r}; allowed: {', '.join(PRUNERS)}")
