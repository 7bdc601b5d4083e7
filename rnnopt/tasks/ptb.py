"""Penn Treebank word-level language modelling (Mikolov's files, the Zaremba et al. 2014 setup).

Files: ``<data>/ptb/ptb.{train,valid,test}.txt``; every line's whitespace-separated words
followed by ``<eos>``. Vocabulary: the training words, ordered by frequency (descending), ties
alphabetically, so id 0 is the most frequent word; validation/test words missing from it map to
``<unk>``. Batching (contiguous, as in Zaremba et al.)::

    stream  w0 w1 w2 ... w(N-1)        ->  [N // B, B]: column b = the b-th slice of the stream
    window  inputs rows i..i+u-1, targets rows i+1..i+u  (u = unroll, the last one shorter)

The hidden state is carried from window to window (``stateful``); ``reset`` is True only on the
first window of a pass. The training stream repeats the training pass forever, in the same
order (``seed`` does not change PTB batches: the standard setup does not shuffle).
Metrics: ``perplexity`` = exp(mean NLL per word) (primary, minimize) and next-word ``accuracy``.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from rnnopt.errors import DataError
from rnnopt.tasks._base import SPLITS, Batch, Option, Task, correct_positions
from rnnopt.tasks._data import cached, require_file
from rnnopt.tasks._registry import register

log = logging.getLogger(__name__)

EOS, UNK = "<eos>", "<unk>"


def read_lines(path: Path) -> list[list[str]]:
    """Words of every line of ``path``; DataError naming the line on bad bytes or binary junk."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - raw.rfind(b"\n", 0, exc.start)
        raise DataError(
            f"{path}: line {line}, column {column}: not UTF-8 text (byte "
            f"0x{raw[exc.start]:02x}); expected one sentence of words per line"
        ) from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out = []
    for number, line in enumerate(lines, 1):
        line = line.removesuffix("\r")
        for col, ch in enumerate(line, 1):
            if (ord(ch) < 32 and ch != "\t") or ord(ch) == 127:
                raise DataError(f"{path}: line {number}, column {col}: binary junk "
                                f"(control character {ch!r}); expected plain text")
        out.append(line.split())
    return out


def build_vocab(lines: list[list[str]]) -> list[str]:
    """Training words with ``<eos>``, by frequency (descending) then alphabetically."""
    counts = Counter(w for line in lines for w in line)
    counts[EOS] += len(lines)
    return sorted(counts, key=lambda w: (-counts[w], w))


def _parse(paths: dict[str, Path]) -> dict[str, Any]:
    lines = {split: read_lines(paths[split]) for split in SPLITS}
    vocab = build_vocab(lines["train"])
    index = {w: i for i, w in enumerate(vocab)}
    data: dict[str, Any] = {"vocab": vocab}
    for split in SPLITS:
        ids: list[int] = []
        unknown = 0
        for number, line in enumerate(lines[split], 1):
            for w in [*line, EOS]:
                i = index.get(w)
                if i is None:
                    if UNK not in index:
                        raise DataError(f"{paths[split]}: line {number}: word {w!r} is not in "
                                        f"the training vocabulary, which has no {UNK}")
                    i, unknown = index[UNK], unknown + 1
                ids.append(i)
        if unknown:
            log.warning("%s: %d words not in the training vocabulary mapped to %s",
                        paths[split], unknown, UNK)
        data[split] = torch.tensor(ids, dtype=torch.long)
        data[f"{split}_lines"] = len(lines[split])
    return data


@register
class PennTreebank(Task):
    name: ClassVar[str] = "ptb"
    description: ClassVar[str] = "Penn Treebank word-level language model (10k words, <eos>)"
    input_kind: ClassVar[str] = "tokens"
    metric: ClassVar[str] = "perplexity"
    direction: ClassVar[str] = "minimize"
    stateful: ClassVar[bool] = True
    options_spec: ClassVar[tuple[Option, ...]] = ()

    def __init__(self, *, data_dir: str | Path | None = None, **options: Any) -> None:
        super().__init__(data_dir=data_dir, **options)
        paths = {s: require_file(data_dir, f"ptb/ptb.{s}.txt") for s in SPLITS}
        self.data = cached("ptb", [paths[s] for s in SPLITS], lambda: _parse(paths))
        self.vocab: list[str] = self.data["vocab"]
        self.input_size = self.output_size = len(self.vocab)

    def batches(
        self, split: str, *, batch_size: int, unroll: int, seed: int = 0
    ) -> Iterator[Batch]:
        self.check_split(split)
        self.check_batching(batch_size, unroll)
        stream: torch.Tensor = self.data[split]
        rows = stream.numel() // batch_size
        if rows < 2:
            raise DataError(f"ptb {split}: {stream.numel()} words are too few for "
                            f"batch_size={batch_size}")
        grid = stream[: rows * batch_size].view(batch_size, rows).t().contiguous()  # [rows, B]
        return self._windows(grid, unroll, forever=split == "train")

    @staticmethod
    def _windows(grid: torch.Tensor, unroll: int, forever: bool) -> Iterator[Batch]:
        while True:
            for i in range(0, grid.size(0) - 1, unroll):
                n = min(unroll, grid.size(0) - 1 - i)
                inputs, targets = grid[i : i + n], grid[i + 1 : i + 1 + n]
                mask = torch.ones_like(inputs, dtype=torch.bool)
                yield Batch(inputs, targets, mask, reset=i == 0, tokens=inputs.numel())
            if not forever:
                return

    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        mask = batch.mask.to(output.device)
        return F.cross_entropy(output[mask].float(), batch.targets.to(output.device)[mask])

    def batch_stats(self, output: torch.Tensor, batch: Batch) -> dict[str, float]:
        mask = batch.mask.to(output.device)
        nll = F.cross_entropy(output[mask].float(), batch.targets.to(output.device)[mask],
                              reduction="sum")
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

    def info(self) -> dict[str, Any]:
        info = self._base_info()
        info["vocabulary_size"] = len(self.vocab)
        info["vocabulary_order"] = "training frequency, descending; ties alphabetical"
        info["most_frequent"] = self.vocab[:20]
        info["special"] = [EOS, UNK] if UNK in self.vocab else [EOS]
        info["splits"] = {
            s: {"tokens": int(self.data[s].numel()), "lines": int(self.data[f"{s}_lines"])}
            for s in SPLITS
        }
        info["data_files"] = [f"ptb/ptb.{s}.txt" for s in SPLITS]
        return info

    def sentences(self, split: str) -> list[torch.Tensor]:
        """The ``split`` stream cut after every ``<eos>`` (ids, each ending with ``<eos>``)."""
        ids = self.data[split]
        ends = (ids == self.vocab.index(EOS)).nonzero().flatten() + 1
        lengths = torch.diff(ends, prepend=torch.zeros(1, dtype=torch.long)).tolist()
        return list(torch.split(ids[: int(ends[-1])], lengths))

    def sample(self, n: int, seed: int = 0, split: str = "train") -> list[dict[str, Any]]:
        """``n`` random sentences of ``split``. ``text``: the words joined by spaces, ending in
        ``<eos>``; ``scored``: the character position where each word starts (every word is
        predicted from the ones before it)."""
        self.check_split(split)
        sentences = self.sentences(split)
        picks = random.Random(f"ptb|{split}|{seed}").sample(range(len(sentences)),
                                                            min(n, len(sentences)))
        rows = []
        for line in picks:
            words = [self.vocab[i] for i in sentences[line].tolist()]
            starts, pos = [], 0
            for w in words:
                starts.append(pos)
                pos += len(w) + 1
            rows.append({"text": " ".join(words), "scored": starts, "line": line + 1})
        return rows
