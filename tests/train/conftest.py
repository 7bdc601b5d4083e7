"""Small, fast training configurations shared by the trainer tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

from rnnopt.train import TrainConfig

# Small held-out splits keep evaluation cheap on the generated tasks.
GENERATED_SPLITS = {"valid_size": 100, "test_size": 100}
GENERATED = {"arith", "memorize", "xml"}


def small_config(task: str, **overrides: Any) -> TrainConfig:
    """A tiny model on ``task``: H=32, short windows, few steps, cheap evaluation."""
    base: dict[str, Any] = {
        "task": task,
        "hidden_size": 32,
        "batch_size": 16,
        "unroll": 20,
        "max_steps": 40,
        "eval_interval": 20,
        "eval_batches": 4,
        "device": "cpu",
        "lr": 1.0,
    }
    if task in GENERATED:
        base["task_options"] = dict(GENERATED_SPLITS)
    if task == "xml":
        # Shorter documents: xml's sequences are otherwise hundreds of characters long.
        base["task_options"]["force_close_after"] = 6
    base.update(overrides)
    return TrainConfig.from_dict(base)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # These models are tiny: one intra-op thread is faster, and much faster on a busy machine.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def small() -> Callable[..., TrainConfig]:
    return small_config
