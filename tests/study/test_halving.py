"""Multi-fidelity over cells: search mode under successive halving (studies/cells_halving)."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.trial import TrialState
from study_helpers import run, trials

from rnnopt.hpo.plan import make_plan
from rnnopt.study import build_parser

# studies/cells_halving.toml at a tiny budget: rungs at 10 and 20 steps of 40.
HALVING = """
[study]
mode = "search"
sampler = "random"
pruner = "successive-halving"
n_trials = 6
max_steps = 40

[pruner]
min_resource = 10
reduction_factor = 2

[train]
batch_size = 8
unroll = 20
eval_interval = 10
eval_batches = 2

[train.xml]
task_options = { valid_size = 60, test_size = 60, force_close_after = 6 }

[space]
hidden_size = 16
layers = 1
"""


def test_shipped_file_halves_across_cells(tmp_path: Path) -> None:
    args = ["--task", "xml", "--study-file", "cells_halving",
            "--storage", f"sqlite:///{tmp_path / 'r.db'}"]  # fmt: skip
    plan = make_plan(build_parser().parse_args(args), args)
    assert plan.pruner == "successive-halving" and plan.pruner_options["min_resource"] == 700
    (study,) = plan.studies
    assert study.mode == "search" and len(study.space["cell"]["choices"]) == 10
    assert plan.n_trials == 30 and plan.max_steps == 7000


@pytest.mark.slow
def test_halving_across_cells_end_to_end(sqlite_url: str, tmp_path: Path) -> None:
    path = tmp_path / "halving.toml"
    path.write_text(HALVING)
    res = run(
        ["--task", "xml", "--cells", "tanh,gru", "--study-file", str(path), "--storage",
         sqlite_url, "--seed", "3", "--workers", "1"],
        tmp_path, timeout=400,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    ts = trials(sqlite_url, "xml/search")
    assert len(ts) == 6 and all(t.state.is_finished() for t in ts)
    assert {t.params["cell"] for t in ts} == {"tanh", "gru"}
    pruned = [t for t in ts if t.state == TrialState.PRUNED]
    full = [t for t in ts if t.state == TrialState.COMPLETE]
    assert pruned and full
    # Pruned trials stopped at a rung (10 or 20 steps), the survivors ran all 40.
    assert all(max(t.intermediate_values) < 40 for t in pruned)
    assert all(t.user_attrs["reason"].startswith("pruned by the pruner at step") for t in pruned)
    assert all(t.user_attrs["steps"] == 40 for t in full)
    assert "tanh" in res.stdout and "gru" in res.stdout
