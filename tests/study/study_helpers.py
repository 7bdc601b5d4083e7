"""Shared bits of the study tests: a tiny study file and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna

REPO = Path(__file__).resolve().parents[2]

TINY = """
[study]
max_steps = {max_steps}
n_trials = {n_trials}

[train]
batch_size = 8
unroll = 20
eval_interval = {eval_interval}
eval_batches = 2

[space]
hidden_size = 16
layers = 1
{extra}
"""


def tiny_study(
    tmp: Path,
    *,
    max_steps: int = 30,
    n_trials: int = 2,
    eval_interval: int = 10,
    extra: str = "",
    name: str = "tiny.toml",
) -> Path:
    path = tmp / name
    path.write_text(
        TINY.format(
            max_steps=max_steps, n_trials=n_trials, eval_interval=eval_interval, extra=extra
        )
    )
    return path


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def popen(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "rnnopt.study", *args],
        cwd=cwd,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(args: list[str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rnnopt.study", *args],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    storage = optuna.storages.RDBStorage(url)
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    finally:
        storage.engine.dispose()


def slots(ts: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """Trials that count toward --n-trials (not replaced by a retry)."""
    replaced = {
        t.system_attrs["retry_history"][-1] for t in ts if t.system_attrs.get("retry_history")
    }
    return [t for t in ts if t.number not in replaced]
