"""Penn Treebank word-level language modelling (Mikolov's files, the Zaremba et al. 2014 setup).

Files: ``<data>/ptb/ptb.{train,valid,test}.txt``; every line's whitespace-separated words
followed by ``<eos>``. Vocabulary: the training words, ordered by frequency (descending), ties
alphabetically, so id 0 is the most frequent word; validation/test words missing from it map to
``<unk>``. Batching and metrics: ``rnnopt.tasks._stream`` (contiguous windows, state carried,
as in Zaremba et al.; ``seed`` does not change PTB batches: the standard setup does not shuffle).
Metrics: ``perplexity`` = exp(mean NLL per word) (primary, minimize) and next-word ``accuracy``.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import torch

from rnnopt.errors import DataError
from rnnopt.tasks import _files
from rnnopt.tasks._base import SPLITS, Option
from rnnopt.tasks._data import cached, require_file
from rnnopt.tasks._registry import register
from rnnopt.tasks._stream import StreamTask

log = logging.getLogger(__name__)

EOS, UNK = "<eos>", "<unk>"


def read_lines(path: Path) -> list[list[str]]:
    """Words of every line of ``path``; DataError naming the line on bad bytes or binary junk."""
    return [line.split() for line in _files.read_lines(
        path, "one sentence of words per line")]


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
class PennTreebank(StreamTask):
    name: ClassVar[str] = "ptb"
    description: ClassVar[str] = "Penn Treebank word-level language model (10k words, <eos>)"
    metric: ClassVar[str] = "perplexity"
    direction: ClassVar[str] = "minimize"
    unit: ClassVar[str] = "word"
    options_spec: ClassVar[tuple[Option, ...]] = ()

    def __init__(self, *, data_dir: str | Path | None = None, **options: Any) -> None:
        super().__init__(data_dir=data_dir, **options)
        paths = {s: require_file(data_dir, f"ptb/ptb.{s}.txt") for s in SPLITS}
        self.data = cached("ptb", [paths[s] for s in SPLITS], lambda: _parse(paths))
        self.vocab: list[str] = self.data["vocab"]
        self.input_size = self.output_size = len(self.vocab)

    def stream(self, split: str) -> torch.Tensor:
        return self.data[split]

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
