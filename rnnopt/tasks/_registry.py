"""The one task registry: names -> Task classes, from the built-ins, ``@register``-ed classes and
plug-ins (the ``rnnopt.tasks`` entry-point group, ``--plugin``, ``$RNNOPT_PLUGINS``); unknown
names list the valid ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from rnnopt import plugins
from rnnopt.errors import ConfigError

ENTRY_POINT_GROUP = "rnnopt.tasks"
DIRECTIONS = ("maximize", "minimize")

_TASKS: dict[str, type] = {}
T = TypeVar("T", bound=type)


def register(cls: T) -> T:
    """Class decorator: make ``cls`` (a :class:`~rnnopt.tasks.Task` subclass) available as
    ``rnnopt.tasks.get(cls.name)``; ConfigError for a bad or taken name, metric or direction."""
    from rnnopt.tasks._base import Task

    name = getattr(cls, "name", None)
    where = f"task class {getattr(cls, '__qualname__', cls)!r}"
    if not isinstance(cls, type) or not issubclass(cls, Task):
        raise ConfigError(f"{where} is not a subclass of rnnopt.tasks.Task")
    if not isinstance(name, str) or not name or name != name.strip() or "," in name:
        raise ConfigError(
            f"{where}: name {name!r} must be a non-empty string without spaces or commas"
        )
    if name in _TASKS and _TASKS[name] is not cls:
        raise ConfigError(f"task name {name!r} is already registered")
    if getattr(cls, "direction", None) not in DIRECTIONS:
        raise ConfigError(
            f"task {name!r}: direction {cls.direction!r}; allowed: {', '.join(DIRECTIONS)}"
        )
    if not isinstance(getattr(cls, "metric", None), str) or not cls.metric:
        raise ConfigError(f"task {name!r}: metric must name its primary metric")
    _TASKS[name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove a registered task (for tests and interactive use)."""
    _TASKS.pop(name, None)


def _install(name: str, obj: Any) -> None:
    if name in _TASKS:
        return  # the module registered itself with @register on import
    if not isinstance(obj, type) or getattr(obj, "name", None) != name:
        raise TypeError(
            f"{obj!r} is not a Task class named {name!r} (the entry point's name must be the "
            "task's name)"
        )
    register(obj)


_PLUGINS = plugins.EntryPoints(ENTRY_POINT_GROUP, "task", _install)


def reload_plugins() -> None:
    """Look at the entry points again (after installing a plugin in a running process)."""
    _PLUGINS.reload()


def names() -> list[str]:
    """Every registered task name, sorted."""
    _PLUGINS.load()
    return sorted(_TASKS)


def task_class(name: str) -> type:
    """The class registered as ``name``; ConfigError listing valid names if unknown."""
    if not isinstance(name, str) or name not in _TASKS:
        _PLUGINS.load()
    if isinstance(name, str) and name in _PLUGINS.broken and name not in _TASKS:
        raise ConfigError(_PLUGINS.broken[name])
    try:
        return _TASKS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown task {name!r}; valid tasks: {', '.join(names())}"
        ) from None


def get(name: str, *, data_dir: str | Path | None = None, **options: Any) -> Any:
    """Build task ``name`` with ``options``; ``data_dir`` overrides RNNOPT_DATA and ./data."""
    return task_class(name)(data_dir=data_dir, **options)
