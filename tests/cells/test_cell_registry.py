"""Custom cells: the decorator and the ``rnnopt.cells`` entry-point group."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch
from torch import nn

import rnnopt.cells as cells
from rnnopt.errors import ConfigError


class MinimalRNN(cells.RecurrentCell):
    """h' = relu(W x + U h + b) * scale: a user's cell written with plain ops."""

    state_size = 1

    def __init__(self, input_size: int, hidden_size: int, *, scale: float = 1.0) -> None:
        super().__init__(input_size, hidden_size)
        if scale <= 0:
            raise ConfigError(f"scale must be positive, got {scale!r}")
        self.scale = scale
        self.w = nn.Linear(input_size, hidden_size)
        self.u = nn.Linear(hidden_size, hidden_size, bias=False)
        self.reset_parameters()

    def forward(self, x, state=None):
        (h,) = self.check_input(x, state)
        wx = self.w(x)
        outs = []
        for wx_t in wx.unbind(0):
            h = torch.relu(wx_t + self.u(h)) * self.scale
            outs.append(h)
        return torch.stack(outs), (h,)

    def equation_parameters(self):
        return {"W": self.w.weight, "U": self.u.weight, "b": self.w.bias}


@pytest.fixture
def minimal():
    cells.register("test-minimal", description="test cell")(MinimalRNN)
    yield "test-minimal"
    cells.unregister("test-minimal")


def test_decorated_cell_works_everywhere_a_builtin_does(minimal):
    assert minimal in cells.names()
    s = cells.spec(minimal)
    assert s.options == frozenset({"scale"}) and s.description == "test cell"
    assert not s.has_forget_bias and s.gates == ()
    cell = cells.build(minimal, 3, 5, scale=0.5)
    assert cell.scale == 0.5
    stack = cells.StackedRNN(minimal, 3, 5, layers=2, dropout=0.2, init_scale=0.7, scale=2.0)
    out, state = stack(torch.randn(6, 2, 3))
    assert out.shape == (6, 2, 5) and len(state) == 2
    out.sum().backward()
    assert all(p.grad is not None for p in stack.parameters())
    bound = 0.7 / 5**0.5
    assert all(p.abs().max() <= bound for p in stack.parameters())
    with pytest.raises(ConfigError, match=r"'scal'.*allowed: scale"):
        cells.build(minimal, 3, 5, scal=1.0)
    with pytest.raises(ConfigError, match="already registered"):
        cells.register(minimal)(lambda i, h: MinimalRNN(i, h))


def test_register_a_factory_with_presets():
    @cells.register("test-lstm-b2", options=("forget_bias",), defaults={"forget_bias": 2.0})
    def factory(input_size, hidden_size, forget_bias=0.0):
        return cells.LSTMCell(input_size, hidden_size, forget_bias=forget_bias)

    try:
        assert cells.spec("test-lstm-b2").has_forget_bias
        assert (cells.build("test-lstm-b2", 2, 3).equation_parameters()["b_f"] == 2.0).all()
    finally:
        cells.unregister("test-lstm-b2")
    with pytest.raises(ConfigError, match="preset options"):
        cells.register("test-bad", options=("a",), defaults={"b": 1})(factory)


def test_factory_must_return_a_recurrent_cell():
    cells.register("test-not-a-cell", options=())(lambda i, h: nn.Linear(i, h))
    try:
        with pytest.raises(ConfigError, match="not a RecurrentCell"):
            cells.build("test-not-a-cell", 2, 3)
    finally:
        cells.unregister("test-not-a-cell")


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    """A fake installed distribution declaring entry points in the ``rnnopt.cells`` group."""
    (tmp_path / "rnnopt_test_plugin.py").write_text(
        textwrap.dedent(
            """
            import torch
            from rnnopt.cells import GRUFamilyCell

            def make(input_size, hidden_size, *, scale=1.0):
                cell = GRUFamilyCell(input_size, hidden_size, variant="mut3")
                cell.reset_parameters(scale)
                return cell
            """
        )
    )
    dist = tmp_path / "rnnopt_test_plugin-0.1.dist-info"
    dist.mkdir()
    meta = "Metadata-Version: 2.1\nName: rnnopt-test-plugin\nVersion: 0.1\n"
    (dist / "METADATA").write_text(meta)
    (dist / "entry_points.txt").write_text(
        "[rnnopt.cells]\n"
        "test-plugin = rnnopt_test_plugin:make\n"
        "test-broken = rnnopt_test_missing_module:make\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    cells.reload_plugins()
    yield
    monkeypatch.undo()
    sys.modules.pop("rnnopt_test_plugin", None)
    cells.unregister("test-plugin")
    cells.reload_plugins()


def test_entry_point_plugin_is_loaded_lazily_and_works(plugin_path):
    assert "test-plugin" in cells.names()
    assert cells.spec("test-plugin").options == frozenset({"scale"})
    stack = cells.StackedRNN("test-plugin", 4, 4, layers=2)
    assert stack(torch.randn(3, 2, 4))[0].shape == (3, 2, 4)


def test_broken_plugin_gives_an_error_naming_it(plugin_path):
    assert "test-broken" not in cells.names()
    with pytest.raises(ConfigError, match=r"cell plugin 'test-broken'.*rnnopt_test_missing_module"):
        cells.build("test-broken", 2, 2)
    assert cells.build("lstm", 2, 2) is not None  # the other cells keep working
