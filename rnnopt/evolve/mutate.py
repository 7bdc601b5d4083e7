"""The paper's mutation operators on genomes (PAPER.md "Architecture search").

Each operator edits a copy of the node list; the result is re-sorted, canonicalised and
validated by :meth:`Genome.from_nodes`. :func:`mutate` draws operators until one yields a valid
genome that differs from its parent.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from rnnopt.errors import ConfigError
from rnnopt.evolve.genome import ACTIVATIONS, BINARY_OPS, LINEAR_DIAGS, Genome, Node

__all__ = ["OPERATORS", "mutate"]

# The activation alphabet of "replace an activation" / "insert an activation":
# (op, diag) with Linear(a, .) = lin:a.
UNARY_CHOICES: tuple[tuple[str, float], ...] = (
    *((a, 0.0) for a in ACTIVATIONS),
    *(("lin", d) for d in LINEAR_DIAGS),
)

Graph = tuple[list[Node], int, int | None]


def _unary(op: str, diag: float, arg: int) -> Node:
    return Node(op, (arg,), diag if op == "lin" else 0.0)


def _redirect(g: Genome, old: int, new: int) -> Graph:
    """Every use of node ``old`` (operands and outputs) now uses ``new``."""
    nodes = [Node(n.op, tuple(new if a == old else a for a in n.args), n.diag) for n in g.nodes]
    h_out = new if g.h_out == old else g.h_out
    c_out = new if g.c_out == old else g.c_out
    return nodes, h_out, c_out


def _inner(g: Genome) -> list[int]:
    return list(range(3, len(g.nodes)))


def replace_activation(g: Genome, rng: random.Random) -> Graph | None:
    candidates = [i for i in _inner(g) if g.nodes[i].is_unary]
    if not candidates:
        return None
    i = rng.choice(candidates)
    n = g.nodes[i]
    choices = [c for c in UNARY_CHOICES if c != (n.op, n.diag)]
    op, diag = rng.choice(choices)
    nodes = list(g.nodes)
    nodes[i] = _unary(op, diag, n.args[0])
    return nodes, g.h_out, g.c_out


def swap_binary(g: Genome, rng: random.Random) -> Graph | None:
    candidates = [i for i in _inner(g) if g.nodes[i].op in BINARY_OPS]
    if not candidates:
        return None
    i = rng.choice(candidates)
    n = g.nodes[i]
    op = rng.choice([o for o in BINARY_OPS if o != n.op])
    nodes = list(g.nodes)
    nodes[i] = Node(op, n.args)
    return nodes, g.h_out, g.c_out


def insert_activation(g: Genome, rng: random.Random) -> Graph | None:
    """Put a new activation on one edge (a node's operand, or an output)."""
    edges: list[tuple[int | str, int]] = [
        (i, j) for i in _inner(g) for j in range(len(g.nodes[i].args))
    ]
    edges.append(("h'", 0))
    if g.c_out is not None:
        edges.append(("c'", 0))
    parent, j = rng.choice(edges)
    op, diag = rng.choice(UNARY_CHOICES)
    nodes = list(g.nodes)
    new = len(nodes)
    h_out, c_out = g.h_out, g.c_out
    if parent == "h'":
        nodes.append(_unary(op, diag, h_out))
        h_out = new
    elif parent == "c'":
        nodes.append(_unary(op, diag, c_out))
        c_out = new
    else:
        p = g.nodes[parent]
        nodes.append(_unary(op, diag, p.args[j]))
        args = list(p.args)
        args[j] = new
        nodes[parent] = Node(p.op, tuple(args), p.diag)
    return nodes, h_out, c_out


def remove_node(g: Genome, rng: random.Random) -> Graph | None:
    """Remove a node with one input and one output: its user reads its input directly."""
    candidates = [i for i in _inner(g) if g.nodes[i].is_unary and g.refs[i] == 1]
    if not candidates:
        return None
    i = rng.choice(candidates)
    return _redirect(g, i, g.nodes[i].args[0])


def replace_by_ancestor(g: Genome, rng: random.Random) -> Graph | None:
    if not _inner(g):
        return None
    i = rng.choice(_inner(g))
    return _redirect(g, i, rng.choice(sorted(g.ancestors(i))))


def replace_by_combination(g: Genome, rng: random.Random) -> Graph | None:
    """Replace a node by the sum, product or difference of two of its ancestors."""
    if not _inner(g):
        return None
    i = rng.choice(_inner(g))
    anc = sorted(g.ancestors(i))
    a, b = rng.sample(anc, 2) if len(anc) >= 2 else (anc[0], anc[0])
    nodes, h_out, c_out = _redirect(g, i, len(g.nodes))
    nodes.append(Node(rng.choice(BINARY_OPS), (a, b)))
    return nodes, h_out, c_out


OPERATORS: dict[str, Callable[[Genome, random.Random], Graph | None]] = {
    "replace_activation": replace_activation,
    "swap_binary": swap_binary,
    "insert_activation": insert_activation,
    "remove_node": remove_node,
    "replace_by_ancestor": replace_by_ancestor,
    "replace_by_combination": replace_by_combination,
}


def _toposort(nodes: list[Node], h_out: int, c_out: int | None) -> Graph:
    """Reorder so operands precede users (leaves stay first); unreachable nodes are dropped."""
    order: list[int] = [0, 1, 2]
    placed = {0: 0, 1: 1, 2: 2}
    state: dict[int, int] = {}

    def visit(i: int) -> None:
        if i in placed:
            return
        if state.get(i) == 1:
            raise ConfigError("mutation made a cycle")
        state[i] = 1
        for a in nodes[i].args:
            visit(a)
        placed[i] = len(order)
        order.append(i)

    for o in (h_out, c_out):
        if o is not None:
            visit(o)
    out = [Node(nodes[i].op, tuple(placed[a] for a in nodes[i].args), nodes[i].diag) for i in order]
    return out, placed[h_out], placed[c_out] if c_out is not None else None


def mutate(genome: Genome, rng: random.Random, *, max_tries: int = 200) -> tuple[Genome, str]:
    """A random valid mutant of ``genome`` that differs from it, and the operator's name.

    Raises ConfigError if ``max_tries`` draws produced nothing new (only for degenerate genomes).
    """
    names = list(OPERATORS)
    for _ in range(max_tries):
        name = rng.choice(names)
        graph = OPERATORS[name](genome, rng)
        if graph is None:
            continue
        try:
            child = Genome.from_nodes(*_toposort(*graph))
        except ConfigError:
            continue
        if child.text != genome.text:
            return child, name
    raise ConfigError(f"no valid mutation of {genome.text!r} in {max_tries} tries")
