"""Generated character tasks (arith, xml, memorize): instances as pure functions of
(task options, split, seed, index), held-out sets disjoint from training, padded batches.

Instance ``i`` of a split is drawn from
``random.Random("<task>|<options>|<split>|<seed>|<i>|<try>")``.
Validation and test sets are the first ``valid_size`` / ``test_size`` instances of their split
with seed 0 (the trial seed does not change them); the test set skips problems already in the
validation set. A training instance whose key (the problem: for arith the two operands and the
operator, distractors aside) is in either held-out set is redrawn (``<try>`` + 1), so no
training instance ever repeats a held-out problem.

Batching: one instance per batch column, ``T`` = the longest instance in the batch, shorter
ones padded with ``<pad>`` and masked out. Instances are grouped by length so that padding
stays small (XML lengths are heavy-tailed: unsorted batches were ~80% padding): the train stream
draws pools of ``BUCKET_POOL`` batches' worth of consecutive instances, sorts each pool by
length and yields its batches in an order shuffled by the seed; held-out sets are sorted by
length once and their batches put in a fixed shuffled order (so that a prefix of them is a fair
sample of lengths). ``unroll`` is ignored: instances are never cut, since
cutting would separate the scored answer from the question. ``reset`` is True for every batch.
Inputs are ``<s>`` followed by the text without its last character; targets are the text.

With the task option ``stream`` (arith, xml) each batch column instead reads instances back to
back as one text, in windows of ``unroll`` characters with the state carried (docs/tasks.md).
"""

from __future__ import annotations

import itertools
import random
from abc import abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

import torch

from rnnopt.errors import ConfigError
from rnnopt.tasks._base import (
    INDEX,
    PAD_ID,
    START_ID,
    VOCAB,
    Batch,
    Instance,
    Option,
    Task,
    correct_positions,
    cross_entropy_loss,
)

HELDOUT_OPTIONS = (
    Option("valid_size", 1000, int, 1, 100_000, "instances in the validation set"),
    Option("test_size", 1000, int, 1, 100_000, "instances in the test set"),
)
STREAM_OPTION = Option(
    "stream", False, bool, help="each batch column reads instances back to back as one text, "
    "in windows of `unroll` characters with the state carried (truncated BPTT); false: one "
    "instance per column, state reset every batch"
)
_MAX_TRIES = 10_000
BUCKET_POOL = 16  # batches per length-sorted pool of the train stream

_heldout_cache: dict[tuple[str, str], dict[str, list[Instance]]] = {}


class GeneratedTask(Task):
    """Base of the generated character-level tasks (one shared vocabulary, :data:`VOCAB`)."""

    input_kind: ClassVar[str] = "tokens"
    stateful: ClassVar[bool] = False
    input_size = len(VOCAB)
    output_size = len(VOCAB)
    #: stats keys beyond ``correct``/``count`` and the metric each defines: name -> (num, den)
    extra_metrics: ClassVar[dict[str, tuple[str, str]]] = {}

    def __init__(self, **options: Any) -> None:
        options.pop("data_dir", None)  # generated tasks read no files
        super().__init__(**options)
        gen = {k: v for k, v in sorted(self.options.items())
               if k not in ("valid_size", "test_size")}
        gen.pop("stream", None)  # a layout, not a different set of instances
        self._material = f"{self.name}|{gen!r}"
        # with stream=true the state runs on across batches (an instance attribute on purpose)
        self.stateful = bool(self.options.get("stream", False))
        self._heldout_batches: dict[tuple[str, int, int], list[Batch]] = {}
        heldout = self.options["valid_size"] + self.options["test_size"]
        space = self.space_size()
        if space < 10 * heldout:
            raise ConfigError(
                f"{self.name}: these options allow only {space:g} distinct problems, too few "
                f"for {heldout} held-out instances and a disjoint training stream; allowed: "
                f"at least 10 x (valid_size + test_size)"
            )

    # --- what a subclass provides ---------------------------------------------------------

    @abstractmethod
    def generate(self, rng: random.Random) -> Instance:
        """One instance drawn from ``rng``."""

    def space_size(self) -> float:
        """Number of distinct problem keys these options allow (inf when astronomically many)."""
        return float("inf")

    # --- instances ------------------------------------------------------------------------

    def _draw(self, split: str, seed: int, index: int, attempt: int) -> Instance:
        return self.generate(random.Random(f"{self._material}|{split}|{seed}|{index}|{attempt}"))

    def heldout(self) -> dict[str, list[Instance]]:
        """The fixed validation and test sets (cached per process)."""
        cache_key = (self._material, f"{self.options['valid_size']}/{self.options['test_size']}")
        sets = _heldout_cache.get(cache_key)
        if sets is None:
            valid = [self._draw("valid", 0, i, 0) for i in range(self.options["valid_size"])]
            valid_keys = {inst.key for inst in valid}
            test = [self._redraw("test", 0, i, valid_keys)
                    for i in range(self.options["test_size"])]
            sets = {"valid": valid, "test": test}
            _heldout_cache[cache_key] = sets
            self._heldout_keys = valid_keys | {inst.key for inst in test}
        elif not hasattr(self, "_heldout_keys"):
            self._heldout_keys = {inst.key for s in sets.values() for inst in s}
        return sets

    def _redraw(self, split: str, seed: int, index: int, avoid: set[str]) -> Instance:
        for attempt in range(_MAX_TRIES):
            inst = self._draw(split, seed, index, attempt)
            if inst.key not in avoid:
                return inst
        raise ConfigError(f"{self.name}: could not draw a {split} instance outside the held-out "
                          f"sets in {_MAX_TRIES} tries; allow more distinct problems")

    def instance(self, split: str, index: int, seed: int = 0) -> Instance:
        """Instance ``index`` of ``split`` (train: of the stream from ``seed``)."""
        self.check_split(split)
        if split != "train":
            return self.heldout()[split][index]
        self.heldout()
        return self._redraw("train", seed, index, self._heldout_keys)

    # --- batching -------------------------------------------------------------------------

    def collate(self, instances: list[Instance]) -> Batch:
        """Pad ``instances`` into a ``[T, B]`` batch (``T`` = longest text)."""
        T = max(len(inst.text) for inst in instances)
        B = len(instances)
        inputs = torch.full((T, B), PAD_ID, dtype=torch.long)
        targets = torch.full((T, B), PAD_ID, dtype=torch.long)
        mask = torch.zeros((T, B), dtype=torch.bool)
        extra_names = {name for inst in instances for name in inst.extra}
        extra = {name: torch.zeros((T, B), dtype=torch.bool) for name in extra_names}
        for b, inst in enumerate(instances):
            ids = [INDEX[c] for c in inst.text]
            n = len(ids)
            targets[:n, b] = torch.tensor(ids)
            inputs[0, b] = START_ID
            if n > 1:
                inputs[1:n, b] = targets[: n - 1, b]
            mask[list(inst.scored), b] = True
            for name, positions in inst.extra.items():
                extra[name][list(positions), b] = True
        return Batch(inputs, targets, mask, reset=True, tokens=int(mask.sum()), extra=extra)

    def batches(
        self, split: str, *, batch_size: int, unroll: int, seed: int = 0
    ) -> Iterator[Batch]:
        self.check_split(split)
        self.check_batching(batch_size, unroll)
        if split == "train":
            if self.stateful:
                return self._stream_batches(split, batch_size, unroll, seed)
            return self._train_batches(batch_size, seed)
        key = (split, batch_size, unroll if self.stateful else 0)
        if key not in self._heldout_batches:  # evaluated again and again: collate once
            self._heldout_batches[key] = (
                list(self._stream_batches(split, batch_size, unroll, seed))
                if self.stateful
                else self._bucketed_heldout(split, batch_size)
            )
        return iter(self._heldout_batches[key])

    def _bucketed_heldout(self, split: str, batch_size: int) -> list[Batch]:
        data = sorted(self.heldout()[split], key=lambda inst: len(inst.text))
        batches = [self.collate(data[i : i + batch_size]) for i in range(0, len(data), batch_size)]
        # A fixed shuffle of the length buckets, so that the first k batches (an evaluation
        # limited to eval_batches) are a fair sample of lengths, not the shortest instances.
        random.Random(f"{self._material}|{split}|buckets").shuffle(batches)
        return batches

    def _train_batches(self, batch_size: int, seed: int) -> Iterator[Batch]:
        pool_size = batch_size * BUCKET_POOL
        for pool_no in itertools.count():
            start = pool_no * pool_size
            pool = [self.instance("train", start + i, seed) for i in range(pool_size)]
            pool.sort(key=lambda inst: len(inst.text))  # stable: ties keep stream order
            groups = [pool[i : i + batch_size] for i in range(0, pool_size, batch_size)]
            random.Random(f"{self._material}|buckets|{seed}|{pool_no}").shuffle(groups)
            for group in groups:
                yield self.collate(group)

    def _stream_batches(
        self, split: str, batch_size: int, unroll: int, seed: int
    ) -> Iterator[Batch]:
        if split == "train":
            # column b reads training instances b, b + B, b + 2B, ... back to back, forever
            columns: list[Iterator[Instance]] = [
                (self.instance("train", i, seed)
                 for i in itertools.count(b, batch_size))
                for b in range(batch_size)
            ]
        else:
            # held-out sets: B contiguous runs of instances, one per column, read once
            data = self.heldout()[split]
            size = -(-len(data) // batch_size)
            columns = [iter(data[i : i + size]) for i in range(0, len(data), size)]
        return _windows(columns, unroll)

    # --- loss and metrics -----------------------------------------------------------------

    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        return cross_entropy_loss(output, batch)

    def batch_stats(self, output: torch.Tensor, batch: Batch) -> dict[str, float]:
        correct = correct_positions(output, batch)
        mask = batch.mask.to(output.device)
        stats = {
            "correct": float((correct & mask).sum()),
            "count": float(mask.sum()),
        }
        for name, positions in batch.extra.items():
            positions = positions.to(output.device)
            stats[f"{name}_correct"] = float((correct & positions).sum())
            stats[f"{name}_count"] = float(positions.sum())
        if "exact_match" in self.extra_metrics and not self.stateful:
            # an instance counts when every one of its scored positions is right
            right = (correct | ~mask).all(dim=0)
            has_scored = mask.any(dim=0)
            stats["exact"] = float((right & has_scored).sum())
            stats["instances"] = float(has_scored.sum())
        return stats

    def summarize(self, stats: dict[str, float]) -> dict[str, float]:
        out = {"accuracy": _ratio(stats, "correct", "count")}
        for metric, (num, den) in self.extra_metrics.items():
            if metric == "exact_match" and self.stateful:
                continue  # an instance may straddle windows: no per-batch whole-instance test
            out[metric] = _ratio(stats, num, den)
        return out

    # --- inspection -----------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        info = self._base_info()
        info["vocabulary"] = list(VOCAB)
        info["splits"] = {
            "train": "endless stream from the trial seed",
            "valid": f"{self.options['valid_size']} instances (fixed)",
            "test": f"{self.options['test_size']} instances (fixed)",
        }
        info["unroll"] = (
            "windows of `unroll` characters over instances read back to back, state carried"
            if self.stateful
            else "ignored: each batch is as long as its longest instance"
        )
        return info

    def sample(self, n: int, seed: int = 0, split: str = "train") -> list[dict[str, Any]]:
        self.check_split(split)
        if split == "train":
            insts = [self.instance("train", i, seed) for i in range(n)]
        else:
            insts = self.heldout()[split][:n]
        return [self.describe(inst) for inst in insts]

    def describe(self, inst: Instance) -> dict[str, Any]:
        """A JSON-ready view of one instance."""
        row: dict[str, Any] = {"text": inst.text, "scored": list(inst.scored)}
        for name, positions in inst.extra.items():
            row[name] = list(positions)
        return row


class _Column:
    """One batch column of a stream: the characters not yet put in a window."""

    def __init__(self, instances: Iterator[Instance]) -> None:
        self.instances = instances
        self.ids: list[int] = []
        self.scored: list[bool] = []
        self.extra: dict[str, list[bool]] = {}
        self.previous = START_ID
        self.done = False

    def fill(self, n: int) -> None:
        while len(self.ids) < n and not self.done:
            inst = next(self.instances, None)
            if inst is None:
                self.done = True
                return
            start, size = len(self.ids), len(inst.text)
            self.ids.extend(INDEX[c] for c in inst.text)
            scored = [False] * size
            for i in inst.scored:
                scored[i] = True
            self.scored.extend(scored)
            for name in self.extra.keys() | inst.extra.keys():
                flags = self.extra.setdefault(name, [False] * start)
                flags.extend([False] * size)
                for i in inst.extra.get(name, ()):
                    flags[start + i] = True

    def take(self, n: int) -> tuple[list[int], list[int], list[bool], dict[str, list[bool]]]:
        ids = self.ids[:n]
        inputs = [self.previous, *ids[:-1]] if ids else []
        if ids:
            self.previous = ids[-1]
        scored = self.scored[:n]
        extra = {name: flags[:n] for name, flags in self.extra.items()}
        del self.ids[:n], self.scored[:n]
        for flags in self.extra.values():
            del flags[:n]
        return inputs, ids, scored, extra


def _windows(sources: list[Iterator[Instance]], unroll: int) -> Iterator[Batch]:
    """Windows of ``unroll`` characters over columns that read instances back to back."""
    columns = [_Column(source) for source in sources]
    first = True
    while True:
        for column in columns:
            column.fill(unroll)
        T = max(len(column.ids) for column in columns)
        if T == 0:
            return
        T = min(T, unroll)
        B = len(columns)
        inputs = torch.full((T, B), PAD_ID, dtype=torch.long)
        targets = torch.full((T, B), PAD_ID, dtype=torch.long)
        mask = torch.zeros((T, B), dtype=torch.bool)
        extra: dict[str, torch.Tensor] = {}
        for b, column in enumerate(columns):
            ins, ids, scored, flags = column.take(T)
            n = len(ids)
            if not n:
                continue
            inputs[:n, b] = torch.tensor(ins)
            targets[:n, b] = torch.tensor(ids)
            mask[:n, b] = torch.tensor(scored)
            for name, values in flags.items():
                if name not in extra:
                    extra[name] = torch.zeros((T, B), dtype=torch.bool)
                extra[name][:n, b] = torch.tensor(values, dtype=torch.bool)
        yield Batch(inputs, targets, mask, reset=first, tokens=int(mask.sum()), extra=extra)
        first = False


def _ratio(stats: dict[str, float], num: str, den: str) -> float:
    d = stats.get(den, 0.0)
    return stats.get(num, 0.0) / d if d else float("nan")
