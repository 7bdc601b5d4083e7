"""StackedRNN: layers, dropout between layers only, projection for raw-input cells, init."""

from __future__ import annotations

import math

import pytest
import torch

import rnnopt.cells as cells
from rnnopt.cells import StackedRNN
from rnnopt.errors import ConfigError


@pytest.mark.parametrize("name", cells.names())
def test_every_cell_stacks(name):
    torch.manual_seed(0)
    stack = StackedRNN(name, 3, 6, layers=2, dropout=0.1).double()
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    out, state = stack(x)
    assert out.shape == (5, 2, 6) and len(state) == 2
    assert all(len(s) == stack.state_size for s in state)
    stack.eval()
    full, _ = stack(x)
    a, mid = stack(x[:2])
    b, _ = stack(x[2:], mid)
    torch.testing.assert_close(torch.cat([a, b]), full, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layers", [1, 2, 3, 4])
def test_layers_one_to_four(layers):
    stack = StackedRNN("gru", 3, 4, layers=layers)
    assert len(stack.cells) == layers
    assert stack.cells[0].input_size == 3 and all(c.input_size == 4 for c in stack.cells[1:])
    _, state = stack(torch.randn(2, 1, 3))
    assert len(state) == layers


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"layers": 0}, "0"),
        ({"layers": 5}, "5"),
        ({"layers": 2.0}, "2.0"),
        ({"dropout": 1.0}, "1.0"),
        ({"dropout": -0.1}, "-0.1"),
        ({"init_scale": -1}, "-1"),
        ({"forget_bias": 1.0}, "'forget_bias'"),
    ],
)
def test_bad_stack_options(kwargs, named):
    with pytest.raises(ConfigError) as err:
        StackedRNN("gru", 3, 4, **kwargs)
    assert named in str(err.value)
    with pytest.raises(ConfigError, match="'nope'"):
        StackedRNN("nope", 3, 4)


def test_dropout_acts_between_layers_only():
    torch.manual_seed(0)
    one = StackedRNN("lstm", 3, 8, layers=1, dropout=0.5).train()
    x = torch.randn(4, 2, 3)
    torch.testing.assert_close(one(x)[0], one(x)[0], rtol=0, atol=0)  # nothing to drop
    two = StackedRNN("lstm", 3, 8, layers=2, dropout=0.5).train()
    assert (two(x)[0] - two(x)[0]).abs().max() > 1e-4
    two.eval()
    torch.testing.assert_close(two(x)[0], two(x)[0], rtol=0, atol=0)
    # the recurrent path is not dropped: the first layer's state is dropout-free
    two.train()
    s1 = two(x)[1][0][0]
    s2 = two(x)[1][0][0]
    torch.testing.assert_close(s1, s2, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("name", "input_size", "projected"),
    [("mut1", 5, True), ("mut2", 5, True), ("mut1", 8, False), ("mut3", 5, False),
     ("lstm", 5, False)],
)  # fmt: skip
def test_projection_only_for_raw_input_cells(name, input_size, projected):
    stack = StackedRNN(name, input_size, 8, layers=2)
    assert (stack.projection is not None) == projected
    if projected:
        assert stack.projection.in_features == input_size and stack.cells[0].input_size == 8
    assert stack(torch.randn(3, 2, input_size))[0].shape == (3, 2, 8)


@pytest.mark.parametrize("init_scale", [0.3, 2.8])
def test_reset_parameters_uniform_and_forget_bias(init_scale):
    torch.manual_seed(0)
    stack = StackedRNN("lstm", 5, 16, layers=3, init_scale=init_scale, forget_bias=1.0)
    s = init_scale / math.sqrt(16)
    for cell in stack.cells:
        eq = cell.equation_parameters()
        assert (eq["b_f"] == 1.0).all()
        rest = torch.cat([v.flatten() for k, v in eq.items() if k != "b_f"])
        assert rest.abs().max() <= s and rest.abs().max() > 0.9 * s
        assert abs(rest.mean().item()) < 0.1 * s  # centred, as uniform(-s, s) is
    stack.reset_parameters(1.0)
    assert all((c.equation_parameters()["b_f"] == 1.0).all() for c in stack.cells)
    proj = StackedRNN("mut2", 3, 16, init_scale=init_scale)
    assert max(p.abs().max() for p in proj.projection.parameters()) <= s
