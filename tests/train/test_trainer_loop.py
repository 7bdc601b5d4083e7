"""The training loop: learning, clipping, divergence, pruning, time limit, resume, memory."""

from __future__ import annotations

import itertools
import math
import os

import pytest
import torch

from rnnopt import cells, tasks
from rnnopt.train import TrainConfig, TrainResult, train
from rnnopt.train import _loop as loop


def _better(task: tasks.Task, a: float, b: float) -> bool:
    return a > b if task.direction == "maximize" else a < b


# Steps and optimiser per task, small enough for CI; each run takes a few seconds on one core.
STREAM = {"valid_size": 100, "test_size": 100, "stream": True}  # xml read as a stream
LEARNING = {
    "arith": {"max_steps": 200, "eval_interval": 50, "optimizer": "adam", "lr": 0.01},
    "memorize": {
        "max_steps": 300,
        "eval_interval": 100,
        "optimizer": "adam",
        "lr": 0.02,
        "patience": 2,
        "hidden_size": 64,
    },
    "xml": {"max_steps": 150, "eval_interval": 50, "optimizer": "adam", "lr": 0.01},
    "ptb": {"max_steps": 60, "eval_interval": 20, "lr": 1.0},
    "text": {"max_steps": 100, "eval_interval": 50, "optimizer": "adam", "lr": 0.01},
    "series": {"max_steps": 100, "eval_interval": 50, "optimizer": "adam", "lr": 0.01},
}
MUSIC = {"max_steps": 60, "eval_interval": 20, "optimizer": "adam", "lr": 0.003}


def _untrained_metrics(config: TrainConfig) -> dict[str, float]:
    """Valid metrics of the freshly initialised model the run starts from."""
    run = loop._Run(config, None, None, False)
    try:
        return run._evaluate("valid")
    finally:
        run.close()


@pytest.mark.parametrize("task_name", [*tasks.names(), "xml-stream"])
def test_loss_falls_and_metric_improves_on_every_task(
    small, user_task_options, task_name: str
) -> None:
    settings = LEARNING.get(task_name, MUSIC)
    if task_name == "xml-stream":
        task_name = "xml"
        settings = {**LEARNING["xml"], "task_options": STREAM}
    if task_name in user_task_options:
        settings = {**settings, "task_options": user_task_options[task_name]}
    config = small(task_name, **settings)
    metric = tasks.get(task_name, **config.task_options).metric
    before = _untrained_metrics(config)[metric]
    result = train(config)
    assert result.stop_reason == "finished", result.message
    assert result.steps == settings["max_steps"]
    first, last = result.history[0][1], result.history[-1][1]
    assert last["train_loss"] < first["train_loss"]
    assert _better(tasks.get(task_name, **config.task_options), result.best_valid, before)
    if metric == "accuracy":  # well above the untrained model, not a fluctuation
        assert result.best_valid > before + 0.05
    else:
        assert result.best_valid < 0.5 * before
    assert result.valid_metrics[metric] == result.best_valid
    assert math.isfinite(result.test_metrics[metric])
    assert result.tokens_per_s > 0 and result.n_params > 0 and result.device == "cpu"


@pytest.mark.parametrize("cell", cells.names())
def test_every_registered_cell_trains(small, cell: str) -> None:
    result = train(
        small(
            "memorize",
            cell=cell,
            hidden_size=16,
            max_steps=4,
            eval_interval=2,
            eval_batches=1,
            layers=2,
            dropout=0.1,
        )
    )
    assert result.stop_reason == "finished", result.message
    assert [step for step, _ in result.history] == [2, 4]
    assert all(math.isfinite(m["train_loss"]) for _, m in result.history)


def test_clipping_bounds_the_global_norm(small, monkeypatch: pytest.MonkeyPatch) -> None:
    pre: list[float] = []
    post: list[float] = []
    clip = torch.nn.utils.clip_grad_norm_

    def recording_clip(params, max_norm, *args, **kwargs):
        params = list(params)
        norm = clip(params, max_norm, *args, **kwargs)
        pre.append(float(norm))
        post.append(
            float(
                torch.linalg.vector_norm(
                    torch.stack(
                        [torch.linalg.vector_norm(p.grad) for p in params if p.grad is not None]
                    )
                )
            )
        )
        return norm

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording_clip)
    result = train(small("arith", clip_norm=0.05, max_steps=10, eval_interval=10))
    assert result.steps == 10 and len(post) == 10
    assert max(pre) > 0.05  # clipping actually acted
    assert max(post) <= 0.05 * (1 + 1e-5)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_huge_learning_rate_diverges_without_raising(small, optimizer: str) -> None:
    result = train(small("arith", optimizer=optimizer, lr=1e38, max_steps=50, eval_interval=10))
    assert result.stop_reason == "diverged"
    assert result.steps < 50
    assert result.message


def test_divergence_keeps_the_last_good_metrics(small, monkeypatch: pytest.MonkeyPatch) -> None:
    task_class = type(tasks.get("memorize"))
    real_loss = task_class.loss
    calls = {"n": 0}

    def loss_turning_nan(self, output, batch):
        calls["n"] += 1
        value = real_loss(self, output, batch)
        return value * float("nan") if calls["n"] > 25 else value

    monkeypatch.setattr(task_class, "loss", loss_turning_nan)
    result = train(small("memorize", max_steps=100, eval_interval=10))
    assert result.stop_reason == "diverged"
    assert result.steps == 25
    assert [s for s, _ in result.history] == [10, 20]
    assert result.best_valid is not None and result.valid_metrics["accuracy"] == result.best_valid
    assert result.test_metrics  # measured with the last good (best) weights


def test_on_eval_true_stops_the_run_as_pruned(small) -> None:
    seen: list[tuple[int, dict[str, float]]] = []

    def on_eval(step: int, metrics: dict[str, float]) -> bool:
        seen.append((step, metrics))
        return step >= 20

    result = train(small("arith", max_steps=100, eval_interval=10), on_eval=on_eval)
    assert result.stop_reason == "pruned"
    assert result.steps == 20
    assert [s for s, _ in seen] == [10, 20]
    assert "accuracy" in seen[0][1] and "train_loss" in seen[0][1]
    assert result.test_metrics == {}


def test_time_limit_stops_with_metrics(small) -> None:
    result = train(small("arith", max_steps=100_000, eval_interval=100_000, time_limit=1.0))
    assert result.stop_reason == "time_limit"
    assert 0 < result.steps < 100_000
    assert result.history[-1][0] == result.steps and "accuracy" in result.test_metrics


def test_lr_halves_on_plateau(small) -> None:
    # lr tiny: nothing improves much, and every non-improving evaluation halves the rate.
    result = train(small("arith", lr=1e-9, max_steps=60, eval_interval=10, lr_decay=0.5))
    lrs = [m["lr"] for _, m in result.history]
    assert lrs[0] == 1e-9
    assert lrs[-1] < lrs[0]
    assert all(b in (a, a * 0.5) for a, b in itertools.pairwise(lrs))


def _capture_final_weights(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, torch.Tensor]]:
    captured: list[dict[str, torch.Tensor]] = []
    real_close = loop._Run.close

    def close(self) -> None:
        if self.model is not None:
            captured.append({k: v.clone() for k, v in self.model.state_dict().items()})
        real_close(self)

    monkeypatch.setattr(loop._Run, "close", close)
    return captured


@pytest.mark.parametrize(
    ("task_name", "overrides"),
    [
        ("ptb", {"optimizer": "adam", "lr": 0.003, "dropout": 0.3, "layers": 2}),
        ("arith", {"optimizer": "sgd", "lr": 1.0, "dropout": 0.2, "patience": 1}),
        # a generated task read as a stream: the carried state and the stream position resume
        ("xml", {"optimizer": "adam", "lr": 0.01, "task_options": STREAM}),
    ],
)
def test_resume_is_bit_identical(small, monkeypatch, task_name: str, overrides: dict) -> None:
    weights = _capture_final_weights(monkeypatch)
    config = small(task_name, max_steps=30, eval_interval=10, eval_batches=2, **overrides)
    blobs: list[bytes] = []
    full = train(config, on_checkpoint=blobs.append)
    assert len(blobs) == 2  # after evaluations 1 and 2; none at the end
    resumed = train(config, resume=blobs[0])
    _assert_same(full, resumed)
    for a, b in zip(weights[0].values(), weights[1].values(), strict=True):
        assert torch.equal(a, b)


def test_pause_checkpoints_and_stops_and_its_resume_is_the_uninterrupted_run(small) -> None:
    """``pause_at`` (the staged filter's gates): a checkpoint at the first evaluation at or
    after it, no final evaluation, and resuming from there is the run that never paused."""
    config = small("arith", max_steps=30, eval_interval=10, eval_batches=2,
                   checkpoint_every=5)  # fmt: skip
    full = train(config)
    blobs: list[bytes] = []
    paused = train(config, on_checkpoint=blobs.append, pause_at=15)
    assert (paused.stop_reason, paused.steps, len(blobs)) == ("paused", 20, 1)
    assert paused.test_metrics == {} and paused.history == full.history[:2]
    assert paused.best_valid == max(r["accuracy"] for _, r in full.history[:2])
    again = train(config, resume=blobs[0], pause_at=20)  # at or past its gate: paused at once
    assert (again.stop_reason, again.steps, again.history) == ("paused", 20, paused.history)
    _assert_same(full, train(config, resume=blobs[0]))
    # A gate on the last step is no pause: the run finishes.
    assert train(config, pause_at=30).stop_reason == "finished"


def _assert_same(a: TrainResult, b: TrainResult) -> None:
    assert a.history == b.history
    assert a.valid_metrics == b.valid_metrics and a.test_metrics == b.test_metrics
    assert (a.steps, a.stop_reason, a.best_valid) == (b.steps, b.stop_reason, b.best_valid)


def test_resume_with_a_different_structure_is_refused(small) -> None:
    blobs: list[bytes] = []
    train(small("arith", max_steps=20, eval_interval=10), on_checkpoint=blobs.append)
    from rnnopt.errors import ConfigError

    with pytest.raises(ConfigError, match="hidden_size"):
        train(small("arith", max_steps=20, eval_interval=10, hidden_size=64), resume=blobs[0])


def test_progress_line_on_request(small, capsys: pytest.CaptureFixture[str]) -> None:
    train(small("arith", max_steps=4, eval_interval=4), progress=True)
    err = capsys.readouterr().err
    assert err.startswith("\rstep ") and "4/4" in err and err.endswith("\n")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_no_memory_growth_across_runs(small) -> None:
    config = small("arith", max_steps=6, eval_interval=3, hidden_size=64)
    train(config)
    after_first = _rss_mb()
    for _ in range(9):
        train(config)
    assert _rss_mb() - after_first < 8.0


@pytest.mark.cuda
@pytest.mark.parametrize("task_name", ["ptb", "jsb", "arith"])
def test_cuda_with_bf16(small, task_name: str) -> None:
    settings = LEARNING.get(task_name, MUSIC)
    result = train(small(task_name, device="cuda", bf16=True, **settings))
    assert result.stop_reason == "finished", result.message
    assert result.device == "cuda:0"
    assert result.history[-1][1]["train_loss"] < result.history[0][1]["train_loss"]
