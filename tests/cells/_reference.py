"""The cells' equations written out with plain tensor ops, independent of rnnopt's code paths.

Every function takes the dict of :meth:`RecurrentCell.equation_parameters` (the paper's, Greff's
or torch's names), an input ``x [T, B, I]`` and a state tuple, and returns ``(outputs [T, B, H],
final state)``. :func:`reference_forward` picks the equations for a built cell. Used by
tests/cells/test_cells.py and by tests/cells/test_fast.py (``from _reference import ...``:
pytest puts this directory on sys.path).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from rnnopt.cells import GRUFamilyCell, LSTMCell, NNGRUCell, NNLSTMCell, RecurrentCell, TanhCell

P = Mapping[str, Tensor]


def _lin(x: Tensor, w: Tensor) -> Tensor:
    return x @ w.T


def tanh_equations(p: P, x: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple]:
    """h' = tanh(W_xh x + W_hh h + b_h)."""
    (h,) = state
    outs = []
    for t in range(x.shape[0]):
        h = torch.tanh(_lin(x[t], p["W_xh"]) + _lin(h, p["W_hh"]) + p["b_h"])
        outs.append(h)
    return torch.stack(outs), (h,)


def lstm_equations(
    p: P,
    x: Tensor,
    state: tuple[Tensor, ...],
    *,
    input_gate: bool = True,
    forget_gate: bool = True,
    output_gate: bool = True,
    coupled_gates: bool = False,
    input_activation: bool = True,
    output_activation: bool = True,
    peepholes: bool = False,
    full_gate_recurrence: bool = False,
    notation: str = "paper",
    forget_bias: float | None = None,  # an initialisation choice; no part of the equations
) -> tuple[Tensor, tuple]:
    """The LSTM and its ablations / Greff variants, gate by gate.

    Paper names: W_x<gate>, W_h<gate>, b_<gate> with gates i, f, g (candidate), o. Greff names:
    W_<gate>, R_<gate>, b_<gate> with the candidate called z; peepholes p_i, p_f (read c_{t-1})
    and p_o (reads c_t); R_ab from gate a at t-1 into gate b. Absent gates are 1; CIFG f = 1 - i.
    State (h, c), with FGR followed by the previous activations of the present gates (i, f, o).
    """
    del forget_bias
    greff = notation == "greff"

    def names(gate: str) -> tuple[str, str, str]:
        if greff:
            n = "z" if gate == "g" else gate
            return f"W_{n}", f"R_{n}", f"b_{n}"
        return f"W_x{gate}", f"W_h{gate}", f"b_{gate}"

    gate_on = (("i", input_gate), ("f", forget_gate and not coupled_gates), ("o", output_gate))
    present = [g for g, on in gate_on if on]
    h, c = state[0], state[1]
    prev = dict(zip(present, state[2:], strict=True)) if full_gate_recurrence else {}
    outs = []
    for t in range(x.shape[0]):
        xt = x[t]

        def pre(gate: str, h=h, xt=xt, prev=prev) -> Tensor:
            w, r, b = names(gate)
            s = _lin(xt, p[w]) + _lin(h, p[r]) + p[b]
            if full_gate_recurrence and gate != "g":
                for a in present:
                    s = s + _lin(prev[a], p[f"R_{a}{gate}"])
            return s

        one = torch.ones_like(c)
        i = torch.sigmoid(pre("i") + (p["p_i"] * c if peepholes else 0)) if input_gate else one
        if coupled_gates:
            f = 1 - i
        elif forget_gate:
            f = torch.sigmoid(pre("f") + (p["p_f"] * c if peepholes else 0))
        else:
            f = one
        g = torch.tanh(pre("g")) if input_activation else pre("g")
        c_new = f * c + i * g
        o = torch.sigmoid(pre("o") + (p["p_o"] * c_new if peepholes else 0)) if output_gate else one
        h = o * (torch.tanh(c_new) if output_activation else c_new)
        c = c_new
        prev = {"i": i, "f": f, "o": o}
        prev = {a: prev[a] for a in present}
        outs.append(h)
    final = (h, c, *(prev[a] for a in present)) if full_gate_recurrence else (h, c)
    return torch.stack(outs), final


def gru_equations(p: P, x: Tensor, state: tuple[Tensor, ...], variant: str) -> tuple[Tensor, tuple]:
    """The paper's GRU and MUT1-3 exactly as printed in the paper."""
    (h,) = state
    sig, tanh = torch.sigmoid, torch.tanh
    outs = []
    for t in range(x.shape[0]):
        xt = x[t]
        if variant == "gru":
            r = sig(_lin(xt, p["W_xr"]) + _lin(h, p["W_hr"]) + p["b_r"])
            z = sig(_lin(xt, p["W_xz"]) + _lin(h, p["W_hz"]) + p["b_z"])
            g = tanh(_lin(xt, p["W_xh"]) + _lin(r * h, p["W_hh"]) + p["b_h"])
            h = z * h + (1 - z) * g
        elif variant == "mut1":
            z = sig(_lin(xt, p["W_xz"]) + p["b_z"])
            r = sig(_lin(xt, p["W_xr"]) + _lin(h, p["W_hr"]) + p["b_r"])
            h = tanh(_lin(r * h, p["W_hh"]) + tanh(xt) + p["b_h"]) * z + h * (1 - z)
        elif variant == "mut2":
            z = sig(_lin(xt, p["W_xz"]) + _lin(h, p["W_hz"]) + p["b_z"])
            r = sig(xt + _lin(h, p["W_hr"]) + p["b_r"])
            h = tanh(_lin(r * h, p["W_hh"]) + _lin(xt, p["W_xh"]) + p["b_h"]) * z + h * (1 - z)
        elif variant == "mut3":
            z = sig(_lin(xt, p["W_xz"]) + _lin(tanh(h), p["W_hz"]) + p["b_z"])
            r = sig(_lin(xt, p["W_xr"]) + _lin(h, p["W_hr"]) + p["b_r"])
            h = tanh(_lin(r * h, p["W_hh"]) + _lin(xt, p["W_xh"]) + p["b_h"]) * z + h * (1 - z)
        else:
            raise ValueError(variant)
        outs.append(h)
    return torch.stack(outs), (h,)


def nn_lstm_equations(p: P, x: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple]:
    """torch.nn.LSTM's documented equations (two biases per gate)."""
    h, c = state
    outs = []
    for t in range(x.shape[0]):
        xt = x[t]

        def pre(g: str, xt=xt, h=h) -> Tensor:
            return _lin(xt, p[f"W_i{g}"]) + p[f"b_i{g}"] + _lin(h, p[f"W_h{g}"]) + p[f"b_h{g}"]

        i, f, o = torch.sigmoid(pre("i")), torch.sigmoid(pre("f")), torch.sigmoid(pre("o"))
        c = f * c + i * torch.tanh(pre("g"))
        h = o * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs), (h, c)


def nn_gru_equations(p: P, x: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple]:
    """torch.nn.GRU's documented equations: the reset gate multiplies W_hn h + b_hn."""
    (h,) = state
    outs = []
    for t in range(x.shape[0]):
        xt = x[t]
        r = torch.sigmoid(_lin(xt, p["W_ir"]) + p["b_ir"] + _lin(h, p["W_hr"]) + p["b_hr"])
        z = torch.sigmoid(_lin(xt, p["W_iz"]) + p["b_iz"] + _lin(h, p["W_hz"]) + p["b_hz"])
        n = torch.tanh(_lin(xt, p["W_in"]) + p["b_in"] + r * (_lin(h, p["W_hn"]) + p["b_hn"]))
        h = (1 - z) * n + z * h
        outs.append(h)
    return torch.stack(outs), (h,)


def lstm_options(cell: LSTMCell) -> dict[str, object]:
    """The option values a built LSTMCell was configured with (for lstm_equations)."""
    fl = cell.flags
    return {
        "input_gate": fl.input_gate,
        "forget_gate": fl.forget_gate,
        "output_gate": fl.output_gate,
        "coupled_gates": fl.coupled,
        "input_activation": fl.input_activation,
        "output_activation": fl.output_activation,
        "peepholes": fl.peepholes,
        "full_gate_recurrence": fl.fgr,
        "notation": cell.notation,
    }


def reference_forward(
    cell: RecurrentCell, x: Tensor, state: tuple[Tensor, ...], params: P | None = None
) -> tuple[Tensor, tuple]:
    """Run the equations of ``cell``'s family with ``params`` (default: its own parameters)."""
    p = cell.equation_parameters() if params is None else params
    if isinstance(cell, LSTMCell):
        return lstm_equations(p, x, state, **lstm_options(cell))
    if isinstance(cell, GRUFamilyCell):
        return gru_equations(p, x, state, cell.variant)
    if isinstance(cell, TanhCell):
        return tanh_equations(p, x, state)
    if isinstance(cell, NNLSTMCell):
        return nn_lstm_equations(p, x, state)
    if isinstance(cell, NNGRUCell):
        return nn_gru_equations(p, x, state)
    raise NotImplementedError(
        f"no reference equations for {type(cell).__name__}: add them to tests/cells/_reference.py"
    )
