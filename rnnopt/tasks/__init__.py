"""Tasks: the paper's problem families, generated (arith, xml, memorize) and real (ptb and the
four polyphonic music sets), and the user's own files (text, series), each with its encoding,
loss, metrics and deterministic batches.

``rnnopt.tasks.get(name, *, data_dir=None, **options)`` builds one; ``names()`` lists them.
Your own task: subclass :class:`ExampleTask` (implement ``examples(split)``) and
``@register`` it, in a module given to ``--plugin`` or an ``rnnopt.tasks`` entry point.
"""

from rnnopt.tasks import arith, memorize, music, ptb, series, text, xml  # noqa: F401
from rnnopt.tasks._base import VOCAB, Batch, Option, Task, parse_option
from rnnopt.tasks._data import resolve_data_dir
from rnnopt.tasks._examples import ExampleTask
from rnnopt.tasks._registry import (
    ENTRY_POINT_GROUP,
    get,
    names,
    register,
    reload_plugins,
    task_class,
    unregister,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "VOCAB",
    "Batch",
    "ExampleTask",
    "Option",
    "Task",
    "get",
    "names",
    "parse_option",
    "register",
    "reload_plugins",
    "resolve_data_dir",
    "task_class",
    "unregister",
]
