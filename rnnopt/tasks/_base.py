"""The Task and Batch contract, option validation, and the shared character-level machinery.

Every task tells the model its input encoding (``input_kind``, ``input_size``), its output head
(``output_size``), its loss, its metrics and their direction, and yields batches. See
``docs/ARCHITECTURE.md`` (Tasks) for the contract the trainer codes against.
"""

from __future__ import annotations

import dataclasses
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from rnnopt.errors import ConfigError

SPLITS = ("train", "valid", "test")


@dataclass
class Batch:
    """One minibatch, time-major.

    ``inputs``/``targets``: ``[T, B]`` int64 (tokens) or ``[T, B, 88]`` float32 (multihot);
    ``mask``: ``[T, B]`` bool, the positions that count in the loss and the metrics;
    ``reset``: start from a zero state; ``tokens``: number of scored positions;
    ``extra``: task-specific ``[T, B]`` masks (e.g. xml's closing-tag characters).
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor
    reset: bool = True
    tokens: int = 0
    extra: dict[str, torch.Tensor] = field(default_factory=dict)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """A copy with every tensor on ``device``."""
        return dataclasses.replace(
            self,
            inputs=self.inputs.to(device, non_blocking=non_blocking),
            targets=self.targets.to(device, non_blocking=non_blocking),
            mask=self.mask.to(device, non_blocking=non_blocking),
            extra={k: v.to(device, non_blocking=non_blocking) for k, v in self.extra.items()},
        )


def parse_option(pair: str) -> tuple[str, Any]:
    """A command-line task option ``KEY=VALUE`` -> (key, value); the value is JSON (a number,
    true or false) where it parses as JSON, else the text itself (a file name, a column)."""
    key, sep, value = pair.partition("=")
    if not sep or not key:
        raise ConfigError(f"option {pair!r} must look like KEY=VALUE")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


@dataclass(frozen=True)
class Option:
    """A task option: default, type and allowed closed range ``[low, high]`` (None: open).

    A ``str`` option takes text (a number given on the command line is read as its text); with
    ``choices`` only those; its default may be None (not given).
    """

    name: str
    default: Any
    kind: type
    low: float | None = None
    high: float | None = None
    help: str = ""
    choices: tuple[str, ...] = ()

    def check(self, task: str, value: Any) -> Any:
        if self.kind is str:
            if value is None and self.default is None:
                return None
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str):
                raise ConfigError(f"{task}: option {self.name}={value!r} must be text")
            if self.choices and value not in self.choices:
                raise ConfigError(f"{task}: option {self.name}={value!r} is not allowed; "
                                  f"allowed: {', '.join(self.choices)}")
            return value
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ConfigError(f"{task}: option {self.name}={value!r} must be true or false")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{task}: option {self.name}={value!r} must be a number "
                              f"{self.range_text()}")
        if self.kind is int:
            if float(value) != int(value):
                raise ConfigError(f"{task}: option {self.name}={value!r} must be an integer "
                                  f"{self.range_text()}")
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise ConfigError(f"{task}: option {self.name}={value!r} must be finite "
                                  f"{self.range_text()}")
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            raise ConfigError(f"{task}: option {self.name}={value!r} is out of range; "
                              f"allowed {self.range_text()}")
        return value

    def range_text(self) -> str:
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        return f"in [{lo}, {hi}]"


class Task(ABC):
    """A problem: encoding, loss, metrics and deterministic batches.

    Subclasses set the class attributes and implement :meth:`batches`, :meth:`loss`,
    :meth:`batch_stats`, :meth:`summarize`, :meth:`info` and :meth:`sample`.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    input_kind: ClassVar[str] = "tokens"
    metric: ClassVar[str] = "accuracy"
    direction: ClassVar[str] = "maximize"
    stateful: ClassVar[bool] = False
    options_spec: ClassVar[tuple[Option, ...]] = ()

    input_size: int
    output_size: int

    def __init__(self, *, data_dir: str | Path | None = None, **options: Any) -> None:
        self.data_dir = data_dir
        self.options = self._check_options(options)

    @classmethod
    def _check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        known = {o.name: o for o in cls.options_spec}
        for key in options:
            if key not in known:
                allowed = ", ".join(sorted(known)) or "none"
                raise ConfigError(f"{cls.name}: unknown option {key!r}; allowed: {allowed}")
        return {
            name: opt.check(cls.name, options.get(name, opt.default))
            for name, opt in known.items()
        }

    @staticmethod
    def check_split(split: str) -> None:
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")

    @staticmethod
    def check_batching(batch_size: int, unroll: int) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size={batch_size!r} must be an integer >= 1")
        if isinstance(unroll, bool) or not isinstance(unroll, int) or unroll < 1:
            raise ConfigError(f"unroll={unroll!r} must be an integer >= 1")

    def check_data(self, *, batch_size: int, unroll: int) -> None:
        """DataError where a split cannot be batched with these settings; a study calls it
        before it starts (tasks whose every setting works keep this no-op)."""
        return None

    @abstractmethod
    def batches(
        self, split: str, *, batch_size: int, unroll: int, seed: int = 0
    ) -> Iterator[Batch]:
        """Train: endless stream from ``seed``; valid/test: finite, independent of ``seed``."""

    @abstractmethod
    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Scalar training loss over the masked positions of ``output`` ``[T, B, O]``."""

    @abstractmethod
    def batch_stats(self, output: torch.Tensor, batch: Batch) -> dict[str, float]:
        """Additive sums from one batch; :meth:`summarize` turns their totals into metrics."""

    @abstractmethod
    def summarize(self, stats: dict[str, float]) -> dict[str, float]:
        """Metrics from summed :meth:`batch_stats`; always contains ``self.metric``."""

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """Sizes, vocabulary, metric, direction, options and split sizes, JSON-serialisable."""

    @abstractmethod
    def sample(self, n: int, seed: int = 0, split: str = "train") -> list[dict[str, Any]]:
        """``n`` readable instances: dicts with ``text`` and ``scored`` (see the task docs)."""

    def _base_info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "input_kind": self.input_kind,
            "input_size": self.input_size,
            "output_size": self.output_size,
            "metric": self.metric,
            "direction": self.direction,
            "stateful": self.stateful,
            "options": dict(self.options),
        }

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({opts})"


# --- character-level generated tasks -------------------------------------------------------

PAD, START, END = "<pad>", "<s>", "."
#: The fixed character vocabulary shared by every generated task: padding, start symbol, end
#: marker, digits, lowercase letters, then the symbols the generators write.
VOCAB: tuple[str, ...] = (
    PAD, START, END, *"0123456789", *"abcdefghijklmnopqrstuvwxyz", "+", "-", "=", "<", ">", "/",
)
INDEX = {s: i for i, s in enumerate(VOCAB)}
PAD_ID, START_ID = INDEX[PAD], INDEX[START]


def encode(text: str) -> list[int]:
    return [INDEX[c] for c in text]


@dataclass(frozen=True)
class Instance:
    """One generated example: ``text`` (ends with the end marker), the positions of ``text``
    whose prediction counts, ``key`` (what identifies the problem for the held-out partition)
    and optional extra position sets (e.g. ``closing``)."""

    text: str
    scored: tuple[int, ...]
    key: str
    extra: dict[str, tuple[int, ...]] = field(default_factory=dict)


def cross_entropy_loss(output: torch.Tensor, batch: Batch) -> torch.Tensor:
    mask = batch.mask.to(output.device)
    logits = output[mask]
    targets = batch.targets.to(output.device)[mask]
    return F.cross_entropy(logits.float(), targets)


def correct_positions(output: torch.Tensor, batch: Batch) -> torch.Tensor:
    """``[T, B]`` bool: argmax equals the target (regardless of the mask)."""
    return output.argmax(dim=-1) == batch.targets.to(output.device)


def make_rng_factory(*parts: Any) -> Callable[..., Any]:
    """Seed material for ``random.Random``: a string seed is hashed with SHA-512 by Python, so
    instances do not depend on PYTHONHASHSEED, the platform or the Python version."""
    prefix = "|".join(str(p) for p in parts)

    def material(*more: Any) -> str:
        return prefix + "|" + "|".join(str(m) for m in more)

    return material
