"""Zaremba et al. (2014) loss normalisation against a hand computation, and in the trainer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from rnnopt import tasks
from rnnopt.errors import ConfigError
from rnnopt.train import TrainConfig, train
from rnnopt.train._loop import training_loss

WORDS = "the cat sat on the mat and the dog ate the cat food".split()


def _ptb(root: Path) -> Path:
    (root / "ptb").mkdir(parents=True)
    text = "\n".join(" ".join(WORDS[i:] + WORDS[:i]) for i in range(len(WORDS))) + "\n"
    for split in ("train", "valid", "test"):
        (root / "ptb" / f"ptb.{split}.txt").write_text(text)
    return root


def test_ptb_sum_over_steps_is_the_sum_of_batch_means(tmp_path: Path) -> None:
    task = tasks.get("ptb", data_dir=_ptb(tmp_path))
    batch = next(task.batches("train", batch_size=3, unroll=4))
    steps, columns = batch.targets.shape
    assert (steps, columns) == (4, 3)
    torch.manual_seed(0)
    output = torch.randn(steps, columns, task.output_size)
    # By hand: -log p(target) per position, mean over the 3 columns, summed over the 4 steps.
    by_hand = 0.0
    per_token = []
    for t in range(steps):
        row = 0.0
        for b in range(columns):
            logits = output[t, b].tolist()
            log_z = math.log(sum(math.exp(v) for v in logits))
            nll = log_z - logits[int(batch.targets[t, b])]
            row += nll
            per_token.append(nll)
        by_hand += row / columns
    got = training_loss(task, output, batch, "sum_over_steps")
    assert float(got) == pytest.approx(by_hand, rel=1e-5)
    mean = training_loss(task, output, batch, "mean")
    assert float(mean) == pytest.approx(sum(per_token) / len(per_token), rel=1e-5)
    assert float(got) == pytest.approx(float(mean) * steps, rel=1e-5)


def test_music_padding_counts_as_zero_in_the_batch_mean(tmp_path: Path) -> None:
    (tmp_path / "music").mkdir()
    pieces = [[[60], [62, 64], [], [65]], [[48, 52]], [[70], [71]]]
    doc = {"train": pieces, "valid": pieces, "test": pieces}
    (tmp_path / "music" / "jsb_chorales.json").write_text(json.dumps(doc))
    task = tasks.get("jsb", data_dir=tmp_path)
    batch = next(task.batches("valid", batch_size=3, unroll=10))
    steps, columns = batch.mask.shape
    assert columns == 3 and int(batch.mask.sum()) == 4 + 1 + 2  # padded positions masked out
    torch.manual_seed(1)
    output = torch.randn(steps, columns, 88)
    by_hand = 0.0
    for t in range(steps):
        row = 0.0
        for b in range(columns):
            if not batch.mask[t, b]:
                continue
            for k in range(88):
                p = 1 / (1 + math.exp(-float(output[t, b, k])))
                y = float(batch.targets[t, b, k])
                row -= y * math.log(p) + (1 - y) * math.log(1 - p)
        by_hand += row / columns
    got = training_loss(task, output, batch, "sum_over_steps")
    assert float(got) == pytest.approx(by_hand, rel=1e-5)


def test_trainer_differentiates_the_chosen_reduction(tmp_path: Path) -> None:
    """First-step training loss (same seed, before any update): unroll times the mean."""
    data = _ptb(tmp_path)
    losses = {}
    for reduction in ("mean", "sum_over_steps"):
        cfg = TrainConfig(
            task="ptb", hidden_size=8, batch_size=2, unroll=5, max_steps=1, eval_interval=1,
            eval_batches=1, device="cpu", data_dir=str(data), loss_reduction=reduction,
        )  # fmt: skip
        result = train(cfg, progress=False)
        losses[reduction] = result.history[0][1]["train_loss"]
    assert losses["sum_over_steps"] == pytest.approx(5 * losses["mean"], rel=1e-4)


def test_unknown_reduction_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"loss_reduction='token'.*mean, sum_over_steps"):
        TrainConfig(task="ptb", hidden_size=8, loss_reduction="token")
