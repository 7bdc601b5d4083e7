"""Evaluation during training reads a bounded number of validation batches; the whole validation
and test splits are read once, at the end, with the best weights."""

from __future__ import annotations

from typing import Any

import pytest

from rnnopt import tasks
from rnnopt.train import TrainConfig, train
from rnnopt.train import _loop as loop


def test_default_evaluation_is_bounded() -> None:
    assert TrainConfig(task="xml", hidden_size=8).eval_batches == 20


@pytest.mark.parametrize("task_name", ["xml"])
def test_bounded_evaluations_then_whole_splits_once(small, monkeypatch, task_name: str) -> None:
    reads: list[tuple[str, int]] = []
    real_get = tasks.get

    def counting_get(name: str, **kwargs: Any) -> Any:
        task = real_get(name, **kwargs)
        real_batches = task.batches

        def batches(split: str, **kw: Any):
            if split == "train":
                yield from real_batches(split, **kw)
                return
            n = 0
            try:
                for batch in real_batches(split, **kw):
                    n += 1
                    yield batch
            finally:
                reads.append((split, n))

        task.batches = batches
        return task

    config = small(task_name, max_steps=30, eval_interval=10, eval_batches=2)
    task = real_get(task_name, **config.task_options)
    whole = {
        split: sum(1 for _ in task.batches(split, batch_size=config.batch_size, unroll=20))
        for split in ("valid", "test")
    }
    assert whole["valid"] > 2
    monkeypatch.setattr(loop.tasks, "get", counting_get)
    result = train(config)
    assert result.stop_reason == "finished"
    assert reads == [("valid", 2)] * 3 + [("valid", whole["valid"]), ("test", whole["test"])]
    assert len(result.history) == 3
    assert result.best_valid == result.valid_metrics[task.metric]
