"""``text``: next-symbol language modelling on the user's own UTF-8 text files.

Files (task options): ``data`` alone is split by lines, in order: the first 80% of the lines
train, the next 10% validate, the last 10% test (``floor(lines * 0.1)`` each); or ``data`` is
the training file and ``valid`` and ``test`` name the held-out files. Every line ends with a
line-end symbol: ``"\\n"`` at character level, ``<eos>`` at word level (words are separated by
whitespace). Line ends may be LF or CRLF; bytes that are not UTF-8 and control characters other
than tab are errors naming the file, line and column.

Vocabulary (from the training split only): every training symbol seen at least ``min_count``
times, most frequent first (ties in code-point order), at most ``max_vocab`` symbols
(0: no cap) counting the unknown symbol. ``unk`` (default ``<unk>``) is the unknown symbol:
it is always in the vocabulary, and training symbols left out and held-out symbols never seen
in training are read as it. ``unk=""`` turns that off: then a vocabulary over the cap, a symbol
under ``min_count`` or an unseen held-out symbol is an error naming it.

Batches, state and metrics as ptb (``rnnopt.tasks._stream``): the primary metric is ``bpc``
(bits per character, mean NLL / ln 2) at character level and ``perplexity`` at word level, both
minimised; ``accuracy`` is next-symbol accuracy. The encoded splits are cached on disk
(``rnnopt.tasks._data``), keyed by the files' bytes and these options.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from rnnopt.errors import DataError
from rnnopt.tasks import _files
from rnnopt.tasks._base import SPLITS, Option
from rnnopt.tasks._data import cached
from rnnopt.tasks._registry import register
from rnnopt.tasks._stream import StreamTask, smallest_int_dtype

log = logging.getLogger(__name__)

EOS = "<eos>"  # the word-level line end
CODE_POINTS = 0x110000
EXPECTED = "UTF-8 text"


def _blocks(
    paths: dict[str, Path], single: bool
) -> Iterator[tuple[str, Path, int, list[str]]]:
    """(split, file, first line number, lines) blocks of every split, in one pass per file."""
    if not single:
        for split in SPLITS:
            for number, lines in _files.line_blocks(paths[split], EXPECTED):
                yield split, paths[split], number, lines
        return
    path = paths["train"]
    n_train, n_valid, _ = _files.split_counts(_files.count_lines(path))
    bounds = [("train", 1, n_train + 1), ("valid", n_train + 1, n_train + n_valid + 1),
              ("test", n_train + n_valid + 1, math.inf)]
    for number, lines in _files.line_blocks(path, EXPECTED):
        end = number + len(lines)
        for split, lo, hi in bounds:
            first, stop = max(lo, number), min(hi, end)
            if stop > first:
                yield split, path, first, lines[first - number : int(stop - number)]


class _Vocab:
    """Symbol counts of one split at one level (character: code points; word: strings)."""

    def __init__(self, level: str, *, symbols: bool = True) -> None:
        self.level = level
        self.symbols = symbols  # count each symbol (training), or only their number
        self.char_counts = (np.zeros(CODE_POINTS, dtype=np.int64)
                            if level == "char" and symbols else None)
        self.word_counts: Counter[str] = Counter()
        self.n = 0

    @staticmethod
    def code_points(lines: list[str]) -> np.ndarray:
        text = "\n".join(lines) + "\n"
        return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)

    def count(self, lines: list[str]) -> None:
        if self.level == "char":
            cps = self.code_points(lines)
            if self.char_counts is not None:
                self.char_counts += np.bincount(cps, minlength=CODE_POINTS)
            self.n += cps.size
        elif not self.symbols:
            self.n += sum(len(line.split()) + 1 for line in lines)
        else:
            for line in lines:
                words = line.split()
                self.word_counts.update(words)
                self.n += len(words) + 1
            self.word_counts[EOS] += len(lines)

    def counts(self) -> dict[str, int]:
        if self.char_counts is not None:
            seen = np.nonzero(self.char_counts)[0]
            return {chr(c): int(self.char_counts[c]) for c in seen}
        return dict(self.word_counts)


def build_vocabulary(
    counts: dict[str, int], *, min_count: int, max_vocab: int, unk: str, source: Path
) -> list[str]:
    """The documented rule (module docstring); DataError where symbols would be dropped without
    an unknown symbol."""
    ranked = sorted(counts, key=lambda s: (-counts[s], s))
    kept = [s for s in ranked if counts[s] >= min_count and s != unk]
    if unk:
        if max_vocab:
            kept = kept[: max_vocab - 1]
        return [*kept, unk]
    if len(kept) < len(ranked):
        rare = ranked[len(kept)]
        raise DataError(f"{source}: symbol {rare!r} occurs {counts[rare]} times in training, "
                        f"under min_count={min_count}, and unk is off; set unk (e.g. "
                        f"unk=<unk>) or lower min_count")
    if max_vocab and len(kept) > max_vocab:
        raise DataError(f"{source}: the training vocabulary has {len(kept)} symbols, over "
                        f"max_vocab={max_vocab}, and unk is off; set unk (e.g. unk=<unk>) or "
                        f"raise max_vocab")
    return kept


@functools.lru_cache(maxsize=1)
def _char_table(vocab: tuple[str, ...], unk_id: int) -> np.ndarray:
    """Code point -> id (``unk_id`` for code points outside the vocabulary)."""
    table = np.full(CODE_POINTS, unk_id, dtype=np.int32)
    for i, s in enumerate(vocab):
        if len(s) == 1:
            table[ord(s)] = i
    return table


class _Encoder:
    """Ids of one split, written block by block into a tensor of the known final size."""

    def __init__(self, vocab: list[str], level: str, unk: str, size: int) -> None:
        self.out = torch.empty(size, dtype=smallest_int_dtype(len(vocab)))
        self.view = self.out.numpy()
        self.level, self.unk = level, unk
        self.unk_id = vocab.index(unk) if unk else -1
        self.pos = self.lines = self.unknown = 0
        if level == "char":
            self.table = _char_table(tuple(vocab), self.unk_id)
        else:
            self.index = {w: i for i, w in enumerate(vocab)}

    def add(self, path: Path, number: int, lines: list[str]) -> None:
        """Encode ``lines``; DataError on a symbol outside the vocabulary without unk."""
        if self.level == "char":
            ids = self.table[_Vocab.code_points(lines)]
        else:
            get, unk_id = self.index.get, self.unk_id
            ids = np.fromiter(
                (get(w, unk_id) for line in lines for w in [*line.split(), EOS]),
                dtype=np.int64,
            )
        if not self.unk and (ids < 0).any():
            _unseen(path, number, lines, int(np.argmax(ids < 0)), self.level)
        if self.unk:
            self.unknown += int((ids == self.unk_id).sum())
        self.view[self.pos : self.pos + ids.size] = ids
        self.pos += ids.size
        self.lines += len(lines)


def _unseen(path: Path, number: int, lines: list[str], at: int, level: str) -> None:
    for offset, line in enumerate(lines):
        symbols = [*line, "\n"] if level == "char" else [*line.split(), EOS]
        if at < len(symbols):
            raise DataError(f"{path}: line {number + offset}: {symbols[at]!r} is not in the "
                            f"training vocabulary and unk is off; set unk (e.g. unk=<unk>)")
        at -= len(symbols)
    raise AssertionError("unseen symbol not found")


def _parse(paths: dict[str, Path], single: bool, options: dict[str, Any]) -> dict[str, Any]:
    level, unk = options["level"], options["unk"]
    counters = {split: _Vocab(level, symbols=split == "train") for split in SPLITS}
    for split, _, _, lines in _blocks(paths, single):
        counters[split].count(lines)
    for split in SPLITS:
        if counters[split].n == 0:
            where = (f"{paths['train']} has too few lines to split 80/10/10 by lines "
                     f"(at least 10 needed); give valid= and test= files"
                     if single else f"{paths[split]} has no lines")
            raise DataError(f"text: the {split} split is empty: {where}")
    vocab = build_vocabulary(counters["train"].counts(), min_count=options["min_count"],
                             max_vocab=options["max_vocab"], unk=unk, source=paths["train"])
    encoders = {s: _Encoder(vocab, level, unk, counters[s].n) for s in SPLITS}
    del counters
    for split, path, number, lines in _blocks(paths, single):
        encoders[split].add(path, number, lines)
    data: dict[str, Any] = {"vocab": vocab}
    for split, enc in encoders.items():
        if enc.unknown and split != "train":
            log.warning("text %s: %d symbols not in the training vocabulary read as %r",
                        split, enc.unknown, unk)
        data[split] = enc.out
        data[f"{split}_lines"] = enc.lines
        data[f"{split}_unknown"] = enc.unknown
    return data


@register
class Text(StreamTask):
    name: ClassVar[str] = "text"
    description: ClassVar[str] = "your text files: next character or word (option data=FILE)"
    metric: ClassVar[str] = "bpc"
    direction: ClassVar[str] = "minimize"
    options_spec: ClassVar[tuple[Option, ...]] = (
        Option("data", None, str, help="the text file (split 80/10/10 by lines), or the "
               "training file when valid and test are given"),
        Option("valid", None, str, help="validation file (with test)"),
        Option("test", None, str, help="test file (with valid)"),
        Option("level", "char", str, help="symbols: char or word", choices=("char", "word")),
        Option("max_vocab", 0, int, 0, 10_000_000,
               "most symbols in the vocabulary, the unknown symbol included (0: no cap)"),
        Option("min_count", 1, int, 1, None, "fewest training occurrences of a kept symbol"),
        Option("unk", "<unk>", str, help="the unknown symbol; empty: none (then unknown "
               "symbols are errors)"),
    )

    def __init__(self, *, data_dir: str | Path | None = None, **options: Any) -> None:
        super().__init__(data_dir=data_dir, **options)
        o = self.options
        if o["data"] is None:
            raise DataError("text: no data file; give one with --data FILE (task option data)")
        if (o["valid"] is None) != (o["test"] is None):
            raise DataError("text: give both valid and test files, or neither (then data is "
                            "split 80/10/10 by lines)")
        single = o["valid"] is None
        self.files = {"train": _files.user_file(self.name, "data", o["data"])}
        if not single:
            for split in ("valid", "test"):
                self.files[split] = _files.user_file(self.name, split, o[split])
        self.level: str = o["level"]
        self.unit = "character" if self.level == "char" else "word"
        self.metric = "bpc" if self.level == "char" else "perplexity"
        shaping = {k: o[k] for k in ("level", "max_vocab", "min_count", "unk")}
        self.identity = _files.identity(self.files, shaping)
        key = hashlib.sha256(json.dumps([shaping, single], sort_keys=True).encode())
        self.data = cached(f"text-{key.hexdigest()[:16]}", list(self.files.values()),
                           lambda: _parse(self.files, single, shaping))
        self.vocab: list[str] = self.data["vocab"]
        self.input_size = self.output_size = len(self.vocab)

    def stream(self, split: str) -> torch.Tensor:
        return self.data[split]

    def summarize(self, stats: dict[str, float]) -> dict[str, float]:
        out = super().summarize(stats)
        if self.level == "char":
            count = stats.get("count", 0.0)
            out["bpc"] = stats["nll"] / count / math.log(2) if count else float("nan")
        return out

    def info(self) -> dict[str, Any]:
        info = self._base_info()
        info["vocabulary_size"] = len(self.vocab)
        info["vocabulary_order"] = "training frequency, descending; ties in code-point order"
        info["most_frequent"] = [s.encode("unicode_escape").decode("ascii")
                                 for s in self.vocab[:20]]  # "\n", not a line break
        info["splits"] = {
            s: {"symbols": int(self.data[s].numel()), "lines": int(self.data[f"{s}_lines"]),
                "unknown": int(self.data[f"{s}_unknown"])}
            for s in SPLITS
        }
        info["data_files"] = {role: str(p) for role, p in self.files.items()}
        return info

    def sample(self, n: int, seed: int = 0, split: str = "train") -> list[dict[str, Any]]:
        """``n`` random stretches of up to 80 symbols of ``split``; every symbol after the first
        is scored (``scored``: the character offsets where scored symbols start)."""
        self.check_split(split)
        ids = self.data[split]
        rng = random.Random(f"text|{split}|{seed}")
        rows = []
        for _ in range(n):
            start = rng.randrange(max(1, ids.numel() - 80))
            symbols = [self.vocab[i] for i in ids[start : start + 80].long().tolist()]
            sep = "" if self.level == "char" else " "
            starts, pos = [], 0
            for s in symbols:
                starts.append(pos)
                pos += len(s) + len(sep)
            rows.append({"text": sep.join(symbols), "scored": starts[1:], "offset": start})
        return rows
