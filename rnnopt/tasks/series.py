# Over 450 lines: three file formats, two task kinds and every bad-data check of the
# series task live together so that each error names its file and line in one place.
"""``series``: the user's numeric sequences: next-step regression, or sequence classification.

Files (task options ``data``, optionally ``valid`` and ``test``, all of one format):

- CSV (``.csv``): a header row of column names, then one row per time step, every row with as
  many fields as the header. ``series=COLUMN`` names a column that identifies the series (its
  rows must be consecutive); without it the file is one series. ``label=COLUMN`` names the
  class of each series (constant within it) and makes the task classification. The inputs are
  ``channels`` (comma-separated columns; default every other column whose value on the first
  data row is a number), each a finite number on every row.
- NumPy ``.npy``: ``[T]`` (one series, one channel), ``[T, C]`` (one series) or ``[N, T, C]``
  (N series). Channels are named ``0``, ``1``, ...
- NumPy ``.npz``: the array ``array`` (default ``x``, or the only array) as for ``.npy``;
  ``label=NAME`` names an ``[N]`` array of classes (classification).

Regression (no label): the model reads every channel at step t and predicts the ``target``
channels (comma-separated; default all) at step t+1. Metrics ``mse`` (primary, minimised) and
``mae``, in units of the training standard deviation of each target. Batches are windows of
``unroll`` steps, each from a zero state: training windows start at random positions (from
``seed``), held-out windows tile each series from its start (a tail shorter than ``unroll`` is
not scored); a series shorter than ``unroll + 1`` steps is an error.

Classification (label): each series is one instance, read whole (``unroll`` is not used); the
prediction at its last step is scored. Metric ``accuracy`` (maximised). A label with one class
is an error.

Splits without ``valid``/``test`` files: regression cuts every series in time, the first 80%
of its steps train, the next 10% validate, the last 10% test (``floor(steps * 0.1)`` each);
classification puts series number i (0-based, file order) in valid when i % 10 == 8, in test
when i % 10 == 9, else in train. Every channel is normalised by the mean and standard
deviation of the training split (a constant channel by 1).
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from rnnopt.errors import DataError
from rnnopt.tasks import _files
from rnnopt.tasks._base import SPLITS, Batch, Option, Task, correct_positions
from rnnopt.tasks._data import cached
from rnnopt.tasks._registry import register

ROWS_PER_CHUNK = 1 << 16


def _names(value: str | None) -> list[str] | None:
    return None if value is None else [x.strip() for x in value.split(",") if x.strip()]


class _Table:
    """Series read from one file: ``x`` list of ``[T, C]`` float32, ``keys``, ``labels``."""

    def __init__(self, columns: list[str], x: list[np.ndarray], keys: list[str],
                 labels: list[str] | None) -> None:
        self.columns, self.x, self.keys, self.labels = columns, x, keys, labels


def _read_csv(path: Path, o: dict[str, Any]) -> _Table:
    with path.open("r", encoding="utf-8", newline="") as fh:
        try:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header:
                raise DataError(f"{path}: no header row; expected column names on line 1")
            header = [h.strip() for h in header]
            special = [c for c in (o["series"], o["label"]) if c is not None]
            if o["label"] is not None and o["series"] is None:
                raise DataError(f"{path}: label={o['label']} needs series=COLUMN naming the "
                                "column that groups rows into labelled series")
            for option in ("series", "label"):
                if o[option] is not None and o[option] not in header:
                    raise DataError(f"{path}: unknown {option} column {o[option]!r}; columns: "
                                    f"{', '.join(header)}")
            first = next(reader, None)
            if first is None:
                raise DataError(f"{path}: no data rows after the header")
            channels = _names(o["channels"]) or [
                h for h, v in zip(header, first, strict=False)
                if h not in special and _is_number(v)
            ]
            for c in channels:
                if c not in header:
                    raise DataError(f"{path}: unknown channel column {c!r}; columns: "
                                    f"{', '.join(header)}")
            if not channels:
                raise DataError(f"{path}: no numeric channel columns on line 2; columns: "
                                f"{', '.join(header)}")
            picks = [header.index(c) for c in channels]
            s_col = header.index(o["series"]) if o["series"] is not None else None
            l_col = header.index(o["label"]) if o["label"] is not None else None
            width = len(header)
            out = np.empty((ROWS_PER_CHUNK, len(channels)), dtype=np.float32)
            n = 0
            keys: list[str] = []
            starts: list[int] = []
            labels: list[str] = []
            seen: set[str] = set()
            chunk: list[list[str]] = []
            first_line = 2

            def flush() -> None:
                nonlocal out, n, first_line
                if not chunk:
                    return
                try:
                    values = np.array(chunk, dtype=np.float64)
                except ValueError:
                    values = None
                if values is None or not np.isfinite(values).all():
                    _bad_number(path, chunk, first_line, channels)
                while n + len(chunk) > out.shape[0]:
                    out = np.resize(out, (out.shape[0] * 2, out.shape[1]))
                out[n : n + len(chunk)] = values
                n += len(chunk)
                first_line += len(chunk)
                chunk.clear()

            for row in itertools.chain([first], reader):
                line = reader.line_num if row is not first else 2
                if len(row) != width:
                    if not row:
                        continue  # a blank line
                    raise DataError(f"{path}: line {line} has {len(row)} fields, the header "
                                    f"has {width}; every row needs one value per column")
                if s_col is not None:
                    key = row[s_col]
                    if not keys or key != keys[-1]:
                        if key in seen:
                            raise DataError(f"{path}: line {line}: series {key!r} appears "
                                            "again after another; rows of a series must be "
                                            "consecutive")
                        flush()
                        seen.add(key)
                        keys.append(key)
                        starts.append(n)
                        if l_col is not None:
                            labels.append(row[l_col])
                    elif l_col is not None and row[l_col] != labels[-1]:
                        raise DataError(f"{path}: line {line}: label {row[l_col]!r} differs "
                                        f"from {labels[-1]!r} earlier in series {key!r}; a "
                                        "series has one label")
                if not chunk:
                    first_line = line
                chunk.append([row[i] for i in picks])
                if len(chunk) == ROWS_PER_CHUNK:
                    flush()
            flush()
        except UnicodeDecodeError:
            for _ in _files.line_blocks(path, "a CSV file"):  # raises naming line and column
                pass
            raise AssertionError("UTF-8 error not found again") from None
        except csv.Error as exc:
            raise DataError(f"{path}: line {reader.line_num}: {exc}") from None
    if n == 0:
        raise DataError(f"{path}: no data rows after the header")
    if not keys:
        keys, starts = ["0"], [0]
    bounds = [*starts, n]
    x = [out[a:b].copy() for a, b in itertools.pairwise(bounds)]
    return _Table(channels, x, keys, labels if o["label"] is not None else None)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _bad_number(path: Path, chunk: list[list[str]], first_line: int, channels: list[str]) -> None:
    for offset, row in enumerate(chunk):
        for name, cell in zip(channels, row, strict=True):
            try:
                value = float(cell)
            except ValueError:
                raise DataError(f"{path}: line {first_line + offset}, column {name}: "
                                f"{cell!r} is not a number") from None
            if not np.isfinite(value):
                raise DataError(f"{path}: line {first_line + offset}, column {name}: "
                                f"{cell.strip()} is not a finite number")
    raise AssertionError("no bad value found")


def _read_numpy(path: Path, o: dict[str, Any]) -> _Table:
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a NumPy .npy/.npz file ({exc})") from None
    labels = None
    if isinstance(loaded, np.ndarray):
        if o["label"] is not None:
            raise DataError(f"{path}: label={o['label']} needs a CSV column or an .npz array; "
                            "a .npy file holds one array")
        array, name = loaded, "the array"
    else:
        with loaded:
            names = list(loaded.files)
            want = o["array"] or ("x" if "x" in names or len(names) != 1 else names[0])
            if want not in names:
                raise DataError(f"{path}: no array {want!r}; arrays: {', '.join(names)}")
            array, name = loaded[want], f"array {want!r}"
            if o["label"] is not None:
                if o["label"] not in names:
                    raise DataError(f"{path}: unknown label array {o['label']!r}; arrays: "
                                    f"{', '.join(names)}")
                labels = [str(v) for v in np.asarray(loaded[o["label"]]).reshape(-1).tolist()]
    if array.dtype.kind not in "iuf":
        raise DataError(f"{path}: {name} has dtype {array.dtype}; expected numbers")
    if array.ndim == 1:
        array = array[None, :, None]
    elif array.ndim == 2:
        array = array[None]
    elif array.ndim != 3:
        raise DataError(f"{path}: {name} has shape {array.shape}; expected [T], [T, C] or "
                        "[N, T, C]")
    if array.size == 0:
        raise DataError(f"{path}: {name} is empty (shape {array.shape})")
    bad = ~np.isfinite(array)
    if bad.any():
        i, t, c = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(f"{path}: {name} has a non-finite value ({array[i, t, c]}) at series "
                        f"{i}, step {t}, channel {c}")
    if labels is not None and len(labels) != array.shape[0]:
        raise DataError(f"{path}: label array {o['label']!r} has {len(labels)} entries for "
                        f"{array.shape[0]} series")
    channels = [str(c) for c in range(array.shape[2])]
    picked = _names(o["channels"])
    if picked is not None:
        for c in picked:
            if c not in channels:
                raise DataError(f"{path}: unknown channel {c!r}; channels: "
                                f"{', '.join(channels)}")
        array = array[:, :, [int(c) for c in picked]]
        channels = picked
    x = [np.ascontiguousarray(s, dtype=np.float32) for s in array]
    return _Table(channels, x, [str(i) for i in range(len(x))], labels)


def read_table(path: Path, o: dict[str, Any]) -> _Table:
    """One file's series (see the module docstring); DataError naming file and line."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path, o)
    if suffix in (".npy", ".npz"):
        return _read_numpy(path, o)
    raise DataError(f"{path}: unknown data format {suffix or '(no suffix)'!r}; allowed: "
                    ".csv, .npy, .npz")


def _parse(files: dict[str, Path], o: dict[str, Any]) -> dict[str, Any]:
    tables = {role: read_table(path, o) for role, path in files.items()}
    main = tables["train"]
    for role, t in tables.items():
        if t.columns != main.columns:
            raise DataError(f"{files[role]}: channels {', '.join(t.columns)} differ from the "
                            f"training file's {', '.join(main.columns)}")
    classify = o["label"] is not None
    split: dict[str, tuple[list[np.ndarray], list[str], list[str] | None]] = {}
    if len(files) == 3:
        for s in SPLITS:
            split[s] = (tables[s].x, [f"{files[s].name}:{k}" for k in tables[s].keys],
                        tables[s].labels)
    elif classify:
        for s, rests in (("train", range(8)), ("valid", (8,)), ("test", (9,))):
            idx = [i for i in range(len(main.x)) if i % 10 in rests]
            split[s] = ([main.x[i] for i in idx], [main.keys[i] for i in idx],
                        [main.labels[i] for i in idx])  # type: ignore[index]
    else:
        for s in SPLITS:
            split[s] = ([], [], None)
        for x, key in zip(main.x, main.keys, strict=True):
            n_train, n_valid, _ = _files.split_counts(len(x))
            cuts = {"train": (0, n_train), "valid": (n_train, n_train + n_valid),
                    "test": (n_train + n_valid, len(x))}
            for s, (a, b) in cuts.items():
                if b > a:
                    split[s][0].append(x[a:b])
                    split[s][1].append(key)
    for s in SPLITS:
        if not split[s][0]:
            rule = ("series i with i % 10 == 8 validate, == 9 test: at least 10 series needed"
                    if classify else "each series is cut 80/10/10 in time: at least 10 steps "
                    "needed")
            raise DataError(f"series: the {s} split of {files['train']} is empty ({rule}); "
                            "give valid= and test= files")
    columns = main.columns
    targets = _names(o["target"]) or columns
    for t in targets:
        if t not in columns:
            raise DataError(f"{files['train']}: unknown target column {t!r}; channels: "
                            f"{', '.join(columns)}")
    train_all = np.concatenate(split["train"][0])
    mean = train_all.mean(axis=0, dtype=np.float64)
    std = train_all.std(axis=0, dtype=np.float64)
    std[std == 0] = 1.0
    data: dict[str, Any] = {"columns": columns, "targets": [columns.index(t) for t in targets],
                            "mean": torch.tensor(mean), "std": torch.tensor(std)}
    if classify:
        classes = sorted({c for s in SPLITS for c in split[s][2]})  # type: ignore[union-attr]
        if len({*split["train"][2]}) < 2:  # type: ignore[misc]
            raise DataError(f"{files['train']}: label {o['label']!r} has one class in training "
                            f"({classes[0]!r}); classification needs at least two")
        data["classes"] = classes
    for s in SPLITS:
        xs, keys, labels = split[s]
        data[s] = [torch.from_numpy(((x - mean) / std).astype(np.float32)) for x in xs]
        data[f"{s}_keys"] = keys
        if classify:
            data[f"{s}_labels"] = torch.tensor([data["classes"].index(c) for c in labels])
    return data


@register
class Series(Task):
    name: ClassVar[str] = "series"
    description: ClassVar[str] = ("your numeric series (CSV, .npy, .npz): next-step regression "
                                  "or, with label=, classification")
    input_kind: ClassVar[str] = "real"
    metric: ClassVar[str] = "mse"
    direction: ClassVar[str] = "minimize"
    options_spec: ClassVar[tuple[Option, ...]] = (
        Option("data", None, str, help="the data file (.csv, .npy, .npz), or the training "
               "file when valid and test are given"),
        Option("valid", None, str, help="validation file (with test)"),
        Option("test", None, str, help="test file (with valid)"),
        Option("target", None, str, help="channels predicted at the next step, "
               "comma-separated (default all)"),
        Option("channels", None, str, help="input channels, comma-separated (default: every "
               "column but series and label)"),
        Option("series", None, str, help="CSV column identifying the series"),
        Option("label", None, str, help="CSV column or .npz array of class labels: "
               "classification"),
        Option("array", None, str, help=".npz array of the series (default x)"),
    )

    def __init__(self, *, data_dir: str | Path | None = None, **options: Any) -> None:
        super().__init__(data_dir=data_dir, **options)
        o = self.options
        if o["data"] is None:
            raise DataError("series: no data file; give one with --data FILE (task option data)")
        if (o["valid"] is None) != (o["test"] is None):
            raise DataError("series: give both valid and test files, or neither (then data is "
                            "split as docs/tasks.md says)")
        self.files = {"train": _files.user_file(self.name, "data", o["data"])}
        if o["valid"] is not None:
            for split in ("valid", "test"):
                self.files[split] = _files.user_file(self.name, split, o[split])
        shaping = {k: o[k] for k in ("target", "channels", "series", "label", "array")}
        self.identity = _files.identity(self.files, shaping)
        key = hashlib.sha256(json.dumps([shaping, len(self.files)], sort_keys=True).encode())
        self.data = cached(f"series-{key.hexdigest()[:16]}", list(self.files.values()),
                           lambda: _parse(self.files, shaping))
        self.classify = o["label"] is not None
        self.input_size = len(self.data["columns"])
        if self.classify:
            self.metric, self.direction = "accuracy", "maximize"
            self.output_size = len(self.data["classes"])
        else:
            self.output_size = len(self.data["targets"])

    def check_data(self, *, batch_size: int, unroll: int) -> None:
        """DataError naming the first series of any split shorter than ``unroll + 1`` steps
        (regression windows need that many)."""
        if self.classify:
            return
        for split in SPLITS:
            for x, key in zip(self.data[split], self.data[f"{split}_keys"], strict=True):
                if x.shape[0] < unroll + 1:
                    raise DataError(
                        f"series: series {key!r} of {self.files['train']} has {x.shape[0]} "
                        f"steps in the {split} split, fewer than unroll + 1 = {unroll + 1}; "
                        "lower unroll or give longer series")

    def batches(
        self, split: str, *, batch_size: int, unroll: int, seed: int = 0
    ) -> Iterator[Batch]:
        self.check_split(split)
        self.check_batching(batch_size, unroll)
        if self.classify:
            return self._instances(split, batch_size, seed)
        self.check_data(batch_size=batch_size, unroll=unroll)
        return self._regression_windows(split, batch_size, unroll, seed)

    def _regression_windows(
        self, split: str, batch_size: int, unroll: int, seed: int
    ) -> Iterator[Batch]:
        xs: list[torch.Tensor] = self.data[split]
        targets = self.data["targets"]
        if split == "train":
            counts = torch.tensor([x.shape[0] - unroll for x in xs], dtype=torch.float64)
            gen = torch.Generator().manual_seed(seed)
            while True:
                which = torch.multinomial(counts, batch_size, replacement=True, generator=gen)
                starts = (torch.rand(batch_size, generator=gen, dtype=torch.float64)
                          * counts[which]).long()
                yield self._window_batch([(xs[i], int(s)) for i, s in
                                          zip(which.tolist(), starts.tolist(), strict=True)],
                                         unroll, targets)
        windows = [(x, s) for x in xs for s in range(0, x.shape[0] - unroll, unroll)]
        for i in range(0, len(windows), batch_size):
            yield self._window_batch(windows[i : i + batch_size], unroll, targets)

    @staticmethod
    def _window_batch(
        picks: list[tuple[torch.Tensor, int]], unroll: int, targets: list[int]
    ) -> Batch:
        block = torch.stack([x[s : s + unroll + 1] for x, s in picks], dim=1)  # [u+1, B, C]
        inputs, target = block[:-1], block[1:, :, targets]
        mask = torch.ones(inputs.shape[:2], dtype=torch.bool)
        return Batch(inputs, target, mask, reset=True, tokens=mask.numel())

    def _instances(self, split: str, batch_size: int, seed: int) -> Iterator[Batch]:
        xs: list[torch.Tensor] = self.data[split]
        labels: torch.Tensor = self.data[f"{split}_labels"]
        order = list(range(len(xs)))
        epoch = 0
        while True:
            if split == "train":
                random.Random(f"series|{seed}|{epoch}").shuffle(order)
            for i in range(0, len(order), batch_size):
                group = order[i : i + batch_size]
                length = max(xs[j].shape[0] for j in group)
                inputs = torch.zeros(length, len(group), self.input_size)
                targets = torch.zeros(length, len(group), dtype=torch.long)
                mask = torch.zeros(length, len(group), dtype=torch.bool)
                for b, j in enumerate(group):
                    n = xs[j].shape[0]
                    inputs[:n, b] = xs[j]
                    targets[n - 1, b] = labels[j]
                    mask[n - 1, b] = True
                yield Batch(inputs, targets, mask, reset=True, tokens=len(group))
            if split != "train":
                return
            epoch += 1

    def loss(self, output: torch.Tensor, batch: Batch) -> torch.Tensor:
        mask = batch.mask.to(output.device)
        if self.classify:
            return F.cross_entropy(output[mask].float(), batch.targets.to(output.device)[mask])
        return F.mse_loss(output[mask].float(), batch.targets.to(output.device)[mask])

    def batch_stats(self, output: torch.Tensor, batch: Batch) -> dict[str, float]:
        mask = batch.mask.to(output.device)
        if self.classify:
            return {"correct": float((correct_positions(output, batch) & mask).sum()),
                    "count": float(mask.sum())}
        diff = output[mask].float() - batch.targets.to(output.device)[mask]
        return {"se": float((diff**2).sum()), "ae": float(diff.abs().sum()),
                "count": float(diff.numel())}

    def summarize(self, stats: dict[str, float]) -> dict[str, float]:
        count = stats.get("count", 0.0)
        if self.classify:
            return {"accuracy": stats["correct"] / count if count else float("nan")}
        if not count:
            return {"mse": float("nan"), "mae": float("nan")}
        return {"mse": stats["se"] / count, "mae": stats["ae"] / count}

    def info(self) -> dict[str, Any]:
        info = self._base_info()
        info["channels"] = self.data["columns"]
        info["targets"] = [self.data["columns"][i] for i in self.data["targets"]]
        info["kind"] = "classification" if self.classify else "next-step regression"
        if self.classify:
            info["classes"] = self.data["classes"]
        info["splits"] = {s: {"series": len(self.data[s]),
                              "steps": int(sum(x.shape[0] for x in self.data[s]))}
                          for s in SPLITS}
        info["normalisation"] = {"mean": self.data["mean"].tolist(),
                                 "std": self.data["std"].tolist()}
        info["data_files"] = {role: str(p) for role, p in self.files.items()}
        return info

    def sample(self, n: int, seed: int = 0, split: str = "train") -> list[dict[str, Any]]:
        """The first ``n`` series of ``split``: their key, length, and first steps (normalised
        values; ``scored``: every step after the first, or the last for classification)."""
        self.check_split(split)
        rows = []
        for x, key in list(zip(self.data[split], self.data[f"{split}_keys"],
                               strict=True))[:n]:
            head = ", ".join("(" + " ".join(f"{v:.2f}" for v in step) + ")"
                             for step in x[:5].tolist())
            row: dict[str, Any] = {"text": f"{key}: {x.shape[0]} steps: {head} ...",
                                   "series": key, "steps": int(x.shape[0])}
            shown = min(6, x.shape[0])
            row["scored"] = [x.shape[0] - 1] if self.classify else list(range(1, shown))
            rows.append(row)
        return rows
