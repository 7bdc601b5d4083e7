"""The GRU family: the paper's GRU and the three evolved cells MUT1-MUT3, one code path.

    GRU:   z = sigma(W_xz x + W_hz h + b_z);  r = sigma(W_xr x + W_hr h + b_r)
           g = tanh(W_xh x + W_hh (r * h) + b_h);  h' = z * h + (1 - z) * g
    MUT1:  z = sigma(W_xz x + b_z);  r = sigma(W_xr x + W_hr h + b_r)
           h' = tanh(W_hh (r * h) + tanh(x) + b_h) * z + h * (1 - z)
    MUT2:  z = sigma(W_xz x + W_hz h + b_z);  r = sigma(x + W_hr h + b_r)
           h' = tanh(W_hh (r * h) + W_xh x + b_h) * z + h * (1 - z)
    MUT3:  z = sigma(W_xz x + W_hz tanh(h) + b_z);  r = sigma(W_xr x + W_hr h + b_r)
           h' = tanh(W_hh (r * h) + W_xh x + b_h) * z + h * (1 - z)

The paper's GRU applies the reset gate to h before the recurrent matrix; torch.nn.GRU applies
it after (a different cell, offered as ``nn-gru``). Everything that does not depend on h is
computed for all steps at once; the recurrence is :func:`rnnopt.cells._kernels.gru_scan`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnopt.cells import _kernels
from rnnopt.cells._base import RecurrentCell, State
from rnnopt.cells._registry import register
from rnnopt.errors import ConfigError

__all__ = ["GRUFamilyCell"]


@dataclass(frozen=True)
class _Variant:
    x_blocks: tuple[str, ...]  # blocks with an x-projection, among ("z", "r", "c")
    z_input: str  # recurrent input of z: "h", "tanh_h" or "none"
    blend: str  # "gru" or "mut" (see _kernels.gru_scan)
    raw: str | None = None  # raw-x term: "tanh_x_into_c" (MUT1) or "x_into_r" (MUT2)


VARIANTS = {
    "gru": _Variant(("z", "r", "c"), "h", "gru"),
    "mut1": _Variant(("z", "r"), "none", "mut", raw="tanh_x_into_c"),
    "mut2": _Variant(("z", "c"), "h", "mut", raw="x_into_r"),
    "mut3": _Variant(("z", "r", "c"), "tanh_h", "mut"),
}


class GRUFamilyCell(RecurrentCell):
    """The paper's GRU (``variant="gru"``) or MUT1/MUT2/MUT3; see the module docstring."""

    state_size = 1

    def __init__(self, input_size: int, hidden_size: int, *, variant: str = "gru") -> None:
        super().__init__(input_size, hidden_size)
        if variant not in VARIANTS:
            raise ConfigError(f"GRU variant must be one of {sorted(VARIANTS)}, got {variant!r}")
        v = VARIANTS[variant]
        if v.raw is not None and input_size != hidden_size:
            raise ConfigError(
                f"{variant} adds raw x to a hidden-size term: input_size ({input_size}) must "
                f"equal hidden_size ({hidden_size})"
            )
        self.variant, self._v = variant, v
        H = hidden_size
        self.rec_blocks = ("z", "r", "c") if v.z_input != "none" else ("r", "c")
        self.weight_ih = nn.Parameter(torch.empty(len(v.x_blocks) * H, input_size))
        self.weight_hh = nn.Parameter(torch.empty(len(self.rec_blocks) * H, H))
        self.bias = nn.Parameter(torch.empty(3 * H))  # blocks z, r, c
        self.reset_parameters()

    def _input_terms(self, x: Tensor) -> Tensor:
        """gx ``[T, B, 3H]`` in block order (z, r, c): every term that does not need h."""
        T, B, I = x.shape
        x2 = x.reshape(T * B, I)
        H = self.hidden_size
        raw = self._v.raw
        if raw is None:
            gx = torch.addmm(self.bias, x2, self.weight_ih.t())
        elif raw == "tanh_x_into_c":
            gx = torch.cat((x2 @ self.weight_ih.t(), torch.tanh(x2)), dim=1) + self.bias
        else:  # "x_into_r"
            zc = x2 @ self.weight_ih.t()
            gx = torch.cat((zc[:, :H], x2, zc[:, H:]), dim=1) + self.bias
        return gx.view(T, B, 3 * H)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        (h0,) = self.check_input(x, state)
        H = self.hidden_size
        w = dict(zip(self.rec_blocks, self.weight_hh.split(H, dim=0), strict=True))
        out, h = _kernels.gru_scan(
            self._input_terms(x),
            w.get("z"),
            w["r"],
            w["c"],
            h0,
            z_input=self._v.z_input,
            blend=self._v.blend,
        )
        return out, (h,)

    def equation_parameters(self) -> dict[str, Tensor]:
        H = self.hidden_size
        name = {"z": "z", "r": "r", "c": "h"}  # the paper calls the candidate's weights W_xh, W_hh
        out: dict[str, Tensor] = {}
        for k, b in enumerate(self._v.x_blocks):
            out[f"W_x{name[b]}"] = self.weight_ih[k * H : (k + 1) * H]
        for k, b in enumerate(self.rec_blocks):
            out[f"W_h{name[b]}"] = self.weight_hh[k * H : (k + 1) * H]
        for k, b in enumerate(("z", "r", "c")):
            out[f"b_{name[b]}"] = self.bias[k * H : (k + 1) * H]
        return out

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, variant={self.variant!r}"


def _variant(variant: str) -> Callable[[int, int], GRUFamilyCell]:
    def factory(input_size: int, hidden_size: int) -> GRUFamilyCell:
        return GRUFamilyCell(input_size, hidden_size, variant=variant)

    factory.__name__ = f"{variant}_cell"
    return factory


register("gru", options=(), description="GRU of the paper (reset gate before W_hh)")(
    _variant("gru")
)
register("mut1", options=(), raw_input=True, description="MUT1 (Jozefowicz et al. 2015)")(
    _variant("mut1")
)
register("mut2", options=(), raw_input=True, description="MUT2 (Jozefowicz et al. 2015)")(
    _variant("mut2")
)
register("mut3", options=(), description="MUT3 (Jozefowicz et al. 2015)")(_variant("mut3"))
