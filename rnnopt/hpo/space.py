"""Search spaces: the paper's grids, continuous ranges, and ``suggest`` (the one place a trial's
values are drawn). Study files are read by ``rnnopt.hpo.studyfile``; their format:

A study file (``studies/*.toml``) has up to six tables (``[sampler]`` and ``[pruner]``: the
chosen sampler's and pruner's options, rnnopt/hpo/samplers.py)::

    [study]            # defaults for the command-line options (the command line wins)
    tasks = ["xml"]    # or task = "xml"
    cells = ["lstm", "gru"]
    mode = "compare"   # compare | search
    sampler = "paper"  # tpe | random | gp | cmaes | qmc | paper
    pruner = "none"    # hyperband | successive-halving | median | percentile | staged | none
    n_trials = 20
    max_steps = 2000

    [train]            # fixed training settings (TrainConfig keys) for every trial
    batch_size = 20

    [train.ptb]        # per-task overrides of [train]; task_options = {...} goes here too
    unroll = 35

    [space]            # the searched parameters
    lr = [0.1, 0.2, 0.3, 0.5, 1, 2, 5]              # a grid: always categorical
    clip_norm = {low = 1, high = 20, log = true}     # a range: always float/int
    init_scale = {grid = [0.3, 0.7, 1, 1.4, 2, 2.8], low = 0.3, high = 2.8, log = true}
    layers = {grid = [1, 2, 3, 4], low = 1, high = 4}  # both: grid under `paper`, range else
    dropout = 0.0                                    # a plain value: fixed, not searched
    gates = ["input_gate", "output_gate", "forget_gate"]  # ablate these (True/False)

A parameter that gives both a ``grid`` and a range is suggested categorically over the grid by
the ``paper`` sampler (the paper's random search over its discrete grids) and as a continuous
(or integer) range by every other sampler. Gate ablations apply only to cells whose spec lists
that gate, ``forget_bias`` only to cells that have a forget bias (and, where ``forget_gate`` is
searched, only to trials that keep the forget gate: ``"requires": {"forget_gate": true}`` in
the resolved space; a bias belongs to the forget gate), and a cell's own searchable option
(``rnnopt.cells.CellOption``, e.g. ``scale = {low = 0.5, high = 2}``, or ``scale = {}`` for the
range the cell declares) only to the cells that declare it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rnnopt import paper
from rnnopt.errors import ConfigError

__all__ = [
    "PAPER_CELLS",
    "PAPER_SPACE",
    "SPACE_PARAMS",
    "Param",
    "Space",
    "parse_space",
]

PAPER_CELLS = paper.CELL_ORDER

# name -> integer valued?
SPACE_PARAMS: dict[str, bool] = {
    "lr": False,
    "clip_norm": False,
    "init_scale": False,
    "layers": True,
    "dropout": False,
    "forget_bias": False,
    "hidden_size": True,
    "param_budget": True,
}
GATE_NAMES = ("input_gate", "output_gate", "forget_gate")
_SIZE_KEYS = ("hidden_size", "param_budget")

# The paper's grids (PAPER.md; the grids are unconfirmed, see docs/studies.md). The ranges
# span each grid so that TPE & co. search the same region continuously.
def _grid_param(name: str, log: bool = True) -> dict[str, Any]:
    # Whole numbers as ints: stored spaces (rnnopt.space) spell them so, and a resumed study
    # is compared with its stored space.
    grid = [int(v) if float(v).is_integer() else v for v in paper.GRIDS[name]]
    return {"grid": grid, "low": grid[0], "high": grid[-1], **({"log": True} if log else {})}


PAPER_SPACE: dict[str, Any] = {
    "lr": _grid_param("lr"),
    "clip_norm": _grid_param("clip_norm"),
    "init_scale": _grid_param("init_scale"),
    "layers": _grid_param("layers", log=False),
    "dropout": 0.0,
}


@dataclass(frozen=True)
class Param:
    """One parameter as written in a study file: a fixed value, a grid, a range, or grid+range."""

    name: str
    value: Any = None
    grid: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    integer: bool = False

    @property
    def fixed(self) -> bool:
        return self.grid is None and self.low is None

    def resolve(self, grid_mode: bool) -> dict[str, Any]:
        """The distribution actually used, as a JSON-able dict."""
        if self.fixed:
            return {"type": "fixed", "value": self.value}
        if self.grid is not None and (grid_mode or self.low is None):
            return {"type": "categorical", "choices": list(self.grid)}
        kind = "int" if self.integer else "float"
        out: dict[str, Any] = {"type": kind, "low": self.low, "high": self.high, "log": self.log}
        if self.step is not None:
            out["step"] = self.step
        return out


def _where(source: str) -> str:
    return f" in {source}" if source else ""


def _number(name: str, value: Any, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"space.{name}: {value!r} is not a finite number{_where(source)}")
    return value


def _parse_param(name: str, spec: Any, source: str, integer: bool | None = None) -> Param:
    integer = SPACE_PARAMS[name] if integer is None else integer
    where = _where(source)
    if isinstance(spec, list):
        spec = {"grid": spec}
    if not isinstance(spec, dict):
        value = _number(name, spec, source)
        if integer and int(value) != value:
            raise ConfigError(f"space.{name}: {value!r} must be an integer{where}")
        _check_bounds(name, [value], source)
        return Param(name, value=int(value) if integer else value, integer=integer)
    unknown = sorted(set(spec) - {"grid", "low", "high", "log", "step"})
    if unknown:
        raise ConfigError(
            f"space.{name}: unknown key(s) {', '.join(unknown)}{where}; "
            "allowed: grid, low, high, log, step"
        )
    grid = None
    if "grid" in spec:
        raw = spec["grid"]
        if not isinstance(raw, list) or not raw:
            raise ConfigError(f"space.{name}.grid: {raw!r} must be a non-empty list{where}")
        values = [_number(name, v, source) for v in raw]
        if integer and any(int(v) != v for v in values):
            raise ConfigError(f"space.{name}.grid: {raw!r} must hold integers{where}")
        if len(set(values)) != len(values):
            raise ConfigError(f"space.{name}.grid: {raw!r} has duplicates{where}")
        grid = tuple(int(v) if integer else v for v in values)
    low = high = None
    if "low" in spec or "high" in spec:
        if "low" not in spec or "high" not in spec:
            raise ConfigError(f"space.{name}: a range needs both low and high{where}")
        low, high = _number(name, spec["low"], source), _number(name, spec["high"], source)
        if not low < high:
            raise ConfigError(f"space.{name}: low={low!r} must be below high={high!r}{where}")
        if integer and (int(low) != low or int(high) != high):
            raise ConfigError(f"space.{name}: low and high must be integers{where}")
    elif "log" in spec or "step" in spec:
        raise ConfigError(f"space.{name}: log/step need a range (low, high){where}")
    if grid is None and low is None:
        raise ConfigError(f"space.{name}: give a grid, a range (low, high) or a value{where}")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"space.{name}.log: {log!r} must be true or false{where}")
    if log and low is not None and low <= 0:
        raise ConfigError(f"space.{name}: log range needs low > 0, got {low!r}{where}")
    step = spec.get("step")
    if step is not None:
        step = _number(name, step, source)
        if step <= 0 or log:
            raise ConfigError(f"space.{name}.step: {step!r} must be > 0 and not with log{where}")
        if integer and int(step) != step:
            raise ConfigError(
                f"space.{name}.step: {step!r}; allowed: a whole number >= 1 ({name} is an "
                f"integer){where}"
            )
    _check_bounds(name, [*(grid or ()), *((low, high) if low is not None else ())], source)
    if integer and low is not None:
        low, high = int(low), int(high)
    return Param(name, grid=grid, low=low, high=high, log=log, step=step, integer=integer)


_BOUNDS: dict[str, tuple[float, float | None, str]] = {
    "lr": (0.0, None, "> 0"),
    "clip_norm": (0.0, None, "> 0"),
    "init_scale": (0.0, None, "> 0"),
    "layers": (0.5, 4.5, "1..4"),
    "dropout": (-1e-12, 1.0, "in [0, 1)"),
    "hidden_size": (0.5, None, ">= 1"),
    "param_budget": (99.5, None, ">= 100"),
}


def _check_bounds(name: str, values: list[float], source: str) -> None:
    if name not in _BOUNDS:
        return
    lo, hi, text = _BOUNDS[name]
    for v in values:
        if v <= lo or (hi is not None and v >= hi):
            raise ConfigError(f"space.{name}: {v!r} out of range (allowed {text}){_where(source)}")


@dataclass
class Space:
    """The searched parameters of one study definition (every cell/task shares it)."""

    params: dict[str, Param] = field(default_factory=dict)
    gates: tuple[str, ...] = ()

    def resolved(
        self,
        cells: list[str],
        *,
        grid_mode: bool,
        search: bool,
        size: Mapping[str, int] | None = None,
    ) -> dict[str, Any]:
        """The JSON-able space of one study: ``cells`` is ``[cell]`` in compare mode.

        ``size`` (``{"hidden_size": n}`` or ``{"param_budget": n}``) replaces the space's model
        size with a fixed value (a per-task ``[train.TASK]`` setting).
        """
        from rnnopt import cells as cell_registry

        specs = {c: cell_registry.spec(c) for c in cells}
        out: dict[str, Any] = {"sampler_grid": grid_mode, "params": {}}
        if search:
            out["cell"] = {"type": "categorical", "choices": list(cells)}
        params = dict(self.params)
        if size:
            for key in _SIZE_KEYS:
                params.pop(key, None)
            params.update({k: Param(k, value=v, integer=True) for k, v in size.items()})
        for name, param in params.items():
            if name == "forget_bias":
                having = [c for c in cells if specs[c].has_forget_bias]
                if not having:
                    continue
                entry = dict(param.resolve(grid_mode))
                if search and len(having) != len(cells):
                    entry["only_cells"] = having
                if "forget_gate" in self.gates and any(
                    "forget_gate" in specs[c].gates for c in having
                ):
                    # A bias belongs to the forget gate: none in a trial without one.
                    entry["requires"] = {"forget_gate": True}
                out["params"][name] = entry
            else:
                out["params"][name] = param.resolve(grid_mode)
        for name in [n for n in params if n not in SPACE_PARAMS]:  # the cells' own options
            having = [c for c in cells if name in specs[c].searchable]
            entry = out["params"].pop(name)
            if having:
                if search and len(having) != len(cells):
                    entry["only_cells"] = having
                out["params"][name] = entry
        for gate in self.gates:
            having = [c for c in cells if gate in specs[c].gates]
            if not having:
                continue
            entry = {"type": "categorical", "choices": [True, False]}
            if search and len(having) != len(cells):
                entry["only_cells"] = having
            out["params"][gate] = entry
        return out


def canonical_json(obj: Any) -> str:
    """Canonical JSON (sorted keys, no spaces): equal spaces give equal strings."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def suggest(trial: Any, space: Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """Suggest every parameter of a resolved space on an Optuna trial.

    Returns ``(cell or None, values)`` where ``values`` maps parameter names (``lr``,
    ``input_gate``, ...) to the values of this trial, fixed ones included.
    """
    cell = None
    if "cell" in space:
        cell = trial.suggest_categorical("cell", space["cell"]["choices"])
    values: dict[str, Any] = {}
    # Conditional parameters last, once the parameters they depend on have their values.
    ordered = sorted(space["params"].items(), key=lambda item: "requires" in item[1])
    for name, dist in ordered:
        only = dist.get("only_cells")
        if only is not None and cell not in only:
            continue
        needs = dist.get("requires", {})
        if any(values.get(key, want) != want for key, want in needs.items()):
            continue
        kind = dist["type"]
        if kind == "fixed":
            values[name] = dist["value"]
        elif kind == "categorical":
            values[name] = trial.suggest_categorical(name, dist["choices"])
        elif kind == "int":
            values[name] = trial.suggest_int(
                name, dist["low"], dist["high"], log=dist["log"], step=int(dist.get("step") or 1)
            )
        else:
            values[name] = trial.suggest_float(
                name, dist["low"], dist["high"], log=dist["log"], step=dist.get("step")
            )
    return cell, values


def _cell_options() -> dict[str, list[Any]]:
    """Searchable options of the registered cells: name -> the CellOptions that declare it."""
    from rnnopt import cells as cell_registry

    out: dict[str, list[Any]] = {}
    for cell in cell_registry.names():
        for name, option in cell_registry.spec(cell).searchable.items():
            out.setdefault(name, []).append(option)
    return out


def _parse_cell_option(name: str, spec: Any, declared: list[Any], source: str) -> Param:
    """A cell's own option in ``[space]``: like a training parameter, within what the cells
    declare (``{}``: the declared range or choices)."""
    where = _where(source)
    first = declared[0]
    if spec == {}:
        spec = first.as_space()
    choices = [c for o in declared if o.choices is not None for c in o.choices]
    if choices:
        grid = spec.get("grid") if isinstance(spec, dict) else spec
        values = grid if isinstance(grid, list) else [grid]
        if (isinstance(spec, dict) and set(spec) - {"grid"}) or not values or any(
            v not in choices for v in values
        ):
            raise ConfigError(
                f"space.{name}: {spec!r}{where}; allowed: a value or a list of "
                f"{', '.join(map(repr, dict.fromkeys(choices)))}"
            )
        if isinstance(grid, list):
            return Param(name, grid=tuple(dict.fromkeys(grid)))
        return Param(name, value=grid)
    integer = all(o.integer for o in declared)
    lo = min(o.low for o in declared)
    hi = max(o.high for o in declared)
    param = _parse_param(name, spec, source, integer)
    values = [param.value] if param.fixed else [*(param.grid or ()), param.low, param.high]
    if any(v is not None and not lo <= v <= hi for v in values):
        raise ConfigError(
            f"space.{name}: {spec!r} goes outside the range the cells declare, "
            f"[{lo:g}, {hi:g}]{where}"
        )
    return param


def parse_space(table: Mapping[str, Any] | None, source: str = "") -> Space:
    """Parse a ``[space]`` table; missing parameters take the paper's defaults."""
    table = dict(table or {})
    where = _where(source)
    declared = _cell_options()
    allowed = [*SPACE_PARAMS, "gates", *sorted(set(declared) - set(SPACE_PARAMS))]
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ConfigError(
            f"unknown space key(s) {', '.join(unknown)}{where}; allowed: {', '.join(allowed)}"
        )
    if "hidden_size" in table and "param_budget" in table:
        raise ConfigError(f"space: give hidden_size or param_budget, not both{where}")
    gates_raw = table.pop("gates", [])
    if not isinstance(gates_raw, list) or any(g not in GATE_NAMES for g in gates_raw):
        raise ConfigError(
            f"space.gates: {gates_raw!r}{where}; allowed: a list of {', '.join(GATE_NAMES)}"
        )
    merged: dict[str, Any] = {k: v for k, v in PAPER_SPACE.items()}
    merged.update(table)
    params = {
        name: _parse_param(name, spec, source)
        if name in SPACE_PARAMS
        else _parse_cell_option(name, spec, declared[name], source)
        for name, spec in merged.items()
    }
    return Space(params=params, gates=tuple(dict.fromkeys(gates_raw)))
