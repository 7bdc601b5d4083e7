"""One registry of cells by name: built-ins, ``@register``-ed cells and entry-point plugins."""

from __future__ import annotations

import inspect
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

from rnnopt import plugins
from rnnopt.cells._base import RecurrentCell, check_size
from rnnopt.errors import ConfigError

__all__ = ["ENTRY_POINT_GROUP", "CellOption", "CellSpec", "build", "names", "register", "spec"]


ENTRY_POINT_GROUP = "rnnopt.cells"

Factory = Callable[..., RecurrentCell]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class CellOption:
    """A cell option that a study's ``[space]`` may search: a range or a list of choices.

    ``CellOption("scale", low=0.1, high=10, log=True)`` (``integer=True`` for whole numbers)
    or ``CellOption("activation", choices=("tanh", "relu"))``. A study file's range or grid for
    the option must lie inside the declared one; ``scale = {}`` searches the declared one.
    """

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        where = f"searchable option {self.name!r}"
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ConfigError(f"{where}: the name must be a Python identifier")
        if self.choices is not None:
            if self.low is not None or self.high is not None or self.log:
                raise ConfigError(f"{where}: give choices or a range (low, high), not both")
            choices = tuple(self.choices)
            if not choices or any(
                not isinstance(c, bool | int | float | str) for c in choices
            ) or len(set(choices)) != len(choices):
                raise ConfigError(
                    f"{where}: choices {self.choices!r} must be distinct numbers, strings or "
                    "booleans"
                )
            object.__setattr__(self, "choices", choices)
            return
        lo, hi = self.low, self.high
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lo, hi)):
            raise ConfigError(f"{where}: needs choices or a numeric range low < high")
        if not math.isfinite(lo) or not math.isfinite(hi) or not lo < hi:  # type: ignore[arg-type]
            raise ConfigError(f"{where}: low={lo!r} must be below high={hi!r}, both finite")
        if self.log and lo <= 0:  # type: ignore[operator]
            raise ConfigError(f"{where}: a log range needs low > 0, got {lo!r}")
        if self.integer and (int(lo) != lo or int(hi) != hi):  # type: ignore[arg-type]
            raise ConfigError(f"{where}: an integer range needs integer bounds")

    def as_space(self) -> dict[str, Any]:
        """The declared range as a study-file ``[space]`` entry."""
        if self.choices is not None:
            return {"grid": list(self.choices)}
        return {"low": self.low, "high": self.high, "log": self.log}


@dataclass(frozen=True)
class CellSpec:
    """What the registry knows about a cell name.

    ``factory(input_size, hidden_size, **options)`` builds it; ``defaults`` are the preset's
    options (the caller's options override them); ``options`` the option names it accepts;
    ``gates`` its ablatable gate options; ``raw_input`` whether its equations use raw x (input
    size must equal hidden size); ``searchable`` the options a study may search.
    """

    name: str
    factory: Factory
    defaults: Mapping[str, Any] = field(default_factory=dict)
    options: frozenset[str] = frozenset()
    gates: tuple[str, ...] = ()
    has_forget_bias: bool = False
    raw_input: bool = False
    description: str = ""
    searchable: Mapping[str, CellOption] = field(default_factory=dict)

    def forget_bias_with(self, options: Mapping[str, Any]) -> bool:
        """Whether the cell built with ``options`` has a forget-gate bias: a bias belongs to the
        forget gate, so there is none with ``forget_gate=False`` or coupled gates."""
        if not self.has_forget_bias:
            return False
        merged = {**self.defaults, **options}
        return merged.get("forget_gate", True) is not False and not merged.get("coupled_gates")


_REGISTRY: dict[str, CellSpec] = {}
_lock = threading.Lock()


def _factory_options(factory: Callable[..., Any]) -> frozenset[str]:
    """Keyword options a factory (or cell class) accepts besides the two sizes."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return frozenset()
    skip = {"self", "input_size", "hidden_size"}
    return frozenset(
        p.name
        for p in sig.parameters.values()
        if p.name not in skip and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    )


def register(
    name: str,
    *,
    options: Iterable[str] | None = None,
    gates: Iterable[str] = (),
    raw_input: bool = False,
    description: str = "",
    defaults: Mapping[str, Any] | None = None,
    has_forget_bias: bool | None = None,
    searchable: Iterable[CellOption] = (),
    replace: bool = False,
) -> Callable[[F], F]:
    """Class or function decorator that registers a cell under ``name``.

    The decorated object is called as ``factory(input_size, hidden_size, **options)`` and must
    return a :class:`RecurrentCell`. ``options`` defaults to the keyword parameters of its
    signature; ``defaults`` are preset values for some of them; ``has_forget_bias`` defaults to
    whether ``forget_bias`` is among the options; ``searchable`` (:class:`CellOption`) are the
    options a study's ``[space]`` may search. Registering a taken name is a ConfigError
    unless ``replace=True``.
    """
    if not isinstance(name, str) or not name or name != name.strip():
        raise ConfigError(f"cell name must be a non-empty string without spaces, got {name!r}")

    def decorator(factory: F) -> F:
        opts = frozenset(options) if options is not None else _factory_options(factory)
        preset = dict(defaults or {})
        unknown = sorted(set(preset) - opts)
        if unknown:
            raise ConfigError(
                f"cell {name!r}: preset options {unknown} are not among its options {sorted(opts)}"
            )
        gate_names = tuple(gates)
        search = {o.name: o for o in searchable}
        if not set(search) <= opts:
            raise ConfigError(
                f"cell {name!r}: searchable options {sorted(set(search) - opts)} are not among "
                f"its options {sorted(opts)}"
            )
        s = CellSpec(
            name=name,
            factory=factory,
            defaults=MappingProxyType(preset),
            options=opts,
            gates=gate_names,
            has_forget_bias="forget_bias" in opts if has_forget_bias is None else has_forget_bias,
            raw_input=raw_input,
            description=description or _first_line(factory.__doc__),
            searchable=MappingProxyType(search),
        )
        with _lock:
            if name in _REGISTRY and not replace and _REGISTRY[name].factory is not factory:
                raise ConfigError(f"cell name {name!r} is already registered")
            _REGISTRY[name] = s
        return factory

    return decorator


def unregister(name: str) -> None:
    """Remove a registered cell (for tests and interactive use)."""
    with _lock:
        _REGISTRY.pop(name, None)


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n", 1)[0]


def _install(name: str, obj: Any) -> None:
    if name in _REGISTRY:
        return  # the module registered itself with @register on import
    if isinstance(obj, CellSpec):
        with _lock:
            _REGISTRY[name] = obj
    elif callable(obj):
        register(name)(obj)
    else:
        raise TypeError(f"{type(obj).__name__} is neither a cell factory nor a CellSpec")


_PLUGINS = plugins.EntryPoints(ENTRY_POINT_GROUP, "cell", _install)


def reload_plugins() -> None:
    """Look at the entry points again (after installing a plugin in a running process)."""
    _PLUGINS.reload()


def names() -> list[str]:
    """Every registered cell name, sorted."""
    _PLUGINS.load()
    return sorted(_REGISTRY)


def spec(name: str) -> CellSpec:
    """The :class:`CellSpec` of ``name``; ConfigError listing the valid names if unknown."""
    if name not in _REGISTRY:
        _PLUGINS.load()
    if isinstance(name, str) and name in _PLUGINS.broken and name not in _REGISTRY:
        raise ConfigError(_PLUGINS.broken[name])
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown cell {name!r}; valid cells: {', '.join(names())}"
        ) from None


def resolve_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The preset's defaults overridden by ``options``; ConfigError for an unknown option."""
    s = spec(name)
    unknown = sorted(set(options) - s.options)
    if unknown:
        allowed = ", ".join(sorted(s.options)) or "none"
        raise ConfigError(
            f"cell {name!r} has no option {', '.join(map(repr, unknown))}; allowed: {allowed}"
        )
    return {**s.defaults, **options}


def build(name: str, input_size: int, hidden_size: int, **options: Any) -> RecurrentCell:
    """Build the cell ``name`` for ``input_size`` inputs and ``hidden_size`` units.

    ``options`` override the preset's defaults. Unknown names or options, sizes <= 0 and
    contradictory options raise ConfigError.
    """
    s = spec(name)
    check_size("input_size", input_size)
    check_size("hidden_size", hidden_size)
    if s.raw_input and input_size != hidden_size:
        raise ConfigError(
            f"cell {name!r} uses raw x in its equations: input_size ({input_size}) must equal "
            f"hidden_size ({hidden_size}); StackedRNN adds a projection for this"
        )
    cell = s.factory(input_size, hidden_size, **resolve_options(name, options))
    if not isinstance(cell, RecurrentCell):
        raise ConfigError(
            f"cell {name!r}: factory returned {type(cell).__name__}, not a RecurrentCell"
        )
    return cell
