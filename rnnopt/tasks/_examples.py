"""``ExampleTask``: a task written as a reader of examples (the smallest task contract).

A subclass sets ``name``, ``description``, ``input_kind``, ``input_size``, ``output_size`` and
``metric``, and implements ``examples(split)``; batching, padding, masking, loss, metrics,
``info`` and ``sample`` come from here. Every example is ``(inputs, targets)`` or
``(inputs, targets, scored)`` of one sequence of ``T`` steps:

    inputs   tokens:   T ints in [0, input_size)     real (or multihot): T x input_size floats
                                                     (T floats when input_size is 1)
    targets  accuracy / nll / perplexity: T class ids in [0, output_size)
             mse / mae:                   T x output_size floats (T when output_size is 1)
    scored   the step indices whose prediction counts (default: every step)

Batching (as for the music sets): ``B`` examples side by side, padded to the longest of them
(padding is masked out), cut into windows of ``unroll`` steps; the state is carried from window
to window of one group (``stateful``), ``reset`` on a group's first window. Training reshuffles
the examples every epoch (``seed`` and epoch) and repeats forever; valid/test keep their order
and are read once.
"""

from __future__ import annotations

import math
import random
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from rnnopt.errors import ConfigError, DataError
from rnnopt.tasks._base import SPLITS, Batch, Task

CLASS_METRICS = {"accuracy": "maximize", "nll": "minimize", "perplexity": "minimize"}
VALUE_METRICS = {"mse": "minimize", "mae": "minimize"}
INPUT_KINDS = ("tokens", "real", "multihot")


class ExampleTask(Task):
    """A task from ``examples(split)``; see the module docstring for the example layout.

    ``metric`` chooses the output kind and the loss: ``accuracy``, ``nll`` or ``perplexity``
    (class targets, cross-entropy; all three are reported) or ``mse`` or ``mae`` (real-valued
    targets, mean squared error; both are reported). ``direction`` follows from it.
    """

    stateful: ClassVar[bool] = True
    input_size: int = 0
    output_size: int = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        metric = cls.__dict__.get("metric")
        if metric is not None:
            directions = {**CLASS_METRICS, **VALUE_METRICS}
            if metric not in directions:
                raise ConfigError(
                    f"task class {cls.__qualname__}: metric {metric!r}; allowed: "
                    f"{', '.join(directions)}"
                )
            cls.direction = directions[metric]

    def __init__(self, *, data_dir: str | Path | None = None, **options: Any) -> None:
        super().__init__(data_dir=data_dir, **options)
        if self.input_kind not in INPUT_KINDS:
            raise ConfigError(
                f"task {self.name!r}: input_kind {self.input_kind!r}; allowed: "
                f"{', '.join(INPUT_KINDS)}"
            )
        for attr in ("input_size", "output_size"):
            value = getattr(self, attr)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"task {self.name!r}: {attr}={value!r} must be an integer >= 1")
        self._classes = self.metric in CLASS_METRICS
        self._cache: dict[str, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = {}

    @abstractmethod
    def examples(self, split: str) -> Sequence[tuple[Any, ...]]:
        """The examples of ``split`` (train, valid or test): ``(inputs, targets[, scored])``.

        Valid and test must not depend on anything but the task's options; the same call must
        give the same examples (the training order is shuffled here, from the seed)."""

    # --- reading and checking the examples -----------------------------------------------

    def _split(self, split: str) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        self.check_split(split)
        if split not in self._cache:
            raw = self.examples(split)
            try:
                items = list(raw)
            except TypeError:
                raise DataError(
                    f"{self.name}: examples({split!r}) returned {type(raw).__name__}, not a "
                    "sequence of (inputs, targets[, scored])"
                ) from None
            if not items:
                raise DataError(f"{self.name}: the {split} split has no examples")
            self._cache[split] = [self._tensors(split, i, ex) for i, ex in enumerate(items)]
        return self._cache[split]

    def _tensors(
        self, split: str, index: int, example: Any
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        where = f"{self.name} {split} example {index}"
        if not isinstance(example, tuple | list) or len(example) not in (2, 3):
            raise DataError(f"{where}: expected (inputs, targets) or (inputs, targets, scored)")
        try:
            if self.input_kind == "tokens":  # real and multihot: float vectors
                inputs = torch.as_tensor(example[0], dtype=torch.long)
            else:
                inputs = torch.as_tensor(example[0], dtype=torch.float32)
            kind = torch.long if self._classes else torch.float32
            targets = torch.as_tensor(example[1], dtype=kind)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise DataError(f"{where}: inputs and targets must be numbers ({exc})") from None
        if self.input_kind != "tokens" and inputs.dim() == 1 and self.input_size == 1:
            inputs = inputs.unsqueeze(-1)
        if not self._classes and targets.dim() == 1 and self.output_size == 1:
            targets = targets.unsqueeze(-1)
        steps = inputs.size(0) if inputs.dim() else 0
        if steps == 0:
            raise DataError(f"{where}: empty sequence")
        want_in = (steps,) if self.input_kind == "tokens" else (steps, self.input_size)
        want_out = (steps,) if self._classes else (steps, self.output_size)
        if tuple(inputs.shape) != want_in:
            raise DataError(f"{where}: inputs have shape {tuple(inputs.shape)}, expected {want_in}")
        if tuple(targets.shape) != want_out:
            raise DataError(
                f"{where}: targets have shape {tuple(targets.shape)}, expected {want_out}"
            )
        for label, t, size in (("inputs", inputs, self.input_size),
                               ("targets", targets, self.output_size)):
            if t.dtype == torch.long:
                bad = ((t < 0) | (t >= size)).nonzero()
                if bad.numel():
                    step = int(bad[0][0])
                    raise DataError(f"{where}: {label} step {step}: {int(t[step])} is outside "
                                    f"[0, {size})")
            elif not bool(torch.isfinite(t).all()):
                step = int((~torch.isfinite(t)).nonzero()[0][0])
                raise DataError(f"{where}: {label} step {step}: not a finite number")
        mask = torch.ones(steps, dtype=torch.bool)
        if len(example) == 3:
            mask = torch.zeros(steps, dtype=torch.bool)
            try:
                scored = [int(s) for s in example[2]]
            except (TypeError, ValueError):
                raise DataError(f"{where}: scored must be a list of step indices") from None
            if any(not 0 <= s < steps for s in scored) or not scored:
                raise DataError(f"{where}: scored {scored!r} must be step indices in [0, {steps})")
            mask[scored] = True
        return inputs, targets, mask

    def check_data(self, *, batch_size: int, unroll: int) -> None:
        """Read and check every split's examples now (before a study starts)."""
        self.check_batching(batch_size, unroll)
        for split in SPLITS:
            self._split(split)

    # --- batches --------------------------------------------------------------------------

    def batches(
        self, split: str, *, batch_size: int, unroll: int, seed: int = 0
    ) -> Iterator[Batch]:
        self.check_batching(batch_size, unroll)
        items = self._split(split)
        if split != "train":
            return self._pass(items, list(range(len(items))), batch_size, unroll)
        return self._train(items, batch_size, unroll, seed)

    def _train(self, items: list[Any], batch_size: int, unroll: int, seed: int
               ) -> Iterator[Batch]:
        epoch = 0
        while True:
            order = list(range(len(items)))
            random.Random(f"{self.name}|train|{seed}|{epoch}").shuffle(order)
            yield from self._pass(items, order, batch_size, unroll)
            epoch += 1

    @staticmethod
    def _pass(items: list[Any], order: list[int], batch_size: int, unroll: int
              ) -> Iterator[Batch]:
        for g in range(0, len(order), batch_size):
            group = [items[i] for i in order[g : g + batch_size]]
            length = max(x.size(0) for x, _, _ in group)
            inputs = torch.zeros((length, len(group), *group[0][0].shape[1:]),
                                 dtype=group[0][0].dtype)
            targets = torch.zeros((length, len(group), *group[0][1].shape[1:]),
                                  dtype=group[0][1].dtype)
            mask = torch.zeros((length, len(group)), dtype=torch.bool)
            for b, (x, y, m) in enumerate(group):
                inputs[: x.size(0), b] = x
                targets[: y.size(0), b] = y
                mask[: m.size(0), b] = m
            for s in range(0, length, unroll):
                m = mask[s : s + unroll]
                yield Batch(inputs[s : s + unroll], targets[s : s + unroll], m,
                            reset=s == 0, tokens=int(m.sum()))

    # --- loss and metrics -----------------------------------------------------------------

    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        mask = batch.mask.to(output.device)
        targets = batch.targets.to(output.device)[mask]
        if self._classes:
            return F.cross_entropy(output[mask].float(), targets)
        return F.mse_loss(output[mask].float(), targets)

    def batch_stats(self, output: torch.Tensor, batch: Batch) -> dict[str, float]:
        mask = batch.mask.to(output.device)
        out = output[mask].float()
        targets = batch.targets.to(output.device)[mask]
        if self._classes:
            return {
                "nll": float(F.cross_entropy(out, targets, reduction="sum")),
                "correct": float((out.argmax(-1) == targets).sum()),
                "count": float(mask.sum()),
            }
        diff = out - targets
        return {
            "se": float((diff**2).sum()),
            "ae": float(diff.abs().sum()),
            "count": float(diff.numel()),
        }

    def summarize(self, stats: dict[str, float]) -> dict[str, float]:
        count = stats.get("count", 0.0)
        if self._classes:
            if not count:
                return dict.fromkeys(CLASS_METRICS, float("nan"))
            nll = stats["nll"] / count
            return {
                "accuracy": stats["correct"] / count,
                "nll": nll,
                "perplexity": math.exp(nll) if nll < 700 else float("inf"),
            }
        if not count:
            return dict.fromkeys(VALUE_METRICS, float("nan"))
        return {"mse": stats["se"] / count, "mae": stats["ae"] / count}

    # --- looking at the data --------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        info = self._base_info()
        info["splits"] = {
            s: {"examples": len(items), "steps": sum(x.size(0) for x, _, _ in items),
                "scored": sum(int(m.sum()) for _, _, m in items)}
            for s in SPLITS for items in [self._split(s)]
        }
        return info

    def sample(self, n: int, seed: int = 0, split: str = "train") -> list[dict[str, Any]]:
        """``n`` random examples of ``split``: ``text`` the inputs step by step (``|``
        between steps), ``scored`` the character position where each scored step starts."""
        items = self._split(split)
        picks = random.Random(f"{self.name}|{split}|{seed}").sample(range(len(items)),
                                                                   min(n, len(items)))
        rows = []
        for p in picks:
            x, _, m = items[p]
            steps = [",".join(f"{v:g}" for v in row.reshape(-1).tolist()) for row in x]
            starts, pos = [], 0
            for s in steps:
                starts.append(pos)
                pos += len(s) + 1
            rows.append({"text": "|".join(steps), "example": p,
                         "scored": [starts[i] for i in m.nonzero().flatten().tolist()]})
        return rows
