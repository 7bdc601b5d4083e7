"""Tasks: the paper's problem families, generated (arith, xml, memorize) and real (ptb and the
four polyphonic music sets), each with its encoding, loss, metrics and deterministic batches.

``rnnopt.tasks.get(name, *, data_dir=None, **options)`` builds one; ``names()`` lists them.
"""

from rnnopt.tasks import arith, memorize, music, ptb, xml  # noqa: F401  (registration)
from rnnopt.tasks._base import VOCAB, Batch, Option, Task, parse_option
from rnnopt.tasks._data import resolve_data_dir
from rnnopt.tasks._registry import get, names, register, task_class

__all__ = [
    "VOCAB",
    "Batch",
    "Option",
    "Task",
    "get",
    "names",
    "parse_option",
    "register",
    "resolve_data_dir",
    "task_class",
]
