"""The parameter-budget solver lands within 5% of the budget for every registered cell."""

from __future__ import annotations

import pytest

from rnnopt import cells, tasks
from rnnopt.budget import model_parameters, solve_hidden_size
from rnnopt.errors import ConfigError
from rnnopt.model import SequenceModel, count_parameters


@pytest.mark.parametrize("cell", cells.names())
def test_budget_within_five_percent_for_every_cell(cell: str) -> None:
    xml = tasks.get("xml")
    ptb_shape = tasks.get("ptb")
    for task, budget, layers in [(xml, 250_000, 1), (xml, 1_000_000, 2), (ptb_shape, 5_000_000, 2)]:
        hidden = solve_hidden_size(task, cell, budget, layers=layers)
        n = model_parameters(task, cell, hidden, layers=layers)
        assert abs(n - budget) / budget <= 0.05, (cell, task.name, budget, hidden, n)
        # Closest integer size: one unit either way is no nearer to the budget.
        for other in (hidden - 1, hidden + 1):
            other_n = model_parameters(task, cell, other, layers=layers)
            assert abs(other_n - budget) >= abs(n - budget)


@pytest.mark.parametrize("cell", ["lstm", "mut1", "lstm-peep"])
def test_meta_count_matches_the_real_model(cell: str) -> None:
    music = tasks.get("jsb")
    real = SequenceModel(music, cell, 48, layers=2)
    assert model_parameters(music, cell, 48, layers=2) == count_parameters(real)


def test_budget_below_the_smallest_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="param_budget 500"):
        solve_hidden_size(tasks.get("ptb"), "lstm", 500)


def test_config_with_budget_trains_at_the_solved_size(small) -> None:
    from rnnopt.train import train

    result = train(small("arith", hidden_size=None, param_budget=20_000, max_steps=2))
    assert abs(result.n_params - 20_000) / 20_000 <= 0.05
    assert result.hidden_size == solve_hidden_size(tasks.get("arith"), "lstm", 20_000)
