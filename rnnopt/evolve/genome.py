# Over 450 lines: the genome's parser, canonical form and compiler share one node type and
# must agree exactly (a genome's identity is its canonical text).
"""Cell genomes: computation graphs over x, h (and c) with the paper's node types.

A genome is a DAG whose leaves are the inputs ``x``, ``h`` and ``c`` and whose inner nodes are

- ``(lin e1 e2 ...)``: a linear map ``W_1 e_1 + W_2 e_2 + ... + b`` (one matrix per operand,
  one bias); ``(lin:a e)`` is the paper's Linear(a, e): ``(W + a I) e + b``;
- activations ``(tanh e)``, ``(sigmoid e)``, ``(relu e)`` (``(id e)`` is accepted and removed);
- element-wise ``(+ a b)``, ``(* a b)``, ``(- a b)``.

Outputs are ``h'`` and optionally ``c'``. The canonical text form writes every expression as an
s-expression with the operands of commutative nodes (``+``, ``*``, ``lin``) in a canonical order,
binds nodes that are used more than once to ``n1``, ``n2``, ... (in dependency order) and ends with
the outputs, e.g. the GRU::

    n1=(lin h x); ...; h'=(+ n3 (* (sigmoid (lin h x)) (- h n3)))

Two linear nodes with the same operands are different nodes (each has its own weights), so
sharing is part of the text; parameter-free nodes with identical operands are merged.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from rnnopt.errors import ConfigError

__all__ = [
    "ACTIVATIONS",
    "BINARY_OPS",
    "LINEAR_DIAGS",
    "Genome",
    "Node",
    "parse",
]

LEAVES = ("x", "h", "c")
X, H, C = 0, 1, 2
ACTIVATIONS = ("tanh", "sigmoid", "relu")
BINARY_OPS = ("+", "*", "-")
LINEAR_DIAGS = (0.0, 1.0, 0.9, 1.1)
COMMUTATIVE = frozenset({"+", "*", "lin"})
UNARY = frozenset({*ACTIVATIONS, "id"})
MAX_NODES = 200


@dataclass(frozen=True)
class Node:
    """One graph node: ``op`` (a leaf name, ``lin``, an activation or a binary op), the indices of
    its operands in the genome's node list, and for ``lin`` the diagonal offset ``diag``."""

    op: str
    args: tuple[int, ...] = ()
    diag: float = 0.0

    @property
    def is_leaf(self) -> bool:
        return self.op in LEAVES

    @property
    def has_parameters(self) -> bool:
        return self.op == "lin"

    @property
    def is_unary(self) -> bool:
        return len(self.args) == 1


def _fmt_diag(a: float) -> str:
    return f"{a:g}"


def _check_node(node: Node, index: int) -> None:
    if node.op in LEAVES:
        if node.args:
            raise ConfigError(f"genome node {index}: input {node.op!r} takes no operands")
        return
    n = len(node.args)
    if node.op == "lin":
        if n < 1:
            raise ConfigError(f"genome node {index}: lin needs at least one operand")
        if node.diag != 0.0 and n != 1:
            raise ConfigError(
                f"genome node {index}: lin:{_fmt_diag(node.diag)} takes one operand, got {n}"
            )
    elif node.op in UNARY:
        if n != 1:
            raise ConfigError(f"genome node {index}: {node.op} takes one operand, got {n}")
    elif node.op in BINARY_OPS:
        if n != 2:
            raise ConfigError(f"genome node {index}: {node.op} takes two operands, got {n}")
    else:
        raise ConfigError(
            f"genome node {index}: unknown op {node.op!r}; allowed: lin, lin:<a>, "
            f"{', '.join(ACTIVATIONS)}, id, {', '.join(BINARY_OPS)}"
        )
    for a in node.args:
        if not 0 <= a < index:
            raise ConfigError(f"genome node {index}: operand {a} is not an earlier node (cycle?)")


class Genome:
    """An immutable, canonical cell genome.

    ``nodes`` is in topological order with the leaves ``x``, ``h``, ``c`` at 0, 1, 2; ``h_out``
    and ``c_out`` index the outputs (``c_out`` is None for single-state cells). Build one with
    :meth:`from_nodes` (canonicalises and validates) or :func:`parse`.
    """

    __slots__ = ("__dict__", "c_out", "h_out", "nodes")

    def __init__(self, nodes: tuple[Node, ...], h_out: int, c_out: int | None) -> None:
        self.nodes = nodes
        self.h_out = h_out
        self.c_out = c_out

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_nodes(cls, nodes: Sequence[Node], h_out: int, c_out: int | None = None) -> Genome:
        """Validate and canonicalise a node list (leaves x, h, c first, operands before users).

        Removes ``id`` nodes, dead nodes and a ``c'`` that ``h'`` never reads; merges identical
        parameter-free nodes; orders commutative operands. Invalid graphs raise ConfigError.
        """
        nodes = list(nodes)
        if len(nodes) < 3 or tuple(n.op for n in nodes[:3]) != LEAVES:
            raise ConfigError("genome nodes must start with the inputs x, h, c")
        for i, n in enumerate(nodes):
            if i >= 3 and n.op in LEAVES:
                raise ConfigError(f"genome node {i}: input {n.op!r} may appear only once")
            _check_node(n, i)
        for what, o in (("h'", h_out), ("c'", c_out)):
            if o is not None and not 0 <= o < len(nodes):
                raise ConfigError(f"genome output {what} refers to missing node {o}")
        return _canonicalize(nodes, h_out, c_out)

    # -- structure ----------------------------------------------------------------------------
    @property
    def has_c(self) -> bool:
        return self.c_out is not None

    @property
    def state_size(self) -> int:
        return 2 if self.has_c else 1

    @cached_property
    def refs(self) -> tuple[int, ...]:
        """How often each node is used (as an operand or as an output)."""
        count = [0] * len(self.nodes)
        for n in self.nodes:
            for a in n.args:
                count[a] += 1
        count[self.h_out] += 1
        if self.c_out is not None:
            count[self.c_out] += 1
        return tuple(count)

    @cached_property
    def raw_input(self) -> bool:
        """True when x is used other than through a plain linear map (input size must be H)."""
        for n in self.nodes:
            if X in n.args and not (n.op == "lin" and n.diag == 0.0):
                return True
        return self.h_out == X or self.c_out == X

    @property
    def linear_nodes(self) -> list[int]:
        return [i for i, n in enumerate(self.nodes) if n.op == "lin"]

    def ancestors(self, index: int) -> set[int]:
        """Every node ``index`` depends on (transitively), leaves included, itself excluded."""
        seen: set[int] = set()
        stack = list(self.nodes[index].args)
        while stack:
            i = stack.pop()
            if i not in seen:
                seen.add(i)
                stack.extend(self.nodes[i].args)
        return seen

    def parents(self, index: int) -> list[int]:
        return [i for i, n in enumerate(self.nodes) if index in n.args]

    def n_parameters(self, input_size: int, hidden_size: int) -> int:
        total = 0
        for i in self.linear_nodes:
            total += hidden_size
            for a in self.nodes[i].args:
                total += hidden_size * (input_size if a == X else hidden_size)
        return total

    # -- text -------------------------------------------------------------------------------
    @cached_property
    def names(self) -> dict[int, str]:
        """Binding names (``n1``, ...) of the inner nodes used more than once, in node order."""
        out: dict[int, str] = {}
        for i in range(3, len(self.nodes)):
            if self.refs[i] > 1:
                out[i] = f"n{len(out) + 1}"
        return out

    def _expr(self, i: int, top: bool = False) -> str:
        node = self.nodes[i]
        if node.is_leaf:
            return node.op
        if not top and i in self.names:
            return self.names[i]
        op = node.op if node.op != "lin" or node.diag == 0.0 else f"lin:{_fmt_diag(node.diag)}"
        return f"({op} {' '.join(self._expr(a) for a in node.args)})"

    @cached_property
    def text(self) -> str:
        """The canonical text form; equal genomes (up to operand order and sharing of
        parameter-free nodes) have equal text."""
        parts = [f"{name}={self._expr(i, top=True)}" for i, name in self.names.items()]
        parts.append(f"h'={self._expr(self.h_out)}")
        if self.c_out is not None:
            parts.append(f"c'={self._expr(self.c_out)}")
        return "; ".join(parts)

    @cached_property
    def digest(self) -> str:
        """A short stable id of the canonical text (used for registered cell names)."""
        return hashlib.sha1(self.text.encode()).hexdigest()[:12]

    @property
    def cell_name(self) -> str:
        return f"g-{self.digest}"

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Genome({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Genome) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def parameter_names(self) -> dict[int, list[str]]:
        """For each linear node: ``[W<k>_<j> for each operand j] + [b<k>]`` (k from 1)."""
        return {
            i: [f"W{k}_{j}" for j in range(len(self.nodes[i].args))] + [f"b{k}"]
            for k, i in enumerate(self.linear_nodes, start=1)
        }

    def equations(self) -> str:
        """A readable multi-line printout of the cell, one equation per bound node and output."""
        pnames = self.parameter_names()

        def infix(i: int, top: bool = False) -> str:
            node = self.nodes[i]
            if node.is_leaf:
                return node.op
            if not top and i in self.names:
                return self.names[i]
            if node.op == "lin":
                terms = []
                for j, a in enumerate(node.args):
                    w = pnames[i][j]
                    if node.diag:
                        w = f"({w} + {_fmt_diag(node.diag)} I)"
                    terms.append(f"{w} {infix(a)}")
                s = " + ".join([*terms, pnames[i][-1]])
                return s if top else f"({s})"
            if node.op in BINARY_OPS:
                sym = {"+": "+", "-": "-", "*": "(.)"}[node.op]
                left, right = (infix(a) for a in node.args)
                s = f"{left} {sym} {right}"
                return s if top else f"({s})"
            return f"{node.op}({infix(node.args[0], top=True)})"

        lines = [f"{name} = {infix(i, top=True)}" for i, name in self.names.items()]
        for label, o in (("h'", self.h_out), ("c'", self.c_out)):
            if o is not None:
                lines.append(f"{label} = {self.names.get(o) or infix(o, top=True)}")
        return "\n".join(lines)


# -- canonicalisation ---------------------------------------------------------------------------
def _reads(nodes: Sequence[Node], root: int, leaf: int) -> bool:
    stack, seen = [root], set()
    while stack:
        i = stack.pop()
        if i == leaf:
            return True
        if i not in seen:
            seen.add(i)
            stack.extend(nodes[i].args)
    return False


def _canonicalize(nodes: list[Node], h_out: int, c_out: int | None) -> Genome:
    # 1. drop identity nodes and merge identical parameter-free nodes (operands resolved first).
    alias = list(range(len(nodes)))
    merged: dict[tuple, int] = {}
    clean: list[Node] = []
    for i, n in enumerate(nodes):
        args = tuple(alias[a] for a in n.args)
        if n.op == "id":
            alias[i] = args[0]
            clean.append(n)
            continue
        n = Node(n.op, args, n.diag)
        if not n.has_parameters:
            key = (n.op, tuple(sorted(args)) if n.op in COMMUTATIVE else args)
            if key in merged:
                alias[i] = merged[key]
                clean.append(n)
                continue
            merged[key] = i
        clean.append(n)
    h_out = alias[h_out]
    c_out = alias[c_out] if c_out is not None else None

    # 2. the c state matters only if h' reads c.
    if c_out is not None and not _reads(clean, h_out, C):
        c_out = None
    outputs = [h_out] + ([c_out] if c_out is not None else [])
    if c_out is None and _reads(clean, h_out, C):
        raise ConfigError("genome reads c but has no c' output")
    if clean[h_out].is_leaf:
        raise ConfigError(f"genome output h' must be computed, not the input {clean[h_out].op!r}")
    if not any(_reads(clean, o, X) for o in outputs):
        raise ConfigError("genome never reads the input x")

    # 3. structural keys (bottom-up), including how often a node is used, to order operands.
    refs = [0] * len(clean)
    live: set[int] = set()
    stack = list(outputs)
    while stack:
        i = stack.pop()
        if i not in live:
            live.add(i)
            stack.extend(clean[i].args)
    for i in live:
        for a in clean[i].args:
            refs[a] += 1
    for o in outputs:
        refs[o] += 1
    keys: dict[int, str] = {X: "x", H: "h", C: "c"}
    for i in sorted(live):
        n = clean[i]
        if n.is_leaf:
            continue
        child = [keys[a] for a in n.args]
        if n.op in COMMUTATIVE:
            child.sort()
        raw = f"{n.op}|{n.diag}|{refs[i]}|{','.join(child)}"
        keys[i] = hashlib.sha1(raw.encode()).hexdigest()

    # 4. renumber in post-order from the outputs, commutative operands sorted by key.
    order: list[int] = [X, H, C]
    placed = {X: X, H: H, C: C}

    def visit(i: int) -> None:
        if i in placed:
            return
        n = clean[i]
        args = list(n.args)
        if n.op in COMMUTATIVE:
            args.sort(key=lambda a: keys[a])
        for a in args:
            visit(a)
        placed[i] = len(order)
        order.append(i)

    for o in outputs:
        visit(o)
    if len(order) > MAX_NODES:
        raise ConfigError(f"genome has {len(order)} nodes; at most {MAX_NODES} allowed")
    out: list[Node] = []
    for i in order:
        n = clean[i]
        args = [placed[a] for a in n.args]
        if n.op in COMMUTATIVE:
            args.sort(key=lambda a, _k=keys, _o=order: _k[_o[a]])
        out.append(Node(n.op, tuple(args), n.diag))
    return Genome(tuple(out), placed[h_out], placed[c_out] if c_out is not None else None)


# -- parsing -------------------------------------------------------------------------------------
_TOKEN = re.compile(r"\s*(?:(\()|(\))|([^\s()]+))")
_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def _tokenize(expr: str) -> list[str]:
    tokens, pos = [], 0
    expr = expr.strip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise ConfigError(f"genome text: cannot read {expr[pos:]!r}")
        tokens.append(m.group(0).strip())
        pos = m.end()
    return [t for t in tokens if t]


def parse(text: str) -> Genome:
    """Parse a genome text (``name=expr; ...; h'=expr[; c'=expr]``) into a canonical Genome.

    Bindings must be defined before use; inputs are ``x``, ``h``, ``c``. Bad text raises
    ConfigError naming the problem.
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"genome text must be a non-empty string, got {text!r}")
    nodes: list[Node] = [Node("x"), Node("h"), Node("c")]
    env: dict[str, int] = {"x": X, "h": H, "c": C}
    outputs: dict[str, int] = {}
    for stmt in (s.strip() for s in text.split(";")):
        if not stmt:
            continue
        name, eq, expr = stmt.partition("=")
        name = name.strip()
        if not eq:
            raise ConfigError(f"genome text: statement {stmt!r} is not of the form name=expr")
        tokens = _tokenize(expr)
        pos, index = _parse_expr(tokens, 0, nodes, env, stmt)
        if pos != len(tokens):
            raise ConfigError(f"genome text: trailing {' '.join(tokens[pos:])!r} in {stmt!r}")
        if name in ("h'", "c'"):
            if name in outputs:
                raise ConfigError(f"genome text: output {name} defined twice")
            outputs[name] = index
        elif _NAME.fullmatch(name) and name not in env and name not in UNARY and name != "lin":
            env[name] = index
        else:
            raise ConfigError(
                f"genome text: bad or repeated binding name {name!r} (use n1, g, ...; not x, h, c)"
            )
    if "h'" not in outputs:
        raise ConfigError("genome text: no h'=... output")
    return Genome.from_nodes(nodes, outputs["h'"], outputs.get("c'"))


def _parse_expr(
    tokens: list[str], pos: int, nodes: list[Node], env: dict[str, int], stmt: str
) -> tuple[int, int]:
    if pos >= len(tokens):
        raise ConfigError(f"genome text: expression ends early in {stmt!r}")
    tok = tokens[pos]
    if tok == ")":
        raise ConfigError(f"genome text: unexpected ')' in {stmt!r}")
    if tok != "(":
        if tok not in env:
            raise ConfigError(
                f"genome text: unknown name {tok!r} in {stmt!r} (define it before use)"
            )
        return pos + 1, env[tok]
    pos += 1
    if pos >= len(tokens):
        raise ConfigError(f"genome text: expression ends early in {stmt!r}")
    op, diag = tokens[pos], 0.0
    if op.startswith("lin:"):
        try:
            diag = float(op[4:])
        except ValueError:
            raise ConfigError(f"genome text: bad linear offset {op!r}; use lin:<number>") from None
        op = "lin"
    pos += 1
    args = []
    while pos < len(tokens) and tokens[pos] != ")":
        pos, a = _parse_expr(tokens, pos, nodes, env, stmt)
        args.append(a)
    if pos >= len(tokens):
        raise ConfigError(f"genome text: missing ')' in {stmt!r}")
    node = Node(op, tuple(args), diag)
    _check_node(node, len(nodes))
    nodes.append(node)
    return pos + 1, len(nodes) - 1
