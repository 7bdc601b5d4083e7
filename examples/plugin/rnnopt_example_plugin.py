"""An rnnopt plug-in: a recurrent cell with a searchable option, and a task.

Installed (``pip install .``), its entry points make ``scaled-rnn`` and ``sine`` known to every
rnnopt command; uninstalled, ``--plugin rnnopt_example_plugin`` does the same.
"""

from __future__ import annotations

import math

import torch
from torch import nn

import rnnopt.cells
import rnnopt.tasks
from rnnopt.errors import ConfigError


@rnnopt.cells.register(
    "scaled-rnn",
    searchable=[rnnopt.cells.CellOption("scale", low=0.25, high=4.0, log=True)],
)
class ScaledRNN(rnnopt.cells.RecurrentCell):
    """tanh RNN with a gain: h' = tanh(scale * (W x + U h + b))."""

    state_size = 1

    def __init__(self, input_size: int, hidden_size: int, *, scale: float = 1.0) -> None:
        super().__init__(input_size, hidden_size)
        if not scale > 0:
            raise ConfigError(f"scaled-rnn: scale={scale!r} must be > 0")
        self.scale = float(scale)
        self.w = nn.Linear(input_size, hidden_size)
        self.u = nn.Linear(hidden_size, hidden_size, bias=False)
        self.reset_parameters()

    def forward(self, x, state=None):                 # x [T, B, I] -> ([T, B, H], (h,))
        (h,) = self.check_input(x, state)             # zeros when state is None
        outs = []
        for wx_t in self.w(x).unbind(0):               # all input projections in one matmul
            h = torch.tanh(self.scale * (wx_t + self.u(h)))
            outs.append(h)
        return torch.stack(outs), (h,)

    def equation_parameters(self):
        return {"W": self.w.weight, "U": self.u.weight, "b": self.w.bias}


@rnnopt.tasks.register
class Sine(rnnopt.tasks.ExampleTask):
    """Predict the next value of sine waves of random phase and frequency."""

    name = "sine"
    description = "next value of a sine wave (regression, MSE)"
    input_kind = "real"       # input_size floats per step ("tokens": ids < input_size)
    input_size = 1
    output_size = 1
    metric = "mse"            # real-valued targets; also reports mae
    options_spec = (rnnopt.tasks.Option("steps", 40, int, 2, 10_000, "steps per wave"),)

    def examples(self, split: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
        count = {"train": 256, "valid": 32, "test": 32}[split]
        rng = torch.Generator().manual_seed(("train", "valid", "test").index(split))
        t = torch.arange(self.options["steps"] + 1.0)
        out = []
        for _ in range(count):
            phase = float(torch.rand((), generator=rng)) * 2 * math.pi
            freq = 0.1 + 0.4 * float(torch.rand((), generator=rng))
            wave = torch.sin(phase + freq * t)
            out.append((wave[:-1], wave[1:]))  # inputs [T], targets [T]: the next value
        return out
