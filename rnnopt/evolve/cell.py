"""Compiling a genome to a :class:`rnnopt.cells.RecurrentCell` and registering it by name.

All linear maps of x are one matmul over every time step before the loop; all linear maps of
h (and of c) are one matmul per step; maps of inner nodes are one matmul each.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnopt.cells import RecurrentCell, names, register
from rnnopt.errors import ConfigError
from rnnopt.evolve.genome import C, Genome, H, X, parse

__all__ = ["GenomeCell", "register_genome"]

_ACT = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu}


class GenomeCell(RecurrentCell):
    """A cell that evaluates a genome. Parameters of linear node k (numbered from 1 in node
    order) are ``W<k>_<j>`` (operand j, ``[H, in]``) and ``b<k>`` (``[H]``)."""

    def __init__(self, genome: Genome | str, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.genome = parse(genome) if isinstance(genome, str) else genome
        if self.genome.raw_input and input_size != hidden_size:
            raise ConfigError(
                f"genome {self.genome.text!r} uses raw x: input_size ({input_size}) must equal "
                f"hidden_size ({hidden_size})"
            )
        self.state_size = self.genome.state_size
        Hs = hidden_size
        # slots: (leaf or None, node, operand position) -> row block in its weight tensor
        self._slots: dict[str, list[tuple[int, int]]] = {"x": [], "h": [], "c": [], "n": []}
        self._bias_home: dict[int, tuple[str, int]] = {}
        self._lin_index: dict[int, int] = {}
        for k, i in enumerate(self.genome.linear_nodes):
            self._lin_index[i] = k
            for j, a in enumerate(self.genome.nodes[i].args):
                group = {X: "x", H: "h", C: "c"}.get(a, "n")
                self._slots[group].append((i, j))
        for group in ("x", "h", "c"):
            for s, (i, _j) in enumerate(self._slots[group]):
                self._bias_home.setdefault(i, (group, s))
        n_in = {"x": input_size, "h": Hs, "c": Hs, "n": Hs}
        for group, slots in self._slots.items():
            w = nn.Parameter(torch.empty(len(slots) * Hs, n_in[group])) if slots else None
            self.register_parameter(f"weight_{group}", w)
        self.bias = nn.Parameter(torch.empty(len(self._lin_index) * Hs))
        self._slot_of = {
            (i, j): (group, s)
            for group, slots in self._slots.items()
            for s, (i, j) in enumerate(slots)
        }
        self.reset_parameters()

    def _block(self, t: Tensor, s: int) -> Tensor:
        return t[..., s * self.hidden_size : (s + 1) * self.hidden_size]

    def equation_parameters(self) -> dict[str, Tensor]:
        Hs = self.hidden_size
        out: dict[str, Tensor] = {}
        for i, pnames in self.genome.parameter_names().items():
            for j, name in enumerate(pnames[:-1]):
                group, s = self._slot_of[(i, j)]
                out[name] = getattr(self, f"weight_{group}")[s * Hs : (s + 1) * Hs]
            k = self._lin_index[i]
            out[pnames[-1]] = self.bias[k * Hs : (k + 1) * Hs]
        return out

    def _group_bias(self, group: str) -> Tensor | None:
        """Bias vector for a group's matmul: each linear node's bias rides on its first slot."""
        slots = self._slots[group]
        if not slots:
            return None
        Hs = self.hidden_size
        parts = []
        for s, (i, _j) in enumerate(slots):
            if self._bias_home.get(i) == (group, s):
                k = self._lin_index[i]
                parts.append(self.bias[k * Hs : (k + 1) * Hs])
            else:
                parts.append(self.bias.new_zeros(Hs))
        return torch.cat(parts)

    def forward(self, x: Tensor, state: tuple[Tensor, ...] | None = None):
        state = self.check_input(x, state)
        g = self.genome
        nodes = g.nodes
        Hs = self.hidden_size
        xw = (
            F.linear(x, self.weight_x, self._group_bias("x")).unbind(0)
            if self.weight_x is not None
            else None
        )
        bias_h, bias_c = self._group_bias("h"), self._group_bias("c")
        h = state[0]
        c = state[1] if g.has_c else None
        outputs = []
        for t, xt in enumerate(x.unbind(0)):
            hw = F.linear(h, self.weight_h, bias_h) if self.weight_h is not None else None
            cw = F.linear(c, self.weight_c, bias_c) if self.weight_c is not None else None
            pre = {"x": xw[t] if xw is not None else None, "h": hw, "c": cw}
            values: list[Tensor | None] = [xt, h, c]
            for i in range(3, len(nodes)):
                node = nodes[i]
                op = node.op
                if op == "lin":
                    acc = None
                    for j, a in enumerate(node.args):
                        group, s = self._slot_of[(i, j)]
                        if group == "n":
                            w = self.weight_n[s * Hs : (s + 1) * Hs]
                            term = F.linear(values[a], w)
                        else:
                            term = self._block(pre[group], s)
                        acc = term if acc is None else acc + term
                    if i not in self._bias_home:
                        k = self._lin_index[i]
                        acc = acc + self.bias[k * Hs : (k + 1) * Hs]
                    if node.diag:
                        acc = acc + node.diag * values[node.args[0]]
                    values.append(acc)
                elif op in _ACT:
                    values.append(_ACT[op](values[node.args[0]]))
                else:
                    a, b = values[node.args[0]], values[node.args[1]]
                    values.append(a + b if op == "+" else a * b if op == "*" else a - b)
            h = values[g.h_out]
            if g.has_c:
                c = values[g.c_out]
            outputs.append(h)
        return torch.stack(outputs), ((h, c) if g.has_c else (h,))

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, genome={self.genome.text!r}"


def register_genome(genome: Genome | str) -> str:
    """Register ``genome`` in the cell registry as ``g-<digest>`` (idempotent); return the name.

    The registered description is the genome's canonical text, so the cell can be rebuilt in
    any process from its name's registration or from the text.
    """
    g = parse(genome) if isinstance(genome, str) else genome
    name = g.cell_name
    if name in names():
        return name

    def factory(input_size: int, hidden_size: int) -> GenomeCell:
        return GenomeCell(g, input_size, hidden_size)

    factory.__name__ = f"genome_{g.digest}"
    register(name, options=(), raw_input=g.raw_input, description=g.text)(factory)
    return name
