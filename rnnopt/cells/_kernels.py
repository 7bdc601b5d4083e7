"""The recurrences every cell family runs, as plain autograd code (the reference).

Each cell computes the input projections for all time steps with one matmul, then hands the
recurrence to :func:`lstm_scan` or :func:`gru_scan`. Those names are bound at the bottom of this
module: to the hand-written fast autograd Functions of ``rnnopt.cells._fast`` when that module
imports, else to the readable reference versions here. ``tests/cells/test_fast.py`` proves both
compute the same function (float64 outputs and gradients).

Loops use ``gx.unbind(0)`` and never ``gx[t]``: every ``gx[t]`` adds a full-size ``index_backward``
buffer to the graph, which makes backward quadratic in the sequence length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "LSTMFlags",
    "gru_scan",
    "gru_scan_reference",
    "lstm_scan",
    "lstm_scan_reference",
]


@dataclass(frozen=True)
class LSTMFlags:
    """Which parts of the LSTM are present; absent gates are the constant 1.

    ``coupled`` is CIFG (f = 1 - i; needs the input gate, has no forget-gate parameters);
    ``input_activation=False`` is NIAF (identity candidate), ``output_activation=False`` is NOAF
    (h' = o * c'); ``peepholes`` follows Greff et al. (p_i, p_f read c_{t-1}, p_o reads the new
    c_t); ``fgr`` feeds the previous step's gate activations (i, f, o) into all gates.
    """

    input_gate: bool = True
    forget_gate: bool = True
    output_gate: bool = True
    coupled: bool = False
    input_activation: bool = True
    output_activation: bool = True
    peepholes: bool = False
    fgr: bool = False

    @property
    def blocks(self) -> tuple[str, ...]:
        """Present blocks in row order of ``gx`` and ``w_h``: subset of ("i", "f", "g", "o")."""
        out = []
        if self.input_gate:
            out.append("i")
        if self.forget_gate and not self.coupled:
            out.append("f")
        out.append("g")
        if self.output_gate:
            out.append("o")
        return tuple(out)

    @property
    def recurrent_gates(self) -> tuple[str, ...]:
        """Gates whose previous activations feed all gates under ``fgr`` (order i, f, o)."""
        return tuple(b for b in self.blocks if b != "g")


def lstm_scan_reference(
    gx: Tensor,
    w_h: Tensor,
    state: tuple[Tensor, ...],
    flags: LSTMFlags,
    peep: Tensor | None,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Run the LSTM recurrence over precomputed input terms.

    gx ``[T, B, G*H]``: x-projections plus biases of the present blocks in ``flags.blocks``
    order. w_h ``[G*H, H]`` (with fgr ``[G*H, H + K*H]``: the recurrent input is
    ``cat(h, a_prev)``, a_prev the previous activations of ``flags.recurrent_gates``).
    state ``(h, c)`` or, with fgr, ``(h, c, a_prev)``. peep ``[3, H]`` rows (p_i, p_f, p_o)
    when ``flags.peepholes``. Returns outputs ``[T, B, H]`` and the final state.
    """
    blocks = flags.blocks
    h, c = state[0], state[1]
    a_prev = state[2] if flags.fgr else None
    if flags.coupled and not flags.input_gate:
        raise ValueError("coupled gates need the input gate")
    use_peep = flags.peepholes and peep is not None
    outputs = []
    for gx_t in gx.unbind(0):
        rec = torch.cat((h, a_prev), dim=1) if a_prev is not None else h
        pre = dict(zip(blocks, (gx_t + rec @ w_h.t()).chunk(len(blocks), dim=1), strict=True))
        i = f = o = None
        if "i" in pre:
            i = torch.sigmoid(pre["i"] + peep[0] * c if use_peep else pre["i"])
        if "f" in pre:
            f = torch.sigmoid(pre["f"] + peep[1] * c if use_peep else pre["f"])
        elif flags.coupled:
            f = 1.0 - i
        g = torch.tanh(pre["g"]) if flags.input_activation else pre["g"]
        ig = g if i is None else i * g
        c = c + ig if f is None else f * c + ig
        if "o" in pre:
            o = torch.sigmoid(pre["o"] + peep[2] * c if use_peep else pre["o"])
        act = torch.tanh(c) if flags.output_activation else c
        h = act if o is None else o * act
        if a_prev is not None:
            present = {"i": i, "f": f, "o": o}
            a_prev = torch.cat([present[k] for k in flags.recurrent_gates], dim=1)
        outputs.append(h)
    final = (h, c, a_prev) if flags.fgr else (h, c)
    return torch.stack(outputs), final


def gru_scan_reference(
    gx: Tensor,
    u_z: Tensor | None,
    u_r: Tensor,
    w_c: Tensor,
    h0: Tensor,
    *,
    z_input: str,
    blend: str,
) -> tuple[Tensor, Tensor]:
    """Run a GRU-family recurrence over precomputed input terms.

    gx ``[T, B, 3H]`` in block order (z, r, c): everything that does not depend on h.
    ``z = sigmoid(gx_z + zin @ u_z.T)`` with zin = h (``z_input="h"``), tanh(h) (``"tanh_h"``)
    or no recurrent term (``"none"``, u_z None); ``r = sigmoid(gx_r + h @ u_r.T)``;
    ``g = tanh(gx_c + (r * h) @ w_c.T)``. blend ``"gru"``: h' = z*h + (1-z)*g (the paper's
    GRU); ``"mut"``: h' = g*z + h*(1-z) (MUT1-3). Returns outputs ``[T, B, H]`` and h_T.
    """
    if z_input not in ("h", "tanh_h", "none"):
        raise ValueError(f"z_input {z_input!r}: expected 'h', 'tanh_h' or 'none'")
    if blend not in ("gru", "mut"):
        raise ValueError(f"blend {blend!r}: expected 'gru' or 'mut'")
    h = h0
    outputs = []
    for gx_t in gx.unbind(0):
        gz, gr, gc = gx_t.chunk(3, dim=1)
        if z_input == "h":
            gz = gz + h @ u_z.t()
        elif z_input == "tanh_h":
            gz = gz + torch.tanh(h) @ u_z.t()
        z = torch.sigmoid(gz)
        r = torch.sigmoid(gr + h @ u_r.t())
        g = torch.tanh(gc + (r * h) @ w_c.t())
        h = z * h + (1.0 - z) * g if blend == "gru" else g * z + h * (1.0 - z)
        outputs.append(h)
    return torch.stack(outputs), h


lstm_scan = lstm_scan_reference
gru_scan = gru_scan_reference
try:  # fast paths, proven equal to the references in tests/cells/test_fast.py
    from rnnopt.cells._fast import gru_scan, lstm_scan
except ImportError:
    lstm_scan, gru_scan = lstm_scan_reference, gru_scan_reference
