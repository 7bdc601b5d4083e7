"""Next-symbol language modelling on one stream of symbol ids per split (ptb, text).

Batching (contiguous, as in Zaremba et al. 2014)::

    stream  s0 s1 s2 ... s(N-1)        ->  [N // B, B]: column b = the b-th slice of the stream
    window  inputs rows i..i+u-1, targets rows i+1..i+u  (u = unroll, the last one shorter)

The hidden state is carried from window to window (``stateful``); ``reset`` is True only on the
first window of a pass. The training stream repeats the training pass forever, in the same
order. Streams may be stored in any integer dtype (a 100 MB corpus as uint8); windows are int64.
Metrics: ``perplexity`` = exp(mean NLL per symbol), ``bpc`` = mean NLL in bits, and next-symbol
``accuracy``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import ClassVar

import torch
import torch.nn.functional as F

from rnnopt.errors import DataError
from rnnopt.tasks._base import SPLITS, Batch, Task, correct_positions


def smallest_int_dtype(vocabulary_size: int) -> torch.dtype:
    """The narrowest torch integer dtype that holds ids ``0 .. vocabulary_size - 1``."""
    if vocabulary_size <= 256:
        return torch.uint8
    if vocabulary_size <= 1 << 15:
        return torch.int16
    return torch.int32


class StreamTask(Task):
    """A stateful token task whose subclasses provide ``stream(split)`` (a 1-D id tensor)."""

    input_kind: ClassVar[str] = "tokens"
    stateful: ClassVar[bool] = True
    unit: ClassVar[str] = "symbol"  # what one id is, for messages ("word", "character")

    def stream(self, split: str) -> torch.Tensor:
        raise NotImplementedError

    def check_data(self, *, batch_size: int, unroll: int) -> None:
        for split in SPLITS:
            self._rows(split, batch_size)

    def _rows(self, split: str, batch_size: int) -> int:
        stream = self.stream(split)
        rows = stream.numel() // batch_size
        if rows < 2:
            raise DataError(f"{self.name} {split}: {stream.numel()} {self.unit}s are too few "
                            f"for batch_size={batch_size}")
        return rows

    def batches(
        self, split: str, *, batch_size: int, unroll: int, seed: int = 0
    ) -> Iterator[Batch]:
        self.check_split(split)
        self.check_batching(batch_size, unroll)
        stream = self.stream(split)
        rows = self._rows(split, batch_size)
        grid = stream[: rows * batch_size].view(batch_size, rows).t().contiguous()  # [rows, B]
        return self._windows(grid, unroll, forever=split == "train")

    @staticmethod
    def _windows(grid: torch.Tensor, unroll: int, forever: bool) -> Iterator[Batch]:
        while True:
            for i in range(0, grid.size(0) - 1, unroll):
                n = min(unroll, grid.size(0) - 1 - i)
                inputs, targets = grid[i : i + n].long(), grid[i + 1 : i + 1 + n].long()
                mask = torch.ones_like(inputs, dtype=torch.bool)
                yield Batch(inputs, targets, mask, reset=i == 0, tokens=inputs.numel())
            if not forever:
                return

    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        mask = batch.mask.to(output.device)
        return F.cross_entropy(output[mask].float(), batch.targets.to(output.device)[mask])

    def batch_stats(self, output: torch.Tensor, batch: Batch) -> dict[str, float]:
        mask = batch.mask.to(output.device)
        targets = batch.targets.to(output.device)
        if bool(mask.all()):  # every window but a stream's last: no copy of the logits
            nll = F.cross_entropy(output.flatten(0, -2).float(), targets.flatten(), reduction="sum")
        else:
            nll = F.cross_entropy(output[mask].float(), targets[mask], reduction="sum")
        return {
            "nll": float(nll),
            "correct": float((correct_positions(output, batch) & mask).sum()),
            "count": float(mask.sum()),
        }

    def summarize(self, stats: dict[str, float]) -> dict[str, float]:
        count = stats.get("count", 0.0)
        if not count:
            return {"perplexity": float("nan"), "accuracy": float("nan")}
        mean = stats["nll"] / count
        return {
            "perplexity": math.exp(mean) if mean < 700 else float("inf"),
            "accuracy": stats["correct"] / count,
        }
