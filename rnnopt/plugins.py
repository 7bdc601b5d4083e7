"""Plug-ins: user code that registers cells (``@rnnopt.cells.register``) and tasks
(``@rnnopt.tasks.register``), found in three ways:

- entry points of an installed distribution, in the groups ``rnnopt.cells`` and ``rnnopt.tasks``
  (read the first time a registry is asked for its names or for a name it does not know);
- ``--plugin MODULE`` (or ``--plugin path/to/file.py``), repeatable, on every command;
- the ``RNNOPT_PLUGINS`` environment variable: comma-separated modules or files.

``--plugin`` imports the module at once and appends it to ``RNNOPT_PLUGINS``, so the worker
processes a command starts (``--workers``, spawned) and any subprocess import the same code:
the registries read the variable as lazily as the entry points.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import logging
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from rnnopt.errors import ConfigError

__all__ = ["ENV", "EntryPoints", "add_option", "load", "load_entry_points", "load_env"]

logger = logging.getLogger(__name__)

ENV = "RNNOPT_PLUGINS"
_loaded: set[str] = set()  # entries of RNNOPT_PLUGINS imported in this process


def _is_file(spec: str) -> bool:
    return spec.endswith(".py") or os.sep in spec


def _import(spec: str) -> ModuleType:
    """Import ``spec`` (a module name, or the path of a ``.py`` file)."""
    if not _is_file(spec):
        return importlib.import_module(spec)
    path = Path(spec).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no such file {path}")
    name = path.stem
    module = sys.modules.get(name)
    if module is not None and getattr(module, "__file__", None) == str(path):
        return module
    if module is not None:
        raise ImportError(f"a module named {name!r} is already imported from elsewhere")
    loader_spec = importlib.util.spec_from_file_location(name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise ImportError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[name] = module
    try:
        loader_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _registered() -> tuple[int, int]:
    from rnnopt import cells, tasks

    return len(cells.names()), len(tasks.names())


def load(specs: Iterable[str], *, source: str = "--plugin") -> None:
    """Import each plug-in now and add it to ``RNNOPT_PLUGINS`` for child processes.

    ConfigError (one line) for a module that cannot be imported, fails while importing, or
    registers no cell and no task.
    """
    for spec in specs:
        if not isinstance(spec, str) or not spec.strip() or "," in spec:
            raise ConfigError(
                f"{source} {spec!r}: give one importable module name or .py file"
            )
        spec = spec.strip()
        key = str(Path(spec).expanduser().resolve()) if _is_file(spec) else spec
        before = _registered()
        already = key in _loaded or (not _is_file(spec) and spec in sys.modules)
        try:
            _import(key)
        except Exception as exc:
            raise ConfigError(
                f"{source} {spec!r}: cannot import it ({_why(exc)}); give a module on the "
                "Python path (PYTHONPATH) or a .py file"
            ) from None
        if not already and _registered() == before:
            raise ConfigError(
                f"{source} {spec!r} registered no cell and no task; a plug-in module calls "
                "@rnnopt.cells.register or @rnnopt.tasks.register when imported"
            )
        _loaded.add(key)
        entries = [e for e in os.environ.get(ENV, "").split(",") if e]
        if key not in entries:
            os.environ[ENV] = ",".join([*entries, key])


def load_env() -> None:
    """Import the plug-ins named in ``RNNOPT_PLUGINS`` that this process has not imported."""
    for spec in os.environ.get(ENV, "").split(","):
        spec = spec.strip()
        if not spec or spec in _loaded:
            continue
        _loaded.add(spec)
        try:
            _import(spec)
        except Exception as exc:
            raise ConfigError(
                f"{ENV} names {spec!r}, which cannot be imported ({_why(exc)})"
            ) from None


def load_entry_points(
    group: str, kind: str, install: Callable[[str, Any], None]
) -> dict[str, str]:
    """Load every entry point of ``group`` and pass ``(name, loaded object)`` to ``install``.

    Returns the plug-ins that failed, name -> one-line reason; they are logged, and every
    other plug-in keeps working.
    """
    broken: dict[str, str] = {}
    for ep in importlib.metadata.entry_points(group=group):
        try:
            install(ep.name, ep.load())
        except Exception as exc:
            broken[ep.name] = (
                f"{kind} plugin {ep.name!r} ({ep.value}, entry-point group {group!r}) "
                f"failed to load: {_why(exc)}"
            )
            logger.warning("%s", broken[ep.name])
            continue
        logger.debug("loaded %s plugin %s from %s", kind, ep.name, ep.value)
    return broken


class EntryPoints:
    """One registry's plug-ins: its entry-point group, read the first time :meth:`load` is
    called, and ``RNNOPT_PLUGINS``, read on every call. ``broken`` maps the name of each
    plug-in that failed to load to a one-line reason."""

    def __init__(self, group: str, kind: str, install: Callable[[str, Any], None]) -> None:
        self.group, self.kind, self._install = group, kind, install
        self.broken: dict[str, str] = {}
        self._loaded = False

    def load(self) -> None:
        if not self._loaded:
            self._loaded = True
            self.broken.update(load_entry_points(self.group, self.kind, self._install))
        load_env()

    def reload(self) -> None:
        """Look at the entry points again (after installing a plugin in a running process)."""
        self._loaded = False
        self.broken.clear()
        self.load()


class _PluginAction(argparse.Action):
    """``--plugin M``: import M while the command line is parsed, before anything uses a name."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        load([values])
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest, None) or []), values])


def add_option(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--plugin MODULE`` (repeatable) to ``parser`` and to each of its sub-commands.

    Call it after the sub-commands were added. The module is imported as soon as the option is
    parsed, so the cells and tasks it registers are known to everything that follows.
    """
    parsers = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            parsers += list(dict.fromkeys(action.choices.values()))
    for p in parsers:
        if any("--plugin" in a.option_strings for a in p._actions):
            continue
        p.add_argument(
            "--plugin",
            action=_PluginAction,
            default=[],
            metavar="MODULE",
            help="import MODULE (or a .py file) that registers cells or tasks (repeatable; "
            f"also ${ENV}, comma-separated)",
        )
    return parser
