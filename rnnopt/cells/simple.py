"""Cells that are exactly one of torch's fused recurrent kernels.

``tanh`` is the paper's tanh RNN, h' = tanh(W_xh x + W_hh h + b_h), on torch's fused RNN kernel
with one bias. ``nn-lstm`` and ``nn-gru`` are torch.nn.LSTM and torch.nn.GRU as they are, with
torch's two biases per gate, offered under their own names. nn.GRU is NOT the paper's GRU: it
computes n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), the reset gate applied after the
recurrent matrix; the paper's GRU (``gru``) applies it to h before the matrix.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnopt.cells._base import RecurrentCell, State, check_forget_bias
from rnnopt.cells._registry import register

__all__ = ["NNGRUCell", "NNLSTMCell", "TanhCell"]


@register("tanh", options=(), description="tanh RNN: h' = tanh(W_xh x + W_hh h + b_h)")
class TanhCell(RecurrentCell):
    """The tanh RNN, h' = tanh(W_xh x + W_hh h + b_h), on torch's fused kernel (one bias)."""

    state_size = 1

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.empty(hidden_size))
        self.register_buffer("_zero_bias", torch.zeros(hidden_size), persistent=False)
        self.reset_parameters()

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        (h0,) = self.check_input(x, state)
        out, h = torch._VF.rnn_tanh(
            x,
            h0.unsqueeze(0),
            [self.weight_ih, self.weight_hh, self.bias, self._zero_bias],
            True,
            1,
            0.0,
            self.training,
            False,
            False,
        )
        return out, (h.squeeze(0),)

    def equation_parameters(self) -> dict[str, Tensor]:
        return {"W_xh": self.weight_ih, "W_hh": self.weight_hh, "b_h": self.bias}


class _TorchModuleCell(RecurrentCell):
    """A single-layer torch.nn.LSTM / torch.nn.GRU behind the cell interface."""

    _gate_order: tuple[str, ...] = ()

    def _torch_names(self) -> dict[str, Tensor]:
        # torch's documented equation names: W_i<gate>, W_h<gate>, b_i<gate>, b_h<gate>.
        H, out = self.hidden_size, {}
        rnn = self.rnn
        for k, gname in enumerate(self._gate_order):
            rows = slice(k * H, (k + 1) * H)
            out[f"W_i{gname}"] = rnn.weight_ih_l0[rows]
            out[f"W_h{gname}"] = rnn.weight_hh_l0[rows]
            out[f"b_i{gname}"] = rnn.bias_ih_l0[rows]
            out[f"b_h{gname}"] = rnn.bias_hh_l0[rows]
        return out

    def equation_parameters(self) -> dict[str, Tensor]:
        return self._torch_names()


@register("nn-lstm", description="torch.nn.LSTM as is (two biases per gate)")
class NNLSTMCell(_TorchModuleCell):
    """torch.nn.LSTM as is: i, f, g, o with two biases per gate (b_i* + b_h*).

    Same function as ``lstm`` (which keeps one bias per gate, the equations' parameter count);
    ``forget_bias`` is written onto b_if with b_hf set to zero, so their sum is the bias.
    """

    state_size = 2
    _gate_order = ("i", "f", "g", "o")

    def __init__(self, input_size: int, hidden_size: int, *, forget_bias: float = 0.0) -> None:
        super().__init__(input_size, hidden_size)
        self.forget_bias = check_forget_bias(forget_bias)
        self.rnn = nn.LSTM(input_size, hidden_size)
        self.reset_parameters()

    @torch.no_grad()
    def apply_forget_bias(self) -> None:
        H = self.hidden_size
        self.rnn.bias_ih_l0[H : 2 * H].fill_(self.forget_bias)
        self.rnn.bias_hh_l0[H : 2 * H].zero_()

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        h0, c0 = self.check_input(x, state)
        out, (h, c) = self.rnn(x, (h0.unsqueeze(0), c0.unsqueeze(0)))
        return out, (h.squeeze(0), c.squeeze(0))


@register("nn-gru", description="torch.nn.GRU as is (reset gate after W_hn: not the paper's GRU)")
class NNGRUCell(_TorchModuleCell):
    """torch.nn.GRU as is; NOT the paper's GRU.

    torch computes n = tanh(W_in x + b_in + r * (W_hn h + b_hn)) and h' = (1 - z) * n + z * h:
    the reset gate multiplies the recurrent matrix's output, where the paper's GRU (``gru``)
    multiplies h before the matrix. Two biases per gate; block order r, z, n.
    """

    state_size = 1
    _gate_order = ("r", "z", "n")

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.rnn = nn.GRU(input_size, hidden_size)
        self.reset_parameters()

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        (h0,) = self.check_input(x, state)
        out, h = self.rnn(x, h0.unsqueeze(0))
        return out, (h.squeeze(0),)
