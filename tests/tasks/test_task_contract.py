"""The Task contract, checked for every registered task (built-in, user-data and any plug-in
installed in this environment) and for the example plug-in (examples/plugin): a new task is
tested the moment it is registered."""

from __future__ import annotations

import itertools
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import torch

from rnnopt import plugins, tasks
from rnnopt.errors import ConfigError, DataError
from rnnopt.model import SequenceModel

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plugin"
PLUGIN_TASK = "sine"  # registered by examples/plugin/rnnopt_example_plugin.py


@pytest.fixture
def task_name(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A registered task's name; the example plug-in's task is registered for the test only."""
    name = request.param
    if name != PLUGIN_TASK or PLUGIN_TASK in tasks.names():
        yield name
        return
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.setenv(plugins.ENV, "")
    plugins.load(["rnnopt_example_plugin"])
    try:
        yield name
    finally:
        tasks.unregister(PLUGIN_TASK)
        from rnnopt import cells

        cells.unregister("scaled-rnn")
        sys.modules.pop("rnnopt_example_plugin", None)
        plugins._loaded.discard("rnnopt_example_plugin")


NAMES = sorted({*tasks.names(), PLUGIN_TASK})


@pytest.mark.parametrize("task_name", NAMES, indirect=True)
def test_every_task_keeps_the_contract(task_name: str, user_task_options: dict) -> None:
    cls = tasks.task_class(task_name)
    assert cls.direction in ("maximize", "minimize") and cls.metric and cls.description
    task = tasks.get(task_name, **user_task_options.get(task_name, {}))
    assert task.input_kind in ("tokens", "multihot", "real")
    assert task.input_size >= 1 and task.output_size >= 1
    info = task.info()
    json.dumps(info)  # JSON-serialisable
    assert info["metric"] == task.metric and info["name"] == task_name
    task.check_data(batch_size=4, unroll=10)

    torch.manual_seed(0)
    model = SequenceModel(task, "gru", 8)
    batch = next(iter(task.batches("train", batch_size=4, unroll=10, seed=0)))
    steps, width = batch.inputs.shape[:2]
    assert width <= 4 and batch.mask.shape == (steps, width) and batch.mask.dtype == torch.bool
    if task.input_kind == "tokens":
        assert batch.inputs.dtype == torch.long
        assert 0 <= int(batch.inputs.min()) and int(batch.inputs.max()) < task.input_size
    else:
        assert batch.inputs.shape[2] == task.input_size and batch.inputs.is_floating_point()
    assert batch.tokens == int(batch.mask.sum()) > 0
    output, _ = model(batch.inputs)
    assert output.shape == (steps, width, task.output_size)
    loss = task.loss(output, batch)
    assert loss.dim() == 0 and math.isfinite(float(loss.detach()))
    loss.backward()
    assert all(p.grad is not None for p in model.rnn.parameters())

    with torch.no_grad():
        first = list(itertools.islice(task.batches("valid", batch_size=4, unroll=10), 3))
        again = list(itertools.islice(task.batches("valid", batch_size=4, unroll=10, seed=7), 3))
        for a, b in zip(first, again, strict=True):  # valid does not depend on the seed
            assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
        stats: dict[str, float] = {}
        for b in first:
            for key, value in task.batch_stats(model(b.inputs)[0], b).items():
                stats[key] = stats.get(key, 0.0) + value
    metrics = task.summarize(stats)
    assert task.metric in metrics and math.isfinite(metrics[task.metric])

    rows = task.sample(2, seed=0)
    assert 1 <= len(rows) <= 2
    for row in rows:
        assert isinstance(row["text"], str)
        assert all(0 <= p < max(1, len(row["text"])) for p in row["scored"])
    with pytest.raises(ConfigError, match="unknown split 'dev'"):
        next(iter(task.batches("dev", batch_size=4, unroll=10)))
    with pytest.raises(ConfigError, match="unknown option 'no_such_option'"):
        tasks.get(task_name, no_such_option=1, **user_task_options.get(task_name, {}))


# --- ExampleTask: what it checks in the examples --------------------------------------------


class _Task(tasks.ExampleTask):
    name = "contract-example"
    input_kind = "tokens"
    input_size = 5
    output_size = 3
    metric = "accuracy"
    data: ClassVar[dict[str, list]] = {}

    def examples(self, split: str) -> list:
        return self.data.get(split, self.data.get("*", []))


@pytest.mark.parametrize(
    ("examples", "words"),
    [
        ([], ["contract-example: the train split has no examples"]),
        ([([1, 2], [0])], ["example 0", "targets have shape (1,), expected (2,)"]),
        ([([1, 9], [0, 1])], ["example 0", "inputs step 1: 9 is outside [0, 5)"]),
        ([([1, 2], [0, 3])], ["targets step 1: 3 is outside [0, 3)"]),
        ([([], [])], ["empty sequence"]),
        ([([1, 2], [0, 1], [5])], ["scored [5] must be step indices in [0, 2)"]),
        ([([1, 2],)], ["expected (inputs, targets) or (inputs, targets, scored)"]),
        ([(["a", "b"], [0, 1])], ["must be numbers"]),
    ],
)
def test_bad_examples_are_one_line_data_errors(examples: list, words: list[str]) -> None:
    _Task.data = {"*": examples}
    task = _Task()
    with pytest.raises(DataError) as info:
        task.check_data(batch_size=2, unroll=5)
    assert "\n" not in str(info.value)
    for word in words:
        assert word in str(info.value)


def test_real_valued_examples_must_be_finite() -> None:
    class Values(tasks.ExampleTask):
        name = "contract-values"
        input_kind = "real"
        input_size = 2
        output_size = 1
        metric = "mae"

        def examples(self, split: str) -> list:
            return [([[0.0, 1.0], [math.nan, 0.0]], [0.5, 0.25])]

    assert Values.direction == "minimize"
    with pytest.raises(DataError, match=r"inputs step 1: not a finite number"):
        Values().check_data(batch_size=1, unroll=3)


def test_scored_positions_are_exactly_what_the_metric_counts() -> None:
    """Targets 0, 1, 2 with only steps 0 and 2 scored: a model that always says class 1 gets
    accuracy 0 (step 1, where it is right, is not scored), and nll/perplexity agree."""
    _Task.data = {"*": [([1, 2, 3], [0, 1, 2], [0, 2])]}
    task = _Task()
    (batch,) = task.batches("valid", batch_size=1, unroll=10)
    output = torch.zeros(3, 1, 3)
    output[..., 1] = 10.0
    metrics = task.summarize(task.batch_stats(output, batch))
    assert metrics["accuracy"] == 0.0
    assert metrics["perplexity"] == pytest.approx(math.exp(metrics["nll"]))
    assert batch.tokens == 2 and batch.mask[:, 0].tolist() == [True, False, True]


def test_training_order_is_reshuffled_by_seed_and_epoch() -> None:
    _Task.data = {"*": [([i % 5], [i % 3]) for i in range(20)]}
    task = _Task()
    first, second = (
        [int(b.inputs[0, 0]) for b in itertools.islice(
            task.batches("train", batch_size=1, unroll=1, seed=seed), 20)]
        for seed in (0, 1)
    )
    assert sorted(first) == sorted(i % 5 for i in range(20)) and first != second
