"""Study files (``studies/*.toml``, the format in ``rnnopt.hpo.space``'s docstring): found by
name (``resolve_study_path``), read and validated (``load_study_file``), before anything runs."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnopt.errors import ConfigError
from rnnopt.hpo.space import _SIZE_KEYS, Space, _parse_param, _where, parse_space

__all__ = ["STUDY_KEYS", "StudyFile", "load_study_file", "resolve_study_path"]

STUDY_KEYS = (
    "tasks",
    "task",
    "cells",
    "mode",
    "sampler",
    "pruner",
    "n_trials",
    "max_steps",
    "confirm",
    "timeout",
    "seed",
    "study_name",
)


@dataclass
class StudyFile:
    """A parsed study file: option defaults, fixed training settings, and the space."""

    path: str
    study: dict[str, Any]
    train: dict[str, Any]
    task_train: dict[str, dict[str, Any]]
    space: Space
    sampler: dict[str, Any] = field(default_factory=dict)  # options (rnnopt/hpo/samplers.py)
    pruner: dict[str, Any] = field(default_factory=dict)


_TRAIN_KEYS = (
    "cell_options",
    "task_options",
    "optimizer",
    "loss_reduction",
    "batch_size",
    "unroll",
    "eval_interval",
    "eval_batches",
    "lr_decay",
    "patience",
    "bf16",
    "time_limit",
    "checkpoint_every",
)
def _check_train(
    table: Mapping[str, Any], where: str, label: str, per_task: bool = False
) -> dict[str, Any]:
    allowed = [*_TRAIN_KEYS, *(_SIZE_KEYS if per_task else ())]
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ConfigError(
            f"unknown {label} key(s) {', '.join(unknown)}{where}; allowed: {', '.join(allowed)}"
        )
    for key in ("cell_options", "task_options"):
        if key in table and not isinstance(table[key], dict):
            raise ConfigError(
                f"{label}.{key} = {table[key]!r}{where}; allowed: a table of options, "
                f"e.g. {key} = {{ name = value }}"
            )
    if per_task and all(k in table for k in _SIZE_KEYS):
        raise ConfigError(f"{label}: give hidden_size or param_budget, not both{where}")
    for key in _SIZE_KEYS:
        if key in table:
            _parse_param(key, table[key], label + where)
            if isinstance(table[key], list | dict):
                raise ConfigError(
                    f"{label}.{key}: must be one integer (search it in [space]){where}"
                )
    return dict(table)


_STUDY_STRINGS = {
    "task": "a task name in quotes (e.g. task = \"xml\"), or tasks = [...]",
    "mode": "\"compare\" or \"search\"",
    "sampler": "a sampler name in quotes",
    "pruner": "a pruner name in quotes",
}


def resolve_study_path(name: str) -> Path:
    """A study file path as given, or ``studies/NAME(.toml)`` in the cwd or the source tree."""
    candidates = [Path(name)]
    if not name.endswith(".toml"):
        candidates.append(Path(name + ".toml"))
    repo = Path(__file__).resolve().parents[2]
    package = Path(__file__).resolve().parents[1]
    for base in (Path("studies"), repo / "studies", package / "studies"):
        candidates += [base / Path(name).name, base / (Path(name).name + ".toml")]
    for c in candidates:
        if c.is_file():
            return c
    raise ConfigError(
        f"study file {name!r} not found (looked in ., studies/ and {repo / 'studies'})"
    )


def load_study_file(name: str) -> StudyFile:
    """Read and validate a study file; unknown keys or bad ranges raise ConfigError."""
    path = resolve_study_path(name)
    source = str(path)
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"study file {source} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at "
            f"offset {exc.start}); allowed: a TOML file in UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"study file {source} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read study file {source}: {exc.strerror}") from None
    where = _where(source)
    tables = ("study", "train", "space", "sampler", "pruner", "description")
    unknown = sorted(set(doc) - set(tables))
    if unknown:
        raise ConfigError(
            f"unknown table(s) {', '.join(unknown)}{where}; allowed: {', '.join(tables)}"
        )
    for kind in ("sampler", "pruner"):  # their keys are checked against the chosen one
        if not isinstance(doc.get(kind, {}), dict):
            raise ConfigError(f"[{kind}] must be a table{where}")
    study = doc.get("study", {})
    if not isinstance(study, dict):
        raise ConfigError(f"[study] must be a table{where}")
    bad = sorted(set(study) - set(STUDY_KEYS))
    if bad:
        raise ConfigError(
            f"unknown study key(s) {', '.join(bad)}{where}; allowed: {', '.join(STUDY_KEYS)}"
        )
    if "task" in study and "tasks" in study:
        raise ConfigError(f"study: give task or tasks, not both{where}")
    for key, allowed in _STUDY_STRINGS.items():
        if key in study and (not isinstance(study[key], str) or not study[key].strip()):
            raise ConfigError(f"study.{key} = {study[key]!r}{where}; allowed: {allowed}")
    if isinstance(study.get("timeout"), bool):
        raise ConfigError(
            f"study.timeout = {study['timeout']!r}{where}; allowed: a number of seconds > 0"
        )
    for key in ("tasks", "cells"):
        if key in study and (
            not isinstance(study[key], list) or not all(isinstance(x, str) for x in study[key])
        ):
            raise ConfigError(f"study.{key}: {study[key]!r} must be a list of names{where}")
    train_raw = doc.get("train", {})
    if not isinstance(train_raw, dict):
        raise ConfigError(f"[train] must be a table{where}")
    per_task = {k: v for k, v in train_raw.items() if isinstance(v, dict) and k not in _TRAIN_KEYS}
    from rnnopt import tasks as task_registry

    unknown_tasks = sorted(set(per_task) - set(task_registry.names()))
    if unknown_tasks:
        raise ConfigError(
            f"unknown table(s) {', '.join(f'[train.{t}]' for t in unknown_tasks)}{where}; "
            f"allowed: [train.TASK] for a task among {', '.join(task_registry.names())}"
        )
    train = _check_train({k: v for k, v in train_raw.items() if k not in per_task}, where, "train")
    task_train = {t: _check_train(v, where, f"train.{t}", True) for t, v in per_task.items()}
    space = parse_space(doc.get("space", {}), source)
    return StudyFile(
        source, dict(study), train, task_train, space,
        sampler=dict(doc.get("sampler", {})), pruner=dict(doc.get("pruner", {})),
    )  # fmt: skip
