"""Real data (PTB and the four music sets from ../shared/data): counts, vocabulary, batching,
metrics by hand on tiny copies, caching."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from rnnopt import tasks
from rnnopt.errors import DataError
from rnnopt.tasks import _data

# SOURCES.md: pieces and steps per split, note range, most notes in a step, empty train steps
MUSIC = {
    "jsb": ((229, 76, 77), (13_807, 4_602, 4_725), (43, 96), 4, 18),
    "musedata": ((524, 135, 124), (245_202, 82_755, 64_339), (21, 105), 15, 12_962),
    "nottingham": ((694, 173, 170), (176_561, 45_513, 44_463), (31, 93), 9, 487),
    "piano-midi": ((87, 12, 25), (75_911, 8_540, 19_036), (21, 108), 12, 4_917),
}
SPLITS = ("train", "valid", "test")


def write_ptb(root: Path, train: str, valid: str, test: str) -> Path:
    (root / "ptb").mkdir(parents=True, exist_ok=True)
    for split, text in zip(SPLITS, (train, valid, test), strict=True):
        (root / "ptb" / f"ptb.{split}.txt").write_text(text)
    return root


def write_music(root: Path, name: str, doc: object) -> Path:
    (root / "music").mkdir(parents=True, exist_ok=True)
    (root / "music" / name).write_text(json.dumps(doc))
    return root


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A disk cache of this test's own, so tiny fixture data never land in ~/.cache."""
    monkeypatch.setenv("RNNOPT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# --- PTB -----------------------------------------------------------------------------------

def test_ptb_counts_and_vocabulary(data_dir: Path) -> None:
    task = tasks.get("ptb", data_dir=data_dir)
    assert (task.metric, task.direction, task.stateful) == ("perplexity", "minimize", True)
    counts = [int(task.data[s].numel()) for s in SPLITS]
    assert counts == [929_589, 73_760, 82_430]
    assert task.input_size == task.output_size == len(task.vocab) == 10_000
    assert len(set(task.vocab)) == 10_000 and "<eos>" in task.vocab and "<unk>" in task.vocab
    eos = task.vocab.index("<eos>")
    assert [int((task.data[s] == eos).sum()) for s in SPLITS] == [42_068, 3_370, 3_761]
    # frequency order: the most frequent word is 'the'; counts never increase along the vocab
    freq = torch.bincount(task.data["train"], minlength=10_000)
    assert task.vocab[0] == "the" and bool((freq[:-1] >= freq[1:]).all())
    info = task.info()
    assert info["vocabulary_size"] == 10_000 and info["splits"]["valid"]["tokens"] == 73_760


def test_ptb_batches_are_contiguous_streams(data_dir: Path) -> None:
    task = tasks.get("ptb", data_dir=data_dir)
    stream = task.data["valid"]
    B, u = 20, 35
    rows = stream.numel() // B
    batches = list(task.batches("valid", batch_size=B, unroll=u))
    assert [b.reset for b in batches] == [True] + [False] * (len(batches) - 1)
    assert sum(b.tokens for b in batches) == (rows - 1) * B
    assert batches[0].inputs.shape == (u, B) and batches[-1].inputs.shape[0] == (rows - 1) % u
    inputs = torch.cat([b.inputs for b in batches])
    targets = torch.cat([b.targets for b in batches])
    for col in (0, 7, 19):  # column b reads the b-th slice of the stream, targets shifted by one
        assert torch.equal(inputs[:, col], stream[col * rows : (col + 1) * rows - 1])
        assert torch.equal(targets[:, col], stream[col * rows + 1 : (col + 1) * rows])
    # the train stream is endless and resets at the start of every pass
    train = task.batches("train", batch_size=400, unroll=400, seed=0)
    per_pass = math.ceil((929_589 // 400 - 1) / 400)
    resets = [next(train).reset for _ in range(2 * per_pass + 1)]
    assert [i for i, r in enumerate(resets) if r] == [0, per_pass, 2 * per_pass]


def test_ptb_tiny_copy_vocab_and_metrics(tmp_path: Path, private_cache: Path) -> None:
    root = write_ptb(tmp_path, " b a c a\n a b\n\n", " a b\n", " c\n")
    task = tasks.get("ptb", data_dir=root)
    # counts: a 3, <eos> 3, b 2, c 1 -> ties broken alphabetically
    assert task.vocab == ["<eos>", "a", "b", "c"]
    assert task.data["train"].tolist() == [2, 1, 3, 1, 0, 1, 2, 0, 0]
    with pytest.raises(DataError, match=r"ptb.valid.txt: line 2: word 'zzz'"):  # no <unk>
        tasks.get("ptb", data_dir=write_ptb(tmp_path / "x", " a\n", " a\n a zzz\n", ""))
    unk = tasks.get("ptb", data_dir=write_ptb(tmp_path / "u", " <unk> a\n", " q a\n", " a\n"))
    assert [unk.vocab[i] for i in unk.data["valid"].tolist()] == ["<unk>", "a", "<eos>"]

    # metrics by hand: 2 positions, logits over 4 words
    batch = tasks.Batch(
        inputs=torch.tensor([[1], [2]]), targets=torch.tensor([[2], [0]]),
        mask=torch.ones(2, 1, dtype=torch.bool), reset=True, tokens=2,
    )
    out = torch.tensor([[[0.0, 1.0, 2.0, 0.0]], [[0.0, 3.0, 0.0, 0.0]]])
    lse1 = math.log(1 + math.e + math.e**2 + 1)
    lse2 = math.log(3 + math.e**3)
    nll = (lse1 - 2.0) + (lse2 - 0.0)
    stats = task.batch_stats(out, batch)
    assert stats == {"nll": pytest.approx(nll, rel=1e-6), "correct": 1.0, "count": 2.0}
    metrics = task.summarize(stats)
    assert metrics["perplexity"] == pytest.approx(math.exp(nll / 2), rel=1e-6)
    assert metrics["accuracy"] == 0.5
    assert float(task.loss(out, batch)) == pytest.approx(nll / 2, rel=1e-6)
    assert task.summarize({"nll": 1e6, "correct": 0.0, "count": 1.0})["perplexity"] == math.inf


def test_ptb_sample(data_dir: Path) -> None:
    task = tasks.get("ptb", data_dir=data_dir)
    rows = task.sample(5, seed=1)
    assert rows == task.sample(5, seed=1) and rows != task.sample(5, seed=2)
    for row in rows:
        words = row["text"].split(" ")
        assert words[-1] == "<eos>" and all(w in task.vocab for w in words)
        assert [row["text"][p:].split(" ")[0] for p in row["scored"]] == words


# --- music ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(MUSIC))
def test_music_split_sizes(name: str, data_dir: Path) -> None:
    task = tasks.get(name, data_dir=data_dir)
    pieces, steps, note_range, most, empty = MUSIC[name]
    assert tuple(len(task.pieces[s]) for s in SPLITS) == pieces
    assert tuple(sum(r.size(0) for r in task.pieces[s]) for s in SPLITS) == steps
    rolls = torch.cat([r for s in SPLITS for r in task.pieces[s]])
    notes = rolls.any(0).nonzero().flatten()
    assert (int(notes.min()) + 21, int(notes.max()) + 21) == note_range
    assert int(rolls.sum(1).max()) == most
    assert int((torch.cat(task.pieces["train"]).sum(1) == 0).sum()) == empty
    assert (task.input_kind, task.input_size, task.output_size) == ("multihot", 88, 88)
    assert (task.metric, task.direction, task.stateful) == ("nll", "minimize", True)
    # every step is scored exactly once in a validation pass
    batches = list(task.batches("valid", batch_size=16, unroll=50))
    assert sum(b.tokens for b in batches) == steps[1]
    assert batches[0].inputs.dtype == torch.float32
    assert batches[0].inputs.shape[1:] == (min(16, pieces[1]), 88)


def test_music_batches_jsb(data_dir: Path) -> None:
    task = tasks.get("jsb", data_dir=data_dir)
    B, u = 4, 30
    batches = list(task.batches("test", batch_size=B, unroll=u))
    first_group = task.pieces["test"][:B]
    length = max(r.size(0) for r in first_group)
    n_windows = math.ceil(length / u)
    group = batches[:n_windows]
    assert [b.reset for b in group] == [True] + [False] * (n_windows - 1)
    assert batches[n_windows].reset
    inputs = torch.cat([b.inputs for b in group])
    targets = torch.cat([b.targets for b in group])
    mask = torch.cat([b.mask for b in group])
    for b, roll in enumerate(first_group):
        T = roll.size(0)
        assert torch.equal(targets[:T, b], roll.float())
        assert float(inputs[0, b].sum()) == 0.0 and torch.equal(inputs[1:T, b], roll[:-1].float())
        assert mask[:T, b].all() and not mask[T:, b].any()
    train1 = [next(iter(task.batches("train", batch_size=B, unroll=u, seed=1))).targets]
    train1b = [next(iter(task.batches("train", batch_size=B, unroll=u, seed=1))).targets]
    train2 = [next(iter(task.batches("train", batch_size=B, unroll=u, seed=2))).targets]
    assert torch.equal(train1[0], train1b[0]) and not torch.equal(train1[0], train2[0])


def test_music_tiny_copy_and_metrics_by_hand(tmp_path: Path, private_cache: Path) -> None:
    doc = {"train": [[[21], [], [108, 60]]], "valid": [[[60]], [[60], [61]]], "test": [[[]]]}
    task = tasks.get("jsb", data_dir=write_music(tmp_path, "jsb_chorales.json", doc))
    roll = task.pieces["train"][0]
    assert roll.shape == (3, 88) and roll[0, 0] and not roll[1].any() and roll[2, 87]
    assert roll[2, 39] and int(roll.sum()) == 3
    # valid: two pieces of lengths 1 and 2 in one batch
    (batch,) = list(task.batches("valid", batch_size=2, unroll=10))
    assert batch.mask.tolist() == [[True, True], [False, True]] and batch.tokens == 3
    out = torch.zeros(2, 2, 88)
    out[0, 0, 39] = 2.0  # note 60 predicted for piece 0 step 0: right
    out[0, 1, 39] = -1.0  # piece 1 step 0: 60 is on, logit -1 -> missed
    out[1, 1, 40] = 1.0  # piece 1 step 1: 61 on, logit 1 -> hit
    out[1, 0, 5] = 9.0  # padding: ignored

    def bce(logit: float, y: float) -> float:
        p = 1 / (1 + math.exp(-logit))
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    zero = bce(0.0, 0.0)
    nll = (bce(2.0, 1) + 87 * zero) + (bce(-1.0, 1) + 87 * zero) + (bce(1.0, 1) + 87 * zero)
    stats = task.batch_stats(out, batch)
    assert stats["nll"] == pytest.approx(nll, rel=1e-5) and stats["steps"] == 3
    # logit 0 is not > 0: predicted off; tp: 2 (60 at step 0 piece 0, 61), fn: 1, fp: 0
    assert (stats["tp"], stats["fp"], stats["fn"]) == (2.0, 0.0, 1.0)
    metrics = task.summarize(stats)
    assert metrics["nll"] == pytest.approx(nll / 3, rel=1e-5)
    assert metrics["frame_accuracy"] == pytest.approx(2 / 3)
    assert float(task.loss(out, batch)) == pytest.approx(nll / 3, rel=1e-5)
    sample = task.sample(1, split="train")[0]
    assert sample["text"] == "21|-|60,108" and sample["scored"] == [0, 3, 5]


# --- data location and cache ---------------------------------------------------------------

def test_data_dir_precedence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, private_cache: Path
) -> None:
    monkeypatch.setenv("RNNOPT_DATA", "/from/env")
    assert _data.resolve_data_dir("/given") == Path("/given")
    assert _data.resolve_data_dir(None) == Path("/from/env")
    monkeypatch.delenv("RNNOPT_DATA")
    assert _data.resolve_data_dir(None) == Path("data")
    write_ptb(tmp_path / "data", " a b\n", " a\n", " b\n")
    monkeypatch.chdir(tmp_path)
    assert tasks.get("ptb").vocab == ["<eos>", "a", "b"]


def test_disk_cache_keyed_by_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("RNNOPT_CACHE", str(cache))
    root = write_ptb(tmp_path / "d", " a b\n", " a\n", " b\n")
    first = tasks.get("ptb", data_dir=root)
    files = sorted(cache.glob("ptb-*.pt"))
    assert len(files) == 1
    monkeypatch.setattr(_data, "_memory", {})
    calls = []
    monkeypatch.setattr("rnnopt.tasks.ptb._parse", lambda paths: calls.append(1))
    again = tasks.get("ptb", data_dir=root)  # from the disk cache: no parsing
    assert not calls and again.vocab == first.vocab
    assert torch.equal(again.data["train"], first.data["train"])
    monkeypatch.undo()
    monkeypatch.setenv("RNNOPT_CACHE", str(cache))
    (root / "ptb" / "ptb.test.txt").write_text(" a a\n")  # new content -> new cache entry
    changed = tasks.get("ptb", data_dir=root)
    assert changed.data["test"].numel() == 3 and len(list(cache.glob("ptb-*.pt"))) == 2
