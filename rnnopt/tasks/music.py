"""Polyphonic music (Boulanger-Lewandowski et al. 2012): Nottingham, Piano-midi.de, MuseData,
JSB Chorales, as the JSON files described in the data directory's SOURCES.md.

Encoding: each step is 88 binary notes (MIDI 21..108 -> 0..87). The model reads step t-1 and
predicts step t as 88 independent Bernoulli outputs; the input before a piece's first step is
all zeros, so every step of every piece is predicted and scored. Loss and metric: the binary
cross-entropy summed over the 88 notes, averaged over scored steps (``nll``, minimize); also
``frame_accuracy`` = TP / (TP + FP + FN) at threshold 0.5 (Bay et al. 2009).

Batching: ``B`` pieces in parallel, one per column, padded to the longest piece of the group
(padding is masked out), then cut into windows of ``unroll`` steps::

    group of B pieces, L = longest    [L, B, 88]
    windows                           rows 0..u-1 (reset=True), u..2u-1 (reset=False), ...

The state is carried from window to window within a group (``stateful``); ``reset`` is True on
a group's first window. Training reshuffles the pieces every epoch (``seed`` and epoch number)
and repeats forever; validation/test use the file order once. The last group of a pass may
hold fewer than ``B`` pieces.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from rnnopt.errors import DataError
from rnnopt.tasks._base import SPLITS, Batch, Option, Task
from rnnopt.tasks._data import cached, require_file
from rnnopt.tasks._registry import register

LOW, HIGH = 21, 108
NOTES = HIGH - LOW + 1  # 88


def parse_music(path: Path) -> dict[str, list[torch.Tensor]]:
    """``{split: [bool tensor [T, 88] per piece]}``; DataError naming the file and position."""
    raw = path.read_bytes()
    try:
        doc = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 JSON (byte offset {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: line {exc.lineno}, column {exc.colno}: invalid JSON "
                        f"({exc.msg})") from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply to read; allowed: an object whose "
                        "train, valid and test are lists of pieces, each a list of steps, each "
                        "a list of MIDI note numbers") from None
    if not isinstance(doc, dict) or any(s not in doc for s in SPLITS):
        raise DataError(f"{path}: expected an object with keys train, valid, test")
    out: dict[str, list[torch.Tensor]] = {}
    for split in SPLITS:
        pieces = doc[split]
        if not isinstance(pieces, list) or not pieces:
            raise DataError(f"{path}: {split}: expected a non-empty list of pieces")
        steps, notes, lengths = [], [], []
        offset = 0
        for p, piece in enumerate(pieces):
            if not isinstance(piece, list) or not piece:
                raise DataError(f"{path}: {split} piece {p}: expected a non-empty list of steps")
            t, n = _piece_notes(path, split, p, piece)
            steps.append(t + offset)
            notes.append(n)
            lengths.append(len(piece))
            offset += len(piece)
        # one [steps, 88] roll per split; the pieces are views into it
        roll = torch.zeros((offset, NOTES), dtype=torch.bool)
        roll[torch.cat(steps), torch.cat(notes)] = True
        out[split] = list(torch.split(roll, lengths))
    return out


def _piece_notes(path: Path, split: str, p: int, piece: list[Any]
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(step, note - 21) index pairs of one piece (a list of steps, each of MIDI numbers)."""
    try:
        steps = torch.tensor([t for t, step in enumerate(piece) for _ in step], dtype=torch.long)
        notes = torch.tensor([n for step in piece for n in step], dtype=torch.long)
        ok = notes.dtype == torch.long and bool(((notes >= LOW) & (notes <= HIGH)).all())
        ok = ok and all(type(n) is int for step in piece for n in step)
    except (TypeError, ValueError, RuntimeError, OverflowError):
        ok = False
    if not ok:  # find the first bad value for the message
        for t, step in enumerate(piece):
            if not isinstance(step, list):
                raise DataError(f"{path}: {split} piece {p} step {t}: expected a list of "
                                f"MIDI note numbers, got {step!r}")
            for note in step:
                if type(note) is not int or not LOW <= note <= HIGH:
                    raise DataError(f"{path}: {split} piece {p} step {t}: note {note!r} "
                                    f"outside the piano range {LOW}-{HIGH}")
        raise DataError(f"{path}: {split} piece {p}: steps are not lists of MIDI numbers")
    return steps, notes - LOW


class MusicTask(Task):
    """One of the four piano-roll data sets; subclasses set ``name`` and ``filename``."""

    filename: ClassVar[str] = ""
    input_kind: ClassVar[str] = "multihot"
    metric: ClassVar[str] = "nll"
    direction: ClassVar[str] = "minimize"
    stateful: ClassVar[bool] = True
    options_spec: ClassVar[tuple[Option, ...]] = ()
    input_size = NOTES
    output_size = NOTES

    def __init__(self, *, data_dir: str | Path | None = None, **options: Any) -> None:
        super().__init__(data_dir=data_dir, **options)
        path = require_file(data_dir, f"music/{self.filename}")
        self.pieces: dict[str, list[torch.Tensor]] = cached(
            f"music-{self.name}", [path], lambda: parse_music(path)
        )

    def batches(
        self, split: str, *, batch_size: int, unroll: int, seed: int = 0
    ) -> Iterator[Batch]:
        self.check_split(split)
        self.check_batching(batch_size, unroll)
        if split != "train":
            return self._pass(list(range(len(self.pieces[split]))), split, batch_size, unroll)
        return self._train(batch_size, unroll, seed)

    def _train(self, batch_size: int, unroll: int, seed: int) -> Iterator[Batch]:
        epoch = 0
        while True:
            order = list(range(len(self.pieces["train"])))
            random.Random(f"{self.name}|train|{seed}|{epoch}").shuffle(order)
            yield from self._pass(order, "train", batch_size, unroll)
            epoch += 1

    def _pass(self, order: list[int], split: str, batch_size: int, unroll: int
              ) -> Iterator[Batch]:
        for g in range(0, len(order), batch_size):
            group = [self.pieces[split][i] for i in order[g : g + batch_size]]
            length = max(r.size(0) for r in group)
            targets = torch.zeros((length, len(group), NOTES), dtype=torch.float32)
            mask = torch.zeros((length, len(group)), dtype=torch.bool)
            for b, roll in enumerate(group):
                targets[: roll.size(0), b] = roll.float()
                mask[: roll.size(0), b] = True
            inputs = torch.cat([torch.zeros_like(targets[:1]), targets[:-1]])
            for s in range(0, length, unroll):
                m = mask[s : s + unroll]
                yield Batch(inputs[s : s + unroll], targets[s : s + unroll], m,
                            reset=s == 0, tokens=int(m.sum()))

    def _step_nll(self, output: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        mask = batch.mask.to(output.device)
        bce = F.binary_cross_entropy_with_logits(
            output.float(), batch.targets.to(output.device), reduction="none"
        ).sum(-1)  # [T, B]
        return (bce * mask).sum(), mask.sum()

    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        total, steps = self._step_nll(output, batch)
        return total / steps.clamp(min=1)

    def batch_stats(self, output: torch.Tensor, batch: Batch) -> dict[str, float]:
        total, steps = self._step_nll(output, batch)
        mask = batch.mask.to(output.device).unsqueeze(-1)
        pred = (output > 0) & mask
        truth = (batch.targets.to(output.device) > 0.5) & mask
        return {
            "nll": float(total),
            "steps": float(steps),
            "tp": float((pred & truth).sum()),
            "fp": float((pred & ~truth).sum()),
            "fn": float((~pred & truth).sum()),
        }

    def summarize(self, stats: dict[str, float]) -> dict[str, float]:
        steps = stats.get("steps", 0.0)
        hits = stats.get("tp", 0.0) + stats.get("fp", 0.0) + stats.get("fn", 0.0)
        return {
            "nll": stats["nll"] / steps if steps else float("nan"),
            "frame_accuracy": stats["tp"] / hits if hits else float("nan"),
        }

    def info(self) -> dict[str, Any]:
        info = self._base_info()
        info["encoding"] = f"88 binary notes per step, MIDI {LOW}..{HIGH} -> 0..87"
        info["splits"] = {
            s: {"pieces": len(self.pieces[s]), "steps": sum(r.size(0) for r in self.pieces[s])}
            for s in SPLITS
        }
        notes = torch.cat(self.pieces["train"]).any(0).nonzero().flatten()
        info["train_note_range"] = [int(notes.min()) + LOW, int(notes.max()) + LOW]
        info["data_file"] = f"music/{self.filename}"
        return info

    def sample(self, n: int, seed: int = 0, split: str = "train") -> list[dict[str, Any]]:
        """``n`` random pieces of ``split``. ``text``: steps separated by ``|``, each the MIDI
        numbers of its notes joined by ``,`` (``-`` for a rest); ``scored``: the character
        position where each step starts (every step is predicted)."""
        self.check_split(split)
        pieces = self.pieces[split]
        picks = random.Random(f"{self.name}|{split}|{seed}").sample(range(len(pieces)),
                                                                   min(n, len(pieces)))
        rows = []
        for p in picks:
            steps = [",".join(str(int(i) + LOW) for i in row.nonzero().flatten()) or "-"
                     for row in pieces[p]]
            starts, pos = [], 0
            for s in steps:
                starts.append(pos)
                pos += len(s) + 1
            rows.append({"text": "|".join(steps), "scored": starts, "piece": p,
                         "steps": len(steps)})
        return rows


def _music(name: str, filename: str, title: str) -> type[MusicTask]:
    cls = type(f"Music_{filename.split('.')[0]}", (MusicTask,), {
        "name": name, "filename": filename,
        "description": f"{title} polyphonic music, 88 notes; NLL per time step",
    })
    return register(cls)


Nottingham = _music("nottingham", "nottingham.json", "Nottingham")
PianoMidi = _music("piano-midi", "piano_midi_de.json", "Piano-midi.de")
MuseData = _music("musedata", "musedata.json", "MuseData")
JSBChorales = _music("jsb", "jsb_chorales.json", "JSB Chorales")

__all__ = ["JSBChorales", "MuseData", "MusicTask", "Nottingham", "PianoMidi"]
