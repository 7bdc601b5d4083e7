"""Parameter-budget solver: the hidden size at which the whole model has about N parameters.

The paper compared cells at a fixed parameter budget rather than a fixed width. The count
includes everything the trainer builds: embedding or input projection, every layer, the head.
Models are built on torch's ``meta`` device, so no memory is allocated for the weights.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from rnnopt.errors import ConfigError
from rnnopt.model import SequenceModel, count_parameters

__all__ = ["model_parameters", "solve_hidden_size"]

MAX_HIDDEN = 1 << 16


def model_parameters(
    task: Any, cell: str, hidden_size: int, *, layers: int = 1, **cell_options: Any
) -> int:
    """Number of trainable parameters of ``SequenceModel(task, cell, hidden_size, ...)``."""
    key = (task.input_kind, task.input_size, task.output_size)
    return _count(key, cell, hidden_size, layers, tuple(sorted(cell_options.items())))


@functools.lru_cache(maxsize=4096)
def _count(shape: tuple[str, int, int], cell: str, hidden: int, layers: int, opts: tuple) -> int:
    task = _Shape(*shape)
    try:
        with torch.device("meta"):
            model = SequenceModel(task, cell, hidden, layers=layers, **dict(opts))
    except (RuntimeError, NotImplementedError):
        # A cell that cannot be built on the meta device; build it for real instead.
        model = SequenceModel(task, cell, hidden, layers=layers, **dict(opts))
    return count_parameters(model)


class _Shape:
    def __init__(self, input_kind: str, input_size: int, output_size: int) -> None:
        self.name = "budget"
        self.input_kind = input_kind
        self.input_size = input_size
        self.output_size = output_size


def solve_hidden_size(
    task: Any, cell: str, budget: int, *, layers: int = 1, **cell_options: Any
) -> int:
    """The hidden size whose model's parameter count is closest to ``budget``.

    The count grows monotonically with the hidden size, so a bisection finds the first size at
    or above the budget; that size or the one below it is the closest.
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ConfigError(f"bad param_budget {budget!r}; allowed: a positive integer")

    def count(h: int) -> int:
        return model_parameters(task, cell, h, layers=layers, **cell_options)

    if count(1) >= budget:
        raise ConfigError(
            f"param_budget {budget} is below the smallest {cell} model on {task.name} "
            f"({count(1)} parameters at hidden size 1)"
        )
    lo, hi = 1, 2
    while count(hi) < budget:
        lo, hi = hi, hi * 2
        if hi > MAX_HIDDEN:
            raise ConfigError(f"param_budget {budget} needs a hidden size above {MAX_HIDDEN}")
    while hi - lo > 1:  # invariant: count(lo) < budget <= count(hi)
        mid = (lo + hi) // 2
        if count(mid) < budget:
            lo = mid
        else:
            hi = mid
    return hi if count(hi) - budget <= budget - count(lo) else lo
