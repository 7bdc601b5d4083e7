"""Every shipped study file runs end to end: each of studies/*.toml and the packaged quick study,
at a tiny budget (two cells, a few steps, tiny models), with no FAILED trial.

The copy a test runs differs from the shipped file only in model size (``hidden_size`` and
``param_budget`` lines) and evaluation length; tasks, cells, samplers, pruners, spaces, gates,
the forget bias and every other training setting are the file's own.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from study_helpers import REPO, run

from rnnopt import tasks

pytestmark = pytest.mark.slow

FILES = [*sorted((REPO / "studies").glob("*.toml")), REPO / "rnnopt" / "studies" / "quick.toml"]
REAL_TASKS = {"ptb", "nottingham", "piano-midi", "musedata", "jsb"}


def _tiny_copy(source: Path, dest: Path) -> Path:
    text = source.read_text()
    text = re.sub(r"(?m)^hidden_size = .*$", "hidden_size = 16", text)
    text = re.sub(r"(?m)^param_budget = .*$", "param_budget = 120000", text)
    text = re.sub(r"(?m)^eval_batches = .*\n", "", text)
    # Gates of the staged filter one evaluation apart fit 4 steps only as one gate.
    text = re.sub(r"(?m)^schedule = .*$", 'schedule = "0.5:1"', text)
    text = re.sub(r"(?m)^\[train\]\n", "[train]\neval_batches = 2\n", text, count=1)
    if "[train]" not in text:
        text += "\n[train]\neval_batches = 2\n"
    dest.write_text(text)
    return dest


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_shipped_study_file_runs_without_a_failed_trial(
    path: Path, tmp_path: Path, have_data: bool, request: pytest.FixtureRequest
) -> None:
    study = tomllib.loads(path.read_text())["study"]
    wanted = study.get("tasks") or ["xml"]  # the quick study takes its task from --task
    runnable = [t for t in wanted if have_data or t not in REAL_TASKS]
    if not runnable:
        request.getfixturevalue("data_dir")  # skips, naming RNNOPT_DATA
    all_cells = study.get("cells", ["tanh", "mut3"])
    chosen = list(dict.fromkeys([all_cells[0], all_cells[-1]]))
    ablation = path.name == "lstm_ablation.toml"
    n_trials = 6 if ablation else 1
    url = f"sqlite:///{tmp_path / 'files.db'}"
    res = run(
        [
            "--study-file", str(_tiny_copy(path, tmp_path / path.name)),
            "--task", ",".join(runnable), "--cells", ",".join(chosen),
            "--n-trials", str(n_trials), "--max-steps", "4", "--eval-interval", "2",
            "--storage", url, "--workers", "1", "--device", "cpu", "--seed", "3",
        ],
        tmp_path,
        timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    storage = optuna.storages.RDBStorage(url)
    names = optuna.study.get_all_study_names(storage)
    per_task = 1 if study.get("mode") == "search" else len(chosen)
    assert len(names) == len(runnable) * per_task
    for name in names:
        trials = optuna.load_study(study_name=name, storage=storage).get_trials()
        assert len(trials) == n_trials, name
        failed = [t.user_attrs.get("reason") for t in trials if t.state == TrialState.FAIL]
        assert not failed, f"{path.name} {name}: {failed}"
        if ablation:
            without = [t for t in trials if t.params.get("forget_gate") is False]
            assert without, f"{name}: no trial without a forget gate"
            assert all("forget_bias" not in t.params for t in without)
            assert all("forget_bias" in t.params for t in trials if t not in without)
    storage.engine.dispose()
    assert set(runnable) <= set(tasks.names())
