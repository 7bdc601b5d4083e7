"""Stacked recurrent layers with Zaremba et al. (2014) dropout between them.

::

    x [T, B, I] -> (projection to H, raw-input cells only) -> cell_0 -> dropout -> cell_1
      -> dropout -> ... -> cell_{L-1} -> outputs [T, B, H]

Dropout acts on the non-recurrent connections between layers only; the recurrent state is
never dropped, and the last layer's outputs are returned as they are (the model applies its own
dropout before the head).
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import torch
from torch import Tensor, nn

from rnnopt.cells._base import State, check_size
from rnnopt.cells._registry import build, spec
from rnnopt.errors import ConfigError

__all__ = ["MAX_LAYERS", "StackedRNN"]

MAX_LAYERS = 4


class StackedRNN(nn.Module):
    """``layers`` cells of type ``cell`` (a registered name), each with ``hidden_size`` units.

    ``cell_options`` go to every layer's cell (preset defaults apply). A ``Linear(input_size,
    hidden_size)`` projection sits in front of layer 0 when the cell is ``raw_input`` and
    ``input_size != hidden_size``. Parameters are initialised by ``reset_parameters(init_scale)``.
    State is a list with one tuple per layer (``None``: zeros).
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        *,
        layers: int = 1,
        dropout: float = 0.0,
        init_scale: float = 1.0,
        **cell_options: Any,
    ) -> None:
        super().__init__()
        cell_spec = spec(cell)
        check_size("input_size", input_size)
        check_size("hidden_size", hidden_size)
        if isinstance(layers, bool) or not isinstance(layers, int) or not 1 <= layers <= MAX_LAYERS:
            raise ConfigError(f"layers must be an integer from 1 to {MAX_LAYERS}, got {layers!r}")
        if (
            isinstance(dropout, bool)
            or not isinstance(dropout, Real)
            or not 0.0 <= float(dropout) < 1.0
        ):
            raise ConfigError(f"dropout must be a number in [0, 1), got {dropout!r}")
        self.cell_name = cell
        self.input_size, self.hidden_size, self.layers = input_size, hidden_size, layers
        self.dropout = float(dropout)
        self.projection: nn.Linear | None = None
        first_in = input_size
        if cell_spec.raw_input and input_size != hidden_size:
            self.projection = nn.Linear(input_size, hidden_size)
            first_in = hidden_size
        self.cells = nn.ModuleList(
            build(cell, first_in if k == 0 else hidden_size, hidden_size, **cell_options)
            for k in range(layers)
        )
        self.drop = nn.Dropout(self.dropout)
        self.reset_parameters(init_scale)

    @property
    def state_size(self) -> int:
        return self.cells[0].state_size

    @torch.no_grad()
    def reset_parameters(self, init_scale: float = 1.0) -> None:
        """uniform(-s, s), s = init_scale / sqrt(hidden_size), everywhere; then forget biases."""
        if isinstance(init_scale, bool) or not isinstance(init_scale, Real) or init_scale <= 0:
            raise ConfigError(f"init_scale must be a positive number, got {init_scale!r}")
        for c in self.cells:
            c.reset_parameters(init_scale)
        if self.projection is not None:
            s = float(init_scale) / math.sqrt(self.hidden_size)
            for p in self.projection.parameters():
                p.uniform_(-s, s)

    def forward(
        self, x: Tensor, state: list[State] | None = None
    ) -> tuple[Tensor, list[State]]:
        """x ``[T, B, I]`` -> outputs ``[T, B, H]`` of the last layer and the state list."""
        if state is not None and len(state) != self.layers:
            raise ConfigError(
                f"state must be a list of {self.layers} per-layer tuples, got {len(state)}"
            )
        if self.projection is not None:
            x = self.projection(x)
        new_state: list[State] = []
        for k, cell in enumerate(self.cells):
            if k > 0:
                x = self.drop(x)
            x, s = cell(x, None if state is None else state[k])
            new_state.append(s)
        return x, new_state

    def extra_repr(self) -> str:
        return f"cell={self.cell_name!r}, layers={self.layers}, dropout={self.dropout}"
