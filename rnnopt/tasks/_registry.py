"""The one task registry: names -> Task classes; unknown names list the valid ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from rnnopt.errors import ConfigError

_TASKS: dict[str, type] = {}
T = TypeVar("T", bound=type)


def register(cls: T) -> T:
    """Class decorator: make ``cls`` available as ``rnnopt.tasks.get(cls.name)``."""
    name = cls.name  # type: ignore[attr-defined]
    if not name or name in _TASKS:
        raise ValueError(f"task name {name!r} is empty or already registered")
    _TASKS[name] = cls
    return cls


def names() -> list[str]:
    """Every registered task name, sorted."""
    return sorted(_TASKS)


def task_class(name: str) -> type:
    """The class registered as ``name``; ConfigError listing valid names if unknown."""
    try:
        return _TASKS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown task {name!r}; valid tasks: {', '.join(names())}"
        ) from None


def get(name: str, *, data_dir: str | Path | None = None, **options: Any) -> Any:
    """Build task ``name`` with ``options``; ``data_dir`` overrides RNNOPT_DATA and ./data."""
    return task_class(name)(data_dir=data_dir, **options)
