"""The training configuration: a small dataclass whose every bad value is a ConfigError."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any

from rnnopt.cells.stack import MAX_LAYERS
from rnnopt.errors import ConfigError

OPTIMIZERS = ("sgd", "adam")
# Validation batches read by each evaluation during training: enough to rank weights, pick the
# best and prune; the whole validation and test splits are read once, at the end of a run.
DEFAULT_EVAL_BATCHES = 20
# "mean": the task's loss, a mean over scored positions. "sum_over_steps": Zaremba et al.
# (2014), the setup the paper cites: the sum over the unrolled steps of the batch-mean loss,
# i.e. the scored positions' summed loss divided by the batch size (docs/tasks.md).
LOSS_REDUCTIONS = ("mean", "sum_over_steps")
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
# Fields that must agree between a checkpoint and the configuration that resumes it.
STRUCTURAL_KEYS = (
    "task", "cell", "cell_options", "task_options", "hidden_size", "param_budget", "layers",
    "dropout", "init_scale", "forget_bias", "optimizer", "batch_size", "unroll", "seed",
)  # fmt: skip


@dataclass
class TrainConfig:
    """Everything one training run needs; see docs/ARCHITECTURE.md for the meaning of each key.

    Exactly one of ``hidden_size`` and ``param_budget`` is set. ``forget_bias`` is passed to the
    cell only when set (LSTM family). ``eval_batches``: the evaluations during training read
    the first N validation batches (``None``: the whole split each time); the run's reported
    validation and test metrics are measured once at the end, with the best weights, on the whole
    splits. ``checkpoint_every`` counts evaluations.
    """

    task: str
    cell: str = "lstm"
    cell_options: dict[str, Any] = field(default_factory=dict)
    task_options: dict[str, Any] = field(default_factory=dict)
    hidden_size: int | None = None
    param_budget: int | None = None
    layers: int = 1
    dropout: float = 0.0
    init_scale: float = 1.0
    forget_bias: float | None = None
    optimizer: str = "sgd"
    lr: float = 1.0
    clip_norm: float = 5.0
    loss_reduction: str = "mean"
    batch_size: int = 20
    unroll: int = 35
    max_steps: int = 2000
    eval_interval: int = 200
    eval_batches: int | None = DEFAULT_EVAL_BATCHES
    lr_decay: float = 0.5
    patience: int = 1
    seed: int = 0
    device: str = "auto"
    bf16: bool = False
    time_limit: float | None = None
    checkpoint_every: int = 1
    data_dir: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build from a plain dict; unknown keys raise ConfigError listing the valid ones."""
        if not isinstance(d, dict):
            raise ConfigError(f"training config must be a dict, got {type(d).__name__}")
        unknown = sorted(set(d) - set(cls.keys()))
        if unknown:
            raise ConfigError(
                f"unknown training config key(s) {', '.join(map(repr, unknown))}; "
                f"valid keys: {', '.join(cls.keys())}"
            )
        if "task" not in d:
            raise ConfigError("training config needs 'task'")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        unknown = sorted(set(changes) - set(self.keys()))
        if unknown:
            raise ConfigError(
                f"unknown training config key(s) {', '.join(map(repr, unknown))}; "
                f"valid keys: {', '.join(self.keys())}"
            )
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        """Raise ConfigError naming the first bad key and value; cheap, no data is loaded."""
        if not isinstance(self.task, str) or not self.task:
            _bad("task", self.task, "a task name")
        if not isinstance(self.cell, str) or not self.cell:
            _bad("cell", self.cell, "a cell name")
        for key in ("cell_options", "task_options"):
            value = getattr(self, key)
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                _bad(key, value, "a dict with string keys")
        if (self.hidden_size is None) == (self.param_budget is None):
            raise ConfigError(
                f"set exactly one of hidden_size and param_budget "
                f"(got hidden_size={self.hidden_size!r}, param_budget={self.param_budget!r})"
            )
        _int("hidden_size", self.hidden_size, 1, none=True)
        _int("param_budget", self.param_budget, 100, none=True)
        _int("layers", self.layers, 1, MAX_LAYERS)
        _float("dropout", self.dropout, 0.0, 1.0, hi_open=True)
        _float("init_scale", self.init_scale, 0.0, None, lo_open=True)
        if self.forget_bias is not None:
            _float("forget_bias", self.forget_bias, None, None)
        if self.optimizer not in OPTIMIZERS:
            _bad("optimizer", self.optimizer, f"one of {', '.join(OPTIMIZERS)}")
        _float("lr", self.lr, 0.0, None, lo_open=True)
        _float("clip_norm", self.clip_norm, 0.0, None, lo_open=True)
        if self.loss_reduction not in LOSS_REDUCTIONS:
            _bad("loss_reduction", self.loss_reduction, f"one of {', '.join(LOSS_REDUCTIONS)}")
        _int("batch_size", self.batch_size, 1)
        _int("unroll", self.unroll, 1)
        _int("max_steps", self.max_steps, 1)
        _int("eval_interval", self.eval_interval, 1)
        _int("eval_batches", self.eval_batches, 1, none=True)
        _float("lr_decay", self.lr_decay, 0.0, 1.0, lo_open=True)
        _int("patience", self.patience, 1)
        _int("seed", self.seed, 0)
        if not isinstance(self.device, str) or not _DEVICE_RE.match(self.device):
            _bad("device", self.device, "auto, cpu, cuda or cuda:N")
        if not isinstance(self.bf16, bool):
            _bad("bf16", self.bf16, "true or false")
        if self.time_limit is not None:
            _float("time_limit", self.time_limit, 0.0, None, lo_open=True)
        _int("checkpoint_every", self.checkpoint_every, 1)
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            _bad("data_dir", self.data_dir, "a directory path")
        if self.bf16 and self.device == "cpu":
            _bad("bf16", self.bf16, "false with device=cpu (bf16 autocast is CUDA only)")


def _bad(key: str, value: object, allowed: str) -> None:
    raise ConfigError(f"bad training config value {key}={value!r}; allowed: {allowed}")


def _int(key: str, value: object, lo: int, hi: int | None = None, *, none: bool = False) -> None:
    if value is None and none:
        return
    span = f"an integer >= {lo}" if hi is None else f"an integer in {lo}..{hi}"
    if isinstance(value, bool) or not isinstance(value, int):
        _bad(key, value, span + (" or null" if none else ""))
    if value < lo or (hi is not None and value > hi):
        _bad(key, value, span)


def _float(
    key: str,
    value: object,
    lo: float | None,
    hi: float | None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> None:
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo:g}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {hi:g}")
    allowed = "a finite number" + (" " + " and ".join(parts) if parts else "")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        _bad(key, value, allowed)
    if lo is not None and (value < lo or (lo_open and value == lo)):
        _bad(key, value, allowed)
    if hi is not None and (value > hi or (hi_open and value == hi)):
        _bad(key, value, allowed)
