"""The LSTM family: one cell with flags for the paper's ablations and Greff et al.'s variants.

    i  = sigma(W_xi x + W_hi h + p_i * c + b_i)      input gate        (1 if input_gate=False)
    f  = sigma(W_xf x + W_hf h + p_f * c + b_f)      forget gate       (1 if forget_gate=False,
                                                                         1 - i if coupled_gates)
    g  = tanh(W_xg x + W_hg h + b_g)                 candidate         (identity: NIAF)
    c' = f * c + i * g
    o  = sigma(W_xo x + W_ho h + p_o * c' + b_o)     output gate       (1 if output_gate=False)
    h' = o * tanh(c')                                                  (o * c': NOAF)

Peephole terms (p_*) exist only with ``peepholes=True``; with ``full_gate_recurrence=True``
(Greff's FGR) every gate also receives R_ab a_{t-1} from the previous activations of the gates
a in (i, f, o). The configuration with all gates and nothing else is exactly torch.nn.LSTM (with
one bias per gate) and runs on torch's fused kernel; every other one runs the shared recurrence
:func:`rnnopt.cells._kernels.lstm_scan`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnopt.cells import _kernels
from rnnopt.cells._base import RecurrentCell, State, check_flag, check_forget_bias
from rnnopt.cells._kernels import LSTMFlags
from rnnopt.cells._registry import CellOption, register
from rnnopt.errors import ConfigError

__all__ = ["LSTMCell"]

_GATES = ("input_gate", "output_gate", "forget_gate")
_GREFF_NAMES = {"i": "i", "f": "f", "g": "z", "o": "o"}


class LSTMCell(RecurrentCell):
    """The paper's LSTM (no peepholes, forget bias 0) with every ablation as a flag.

    Options: ``input_gate``, ``forget_gate``, ``output_gate`` (False: the gate is the constant
    1), ``forget_bias`` (written onto b_f at initialisation; default 0.0), ``peepholes``
    (Greff et al.), ``coupled_gates`` (CIFG: f = 1 - i), ``input_activation`` /
    ``output_activation`` (False: NIAF / NOAF), ``full_gate_recurrence`` (FGR) and
    ``notation`` (``"paper"``: ``W_xi, W_hi, b_i, W_xg ...``; ``"greff"``: ``W_i, R_i, b_i,
    W_z, R_z, b_z ...``), the names :meth:`equation_parameters` uses.
    State: ``(h, c)``; with full gate recurrence ``(h, c, a_i, a_f, a_o)`` for the gates present.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        input_gate: bool = True,
        forget_gate: bool = True,
        output_gate: bool = True,
        forget_bias: float | None = None,
        peepholes: bool = False,
        coupled_gates: bool = False,
        input_activation: bool = True,
        output_activation: bool = True,
        full_gate_recurrence: bool = False,
        notation: str = "paper",
    ) -> None:
        super().__init__(input_size, hidden_size)
        flags = LSTMFlags(
            input_gate=check_flag("input_gate", input_gate),
            forget_gate=check_flag("forget_gate", forget_gate),
            output_gate=check_flag("output_gate", output_gate),
            coupled=check_flag("coupled_gates", coupled_gates),
            input_activation=check_flag("input_activation", input_activation),
            output_activation=check_flag("output_activation", output_activation),
            peepholes=check_flag("peepholes", peepholes),
            fgr=check_flag("full_gate_recurrence", full_gate_recurrence),
        )
        if flags.coupled and not input_gate:
            raise ConfigError("coupled_gates=True (f = 1 - i) needs input_gate=True, got False")
        if flags.coupled and not forget_gate:
            raise ConfigError(
                "coupled_gates=True replaces the forget gate by 1 - i; it contradicts "
                "forget_gate=False (use one or the other)"
            )
        has_forget = "f" in flags.blocks
        if forget_bias is not None:
            forget_bias = check_forget_bias(forget_bias)
            if forget_bias != 0.0 and not has_forget:
                why = "coupled_gates=True" if flags.coupled else "forget_gate=False"
                raise ConfigError(
                    f"forget_bias={forget_bias!r} needs a forget gate, but this cell has {why}"
                )
        if flags.fgr and not flags.recurrent_gates:
            raise ConfigError("full_gate_recurrence=True needs at least one gate, got none")
        if notation not in ("paper", "greff"):
            raise ConfigError(f"notation must be 'paper' or 'greff', got {notation!r}")
        self.flags = flags
        self.notation = notation
        self.forget_bias = forget_bias if has_forget else None
        if self.forget_bias is None and has_forget:
            self.forget_bias = 0.0
        self.fused = flags == LSTMFlags()
        blocks = flags.blocks
        H, G = hidden_size, len(blocks)
        K = len(flags.recurrent_gates) if flags.fgr else 0
        self.state_size = 2 + K
        self.weight_ih = nn.Parameter(torch.empty(G * H, input_size))
        self.weight_hh = nn.Parameter(torch.empty(G * H, hidden_size))
        self.bias = nn.Parameter(torch.empty(G * H))
        if self.fused:
            # torch's kernel adds two biases; the second is a constant zero, so the cell keeps
            # one bias per gate (the equations' parameter count).
            self.register_buffer("_zero_bias", torch.zeros(G * H), persistent=False)
        self.peep_gates = tuple(b for b in blocks if b != "g") if flags.peepholes else ()
        for b in self.peep_gates:
            self.register_parameter(f"peep_{b}", nn.Parameter(torch.empty(H)))
        if K:
            # Row block b, column block a: R_ab, from gate a at t-1 into gate b.
            self.weight_gg = nn.Parameter(torch.empty(K * H, K * H))
        self.reset_parameters()

    @torch.no_grad()
    def apply_forget_bias(self) -> None:
        if self.forget_bias is not None:
            k = self.flags.blocks.index("f")
            H = self.hidden_size
            self.bias[k * H : (k + 1) * H].fill_(self.forget_bias)

    def _recurrent_weight(self) -> Tensor:
        if not self.flags.fgr:
            return self.weight_hh
        # The candidate g receives no gate recurrence: zero rows at its position.
        H, k = self.hidden_size, self.flags.blocks.index("g")
        gg = self.weight_gg
        zeros = gg.new_zeros(H, gg.shape[1])
        gate_rows = torch.cat((gg[: k * H], zeros, gg[k * H :]), dim=0)
        return torch.cat((self.weight_hh, gate_rows), dim=1)

    def _peepholes(self) -> Tensor | None:
        if not self.peep_gates:
            return None
        zero = self.bias.new_zeros(self.hidden_size)
        return torch.stack([getattr(self, f"peep_{b}", zero) for b in ("i", "f", "o")])

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        state = self.check_input(x, state)
        T, B, _ = x.shape
        if self.fused:
            h0, c0 = state
            out, h, c = torch._VF.lstm(
                x,
                (h0.unsqueeze(0), c0.unsqueeze(0)),
                [self.weight_ih, self.weight_hh, self.bias, self._zero_bias],
                True,
                1,
                0.0,
                self.training,
                False,
                False,
            )
            return out, (h.squeeze(0), c.squeeze(0))
        gx = torch.addmm(self.bias, x.reshape(T * B, -1), self.weight_ih.t())
        gx = gx.view(T, B, -1)
        if self.flags.fgr:
            scan_state: State = (state[0], state[1], torch.cat(state[2:], dim=1))
        else:
            scan_state = state
        out, final = _kernels.lstm_scan(
            gx, self._recurrent_weight(), scan_state, self.flags, self._peepholes()
        )
        if self.flags.fgr:
            final = (final[0], final[1], *final[2].chunk(self.state_size - 2, dim=1))
        return out, tuple(final)

    def equation_parameters(self) -> dict[str, Tensor]:
        H, greff = self.hidden_size, self.notation == "greff"
        out: dict[str, Tensor] = {}
        for k, b in enumerate(self.flags.blocks):
            rows = slice(k * H, (k + 1) * H)
            if greff:
                n = _GREFF_NAMES[b]
                out[f"W_{n}"], out[f"R_{n}"] = self.weight_ih[rows], self.weight_hh[rows]
            else:
                out[f"W_x{b}"], out[f"W_h{b}"] = self.weight_ih[rows], self.weight_hh[rows]
            out[f"b_{_GREFF_NAMES[b] if greff else b}"] = self.bias[rows]
        for b in self.peep_gates:
            out[f"p_{b}"] = getattr(self, f"peep_{b}")
        if self.flags.fgr:
            gates = self.flags.recurrent_gates
            for rb, b in enumerate(gates):
                for ra, a in enumerate(gates):
                    out[f"R_{a}{b}"] = self.weight_gg[rb * H : (rb + 1) * H, ra * H : (ra + 1) * H]
        return out

    def extra_repr(self) -> str:
        changed = {k: v for k, v in vars(self.flags).items() if v != getattr(LSTMFlags(), k)}
        extra = "".join(f", {k}={v}" for k, v in changed.items())
        return f"{self.input_size}, {self.hidden_size}{extra}, forget_bias={self.forget_bias}"


_OPTIONS = (
    "input_gate",
    "forget_gate",
    "output_gate",
    "forget_bias",
    "peepholes",
    "coupled_gates",
    "input_activation",
    "output_activation",
    "full_gate_recurrence",
    "notation",
)


# Structural variants a study may search per LSTM-family cell (`peepholes = {}` in [space]); the
# gates have their own `gates = [...]` ablation and the forget bias its own parameter.
_SEARCHABLE = tuple(
    CellOption(flag, choices=(True, False))
    for flag in ("peepholes", "input_activation", "output_activation")
)


def _lstm(name: str, description: str, **defaults: object) -> None:
    register(
        name,
        options=_OPTIONS,
        gates=_GATES,
        searchable=_SEARCHABLE,
        defaults=defaults,
        has_forget_bias=defaults.get("forget_gate", True) and not defaults.get("coupled_gates"),
        description=description,
    )(LSTMCell)


_lstm("lstm", "LSTM of the paper (no peepholes, forget bias 0); equals torch.nn.LSTM")
_lstm("lstm-i", "LSTM without input gate (i = 1)", input_gate=False)
_lstm("lstm-o", "LSTM without output gate (o = 1)", output_gate=False)
_lstm("lstm-f", "LSTM without forget gate (f = 1)", forget_gate=False)
_lstm("lstm-b", "LSTM with forget-gate bias initialised to 1", forget_bias=1.0)

_GREFF = {"peepholes": True, "notation": "greff"}
_lstm("lstm-peep", "Greff's vanilla LSTM: peepholes (p_i, p_f on c_t-1; p_o on c_t)", **_GREFF)
_lstm("nig", "Greff NIG: vanilla LSTM without input gate", **_GREFF, input_gate=False)
_lstm("nfg", "Greff NFG: vanilla LSTM without forget gate", **_GREFF, forget_gate=False)
_lstm("nog", "Greff NOG: vanilla LSTM without output gate", **_GREFF, output_gate=False)
_lstm("niaf", "Greff NIAF: no input activation (identity candidate)", **_GREFF,
      input_activation=False)
_lstm("noaf", "Greff NOAF: no output activation (h = o * c)", **_GREFF, output_activation=False)
_lstm("np", "Greff NP: vanilla LSTM without peepholes", peepholes=False, notation="greff")
_lstm("cifg", "Greff CIFG: coupled input and forget gate (f = 1 - i)", **_GREFF,
      coupled_gates=True)
_lstm("fgr", "Greff FGR: full gate recurrence (gates at t-1 feed all gates)", **_GREFF,
      full_gate_recurrence=True)
