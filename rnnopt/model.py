"""The sequence model every study trains: input layer -> stacked recurrent cells -> task head.

    tokens   [T, B] int64     -> Embedding(V, H) -.
                                                   |-> dropout -> StackedRNN -> dropout -> head
    multihot [T, B, 88] float -> Linear(88, H) ---|               [T, B, H]                [T, B, O]
    real     [T, B, C] float  -> Linear(C, H) ----'

The input layer maps to the hidden size so that cells whose equations use the raw input
(MUT1, MUT2) see an input of hidden size, as in the paper.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from rnnopt import cells
from rnnopt.errors import ConfigError

__all__ = ["SequenceModel", "State"]

State = list[tuple[torch.Tensor, ...]]


class SequenceModel(nn.Module):
    """A recurrent model shaped by a task: ``forward(inputs, state) -> (logits, state)``.

    ``task`` supplies ``input_kind``, ``input_size`` and ``output_size``; ``cell`` is a registered
    cell name; ``cell_options`` go to every cell. Parameters are initialised uniform(-s, s) with
    s = init_scale / sqrt(hidden_size) (the cells' own rule, used for the embedding and head as
    well); the head bias starts at zero.
    """

    def __init__(
        self,
        task: Any,
        cell: str,
        hidden_size: int,
        *,
        layers: int = 1,
        dropout: float = 0.0,
        init_scale: float = 1.0,
        **cell_options: Any,
    ) -> None:
        super().__init__()
        if task.input_kind == "tokens":
            self.encoder: nn.Module = nn.Embedding(task.input_size, hidden_size)
        elif task.input_kind in ("multihot", "real"):
            self.encoder = nn.Linear(task.input_size, hidden_size)
        else:
            raise ConfigError(
                f"task {task.name!r} has input_kind {task.input_kind!r}; "
                "allowed: tokens, multihot, real"
            )
        self.input_kind = task.input_kind
        self.hidden_size = hidden_size
        self.layers = layers
        # Identity when there is no dropout: nn.Dropout(0) still costs a kernel per call.
        self.drop: nn.Module = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.rnn = cells.StackedRNN(
            cell,
            hidden_size,
            hidden_size,
            layers=layers,
            dropout=dropout,
            init_scale=init_scale,
            **cell_options,
        )
        self.head = nn.Linear(hidden_size, task.output_size)
        self.reset_parameters(init_scale)

    def reset_parameters(self, init_scale: float = 1.0) -> None:
        s = init_scale / math.sqrt(self.hidden_size)
        self.rnn.reset_parameters(init_scale)
        with torch.no_grad():
            for p in self.encoder.parameters():
                p.uniform_(-s, s)
            self.head.weight.uniform_(-s, s)
            self.head.bias.zero_()

    def forward(
        self, inputs: torch.Tensor, state: State | None = None
    ) -> tuple[torch.Tensor, State]:
        """inputs ``[T, B]`` (tokens) or ``[T, B, I]`` (multihot, real) -> ``[T, B, O]`` (logits,
        or predicted values for a regression task)."""
        x = self.drop(self.encoder(inputs))
        out, state = self.rnn(x, state)
        return self.head(self.drop(out)), state


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
