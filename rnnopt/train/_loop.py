# Over 450 lines: one loop whose evaluation, plateau halving, divergence and checkpoint
# resume share the trainer's state; split, each piece would need all of it.
"""The training loop: truncated BPTT, clipping, evaluation, plateau halving, checkpoints."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import gc
import itertools
import logging
import math
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from rnnopt import cells, tasks
from rnnopt.budget import solve_hidden_size
from rnnopt.errors import ConfigError
from rnnopt.model import SequenceModel, State, count_parameters
from rnnopt.train import _checkpoint
from rnnopt.train._config import _DEVICE_RE, STRUCTURAL_KEYS, TrainConfig

logger = logging.getLogger(__name__)

OnEval = Callable[[int, dict[str, float]], "bool | None"]
OnCheckpoint = Callable[[bytes], None]


@dataclass
class TrainResult:
    """What a run reports.

    The weights of the best evaluation (by the task's primary metric and direction; evaluations
    read the first ``eval_batches`` validation batches) are kept; at the end ``valid_metrics``
    (and ``best_valid``, their primary metric) and ``test_metrics`` are measured with them on the
    whole validation and test splits, as a study reports a tuned model. A pruned run skips the
    test evaluation (``test_metrics`` is empty); a run that diverged before its first
    evaluation has empty metrics and ``best_valid`` None. ``history`` holds every evaluation:
    the (bounded) valid metrics plus ``train_loss`` (mean since the previous evaluation) and
    ``lr``.
    """

    stop_reason: str  # finished | pruned | diverged | time_limit | paused
    steps: int
    valid_metrics: dict[str, float]
    test_metrics: dict[str, float]
    best_valid: float | None
    n_params: int
    hidden_size: int
    tokens_per_s: float
    device: str
    history: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    message: str = ""


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available else cpu; ``cuda[:N]`` must exist."""
    if not isinstance(name, str) or not _DEVICE_RE.match(name):
        raise ConfigError(f"bad device {name!r}; allowed: auto, cpu, cuda, cuda:N")
    if name == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} is not available (no CUDA device); allowed: auto, cpu")
    index = int(name.split(":", 1)[1]) if ":" in name else 0
    count = torch.cuda.device_count()
    if index >= count:
        raise ConfigError(f"device {name!r} does not exist; allowed: cuda:0..cuda:{count - 1}")
    return torch.device(f"cuda:{index}")


def model_cell_options(config: TrainConfig) -> dict[str, Any]:
    """The options every cell is built with: ``cell_options`` plus ``forget_bias`` if set."""
    spec = cells.spec(config.cell)
    unknown = sorted(set(config.cell_options) - set(spec.options))
    if unknown:
        raise ConfigError(
            f"cell {config.cell!r} has no option(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(sorted(spec.options)) or 'none'}"
        )
    options = dict(config.cell_options)
    if config.forget_bias is not None:
        if not spec.forget_bias_with(options):
            built = f" with {options}" if options else ""
            raise ConfigError(
                f"forget_bias={config.forget_bias!r} but cell {config.cell!r}{built} has no "
                "forget gate, so no forget bias; allowed: null for this cell"
            )
        options["forget_bias"] = config.forget_bias
    return options


def train(
    config: TrainConfig | dict[str, Any],
    *,
    on_eval: OnEval | None = None,
    on_checkpoint: OnCheckpoint | None = None,
    resume: bytes | None = None,
    progress: bool | None = None,
    pause_at: int | None = None,
) -> TrainResult:
    """Train one model as ``config`` says; see docs/ARCHITECTURE.md for the contract.

    ``on_eval(step, metrics)`` returning True stops the run as "pruned". ``on_checkpoint``
    receives a checkpoint (bytes) every ``checkpoint_every`` evaluations unless the run stops
    there; ``resume`` continues from one (bit-identical to an uninterrupted run on CPU).
    ``pause_at``: at the first evaluation at or after that step (before ``max_steps``) the run
    hands ``on_checkpoint`` a checkpoint and stops as "paused", without its final evaluation;
    resumed from that checkpoint it goes on as if it had never stopped (a run resumed at or
    past ``pause_at`` returns "paused" at once). The staged filter (rnnopt/hpo/staged.py)
    parks trials this way.
    ``progress``: a one-line progress display on stderr; default only when stderr is a TTY.
    A NaN or infinite loss or gradient norm ends the run as "diverged"; it never raises.
    Python's and torch's global random generators are seeded with ``config.seed``; a
    ``time_limit`` counts wall time across resumes.
    """
    if isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    elif not isinstance(config, TrainConfig):
        raise ConfigError(f"config must be a TrainConfig or dict, got {type(config).__name__}")
    config.validate()
    payload = _checkpoint.loads(resume) if resume is not None else None
    if payload is not None:
        _check_resumable(config, payload["config"])
    run = _Run(config, on_eval, on_checkpoint, progress)
    try:
        return run.execute(payload, pause_at)
    finally:
        run.close()


def _check_resumable(config: TrainConfig, saved: dict[str, Any]) -> None:
    current = config.to_dict()
    for key in STRUCTURAL_KEYS:
        if current[key] != saved.get(key):
            raise ConfigError(
                f"cannot resume: checkpoint has {key}={saved.get(key)!r} but config has "
                f"{key}={current[key]!r}"
            )


def training_loss(
    task: Any, output: torch.Tensor, batch: Any, reduction: str = "mean"
) -> torch.Tensor:
    """The loss that is differentiated: the task's mean over scored positions (``mean``), or
    Zaremba et al.'s sum over the unrolled steps of the batch mean (``sum_over_steps``): the
    summed loss of the scored positions divided by the batch size (columns), which for a full
    ``[T, B]`` mask is the mean times T."""
    loss = task.loss(output, batch)
    if reduction == "sum_over_steps":
        scored = batch.mask.sum().to(loss.device, loss.dtype)
        loss = loss * scored / batch.mask.shape[1]
    return loss


class _Run:
    def __init__(
        self,
        config: TrainConfig,
        on_eval: OnEval | None,
        on_checkpoint: OnCheckpoint | None,
        progress: bool | None,
    ) -> None:
        self.cfg = config
        self.on_eval = on_eval
        self.on_checkpoint = on_checkpoint
        self.device = resolve_device(config.device)
        self.bf16 = config.bf16 and self.device.type == "cuda"
        if config.bf16 and not self.bf16:
            logger.warning("bf16 autocast needs CUDA; training on %s in float32", self.device)
        self.task = tasks.get(config.task, data_dir=config.data_dir, **config.task_options)
        self.cell_options = model_cell_options(config)
        if config.hidden_size is not None:
            self.hidden = config.hidden_size
        else:
            assert config.param_budget is not None
            self.hidden = solve_hidden_size(
                self.task, config.cell, config.param_budget, layers=config.layers,
                **self.cell_options,
            )  # fmt: skip
        self.maximize = self.task.direction == "maximize"
        show = sys.stderr.isatty() if progress is None else progress
        self.progress = _Progress(config.max_steps) if show else None

        random.seed(config.seed)
        torch.manual_seed(config.seed)
        self.model: SequenceModel | None = SequenceModel(
            self.task,
            config.cell,
            self.hidden,
            layers=config.layers,
            dropout=config.dropout,
            init_scale=config.init_scale,
            **self.cell_options,
        ).to(self.device)
        self.n_params = count_parameters(self.model)
        params = list(self.model.parameters())
        self.params = params
        if config.optimizer == "sgd":
            self.optimizer: torch.optim.Optimizer | None = torch.optim.SGD(params, lr=config.lr)
        else:
            self.optimizer = torch.optim.Adam(params, lr=config.lr)

        self.step = 0
        self.n_evals = 0
        self.bad_evals = 0
        self.best: float | None = None
        self.best_metrics: dict[str, float] = {}
        self.best_state: dict[str, torch.Tensor] | None = None
        self.history: list[tuple[int, dict[str, float]]] = []
        self.state: State | None = None
        self.train_tokens = 0
        self.train_time = 0.0
        self.elapsed_before = 0.0  # wall seconds spent before a resume
        self.elapsed_now = 0.0
        self.loss_sum = 0.0
        self.loss_count = 0
        self.stream: Iterator[Any] | None = None
        self.problem = ""

    # ----------------------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Drop every tensor this run holds so consecutive runs do not grow memory."""
        if self.progress is not None:
            self.progress.close()
        if self.stream is not None and hasattr(self.stream, "close"):
            self.stream.close()
        self.stream = None
        self.model = None
        self.optimizer = None
        self.params = []
        self.state = None
        self.best_state = None
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def execute(self, payload: dict[str, Any] | None, pause_at: int | None = None) -> TrainResult:
        cfg = self.cfg
        if payload is not None:
            self._restore(payload)
        if pause_at is not None and pause_at <= self.step < cfg.max_steps:
            return self._result("paused", f"paused at step {self.step}", {})
        self.stream = self.task.batches(
            "train", batch_size=cfg.batch_size, unroll=cfg.unroll, seed=cfg.seed
        )
        if self.step:
            # The train stream is a pure function of the seed: replaying it to the saved step
            # puts it exactly where the interrupted run was.
            next(itertools.islice(self.stream, self.step - 1, None))
        logger.info(
            "training %s on %s: hidden %d, %d layer(s), %d parameters, %s, %s lr %g%s",
            cfg.cell, cfg.task, self.hidden, cfg.layers, self.n_params, self.device,
            cfg.optimizer, self._lr(), f", resumed at step {self.step}" if self.step else "",
        )  # fmt: skip
        start = time.monotonic()
        reason, message = "finished", ""
        while self.step < cfg.max_steps:
            t0 = time.perf_counter()  # throughput includes producing the batch
            batch = next(self.stream)
            loss, norm = self._train_step(batch)
            self.train_time += time.perf_counter() - t0
            if not (math.isfinite(loss) and math.isfinite(norm)):
                reason = "diverged"
                what = "loss" if not math.isfinite(loss) else "gradient norm"
                message = self.problem or f"non-finite {what}"
                message += f" at step {self.step + 1}"
                break
            self.step += 1
            self.train_tokens += int(batch.tokens)
            self.loss_sum += loss
            self.loss_count += 1
            if self.progress is not None:
                self.progress.update(self.step, loss, self._lr(), self._tokens_per_s())
            out_of_time = (
                cfg.time_limit is not None
                and self.elapsed_before + time.monotonic() - start >= cfg.time_limit
            )
            if self.step % cfg.eval_interval == 0 or self.step == cfg.max_steps or out_of_time:
                stop = self._evaluate_and_report()
                if stop is not None:
                    reason, message = stop
                    break
                if out_of_time:
                    reason = "time_limit"
                    message = f"time limit {cfg.time_limit:g}s reached at step {self.step}"
                    break
                pause = pause_at is not None and pause_at <= self.step < cfg.max_steps
                if self.step < cfg.max_steps and self.on_checkpoint is not None:
                    if pause or self.n_evals % cfg.checkpoint_every == 0:
                        self.elapsed_now = self.elapsed_before + time.monotonic() - start
                        self.on_checkpoint(self._checkpoint_bytes())
                if pause:
                    reason, message = "paused", f"paused at step {self.step}"
                    break
        if self.progress is not None:
            self.progress.close()
        test: dict[str, float] = {}
        if reason not in ("pruned", "paused") and self.best_state is not None:
            assert self.model is not None
            self.model.load_state_dict(self.best_state)
            if cfg.eval_batches is not None:
                # The best weights were picked on the first eval_batches; report the whole split.
                full = self._evaluate("valid", whole=True)
                if math.isfinite(full[self.task.metric]):
                    self.best_metrics, self.best = full, full[self.task.metric]
            test = self._evaluate("test")
        if reason == "diverged":
            logger.info("run diverged: %s", message)
        logger.info(
            "%s after %d steps: valid %s=%s test %s=%s, %.0f tokens/s",
            reason, self.step, self.task.metric, self.best, self.task.metric,
            test.get(self.task.metric), self._tokens_per_s(),
        )  # fmt: skip
        return self._result(reason, message, test)

    def _result(self, reason: str, message: str, test: dict[str, float]) -> TrainResult:
        return TrainResult(
            stop_reason=reason,
            steps=self.step,
            valid_metrics=dict(self.best_metrics),
            test_metrics=test,
            best_valid=self.best,
            n_params=self.n_params,
            hidden_size=self.hidden,
            tokens_per_s=self._tokens_per_s(),
            device=str(self.device),
            history=list(self.history),
            message=message,
        )

    # ----------------------------------------------------------------------------- training
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.bf16:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _train_step(self, batch: Any) -> tuple[float, float]:
        """One truncated-BPTT window; returns (loss, pre-clip gradient norm) as floats."""
        assert self.model is not None and self.optimizer is not None
        batch = _to_device(batch, self.device)
        if batch.reset or self.state is None:
            state = None
        else:
            state = [tuple(t.detach() for t in layer) for layer in self.state]
        with self._autocast():
            output, new_state = self.model(batch.inputs, state)
            loss = training_loss(self.task, output.float(), batch, self.cfg.loss_reduction)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.clip_norm)
        # One host sync per step for both divergence checks.
        loss_value, norm_value = torch.stack([loss.detach().float(), norm.float()]).tolist()
        if math.isfinite(loss_value) and math.isfinite(norm_value):
            try:
                self.optimizer.step()
            except RuntimeError as exc:
                # An astronomically large learning rate overflows inside the optimizer.
                if "overflow" not in str(exc):
                    raise
                self.problem = f"optimizer step overflowed ({exc})"
                return loss_value, math.inf
            self.state = new_state if self.task.stateful else None
        return loss_value, norm_value

    def _lr(self) -> float:
        assert self.optimizer is not None
        return float(self.optimizer.param_groups[0]["lr"])

    def _set_lr(self, lr: float) -> None:
        assert self.optimizer is not None
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _tokens_per_s(self) -> float:
        return self.train_tokens / self.train_time if self.train_time > 0 else 0.0

    # ----------------------------------------------------------------------------- evaluation
    def _evaluate(self, split: str, *, whole: bool = False) -> dict[str, float]:
        """Metrics on ``split``: the first ``eval_batches`` of valid unless ``whole``; all of
        test."""
        assert self.model is not None
        model = self.model
        model.eval()
        totals: dict[str, float] = {}
        state: State | None = None
        limit = self.cfg.eval_batches if split == "valid" and not whole else None
        batches = self.task.batches(split, batch_size=self.cfg.batch_size, unroll=self.cfg.unroll)
        try:
            with torch.inference_mode(), self._autocast():
                for batch in itertools.islice(batches, limit):
                    batch = _to_device(batch, self.device)
                    output, state = model(batch.inputs, None if batch.reset else state)
                    for key, value in self.task.batch_stats(output.float(), batch).items():
                        totals[key] = totals.get(key, 0.0) + float(value)
        finally:
            if hasattr(batches, "close"):
                batches.close()
            model.train()
        return {k: float(v) for k, v in self.task.summarize(totals).items()}

    def _evaluate_and_report(self) -> tuple[str, str] | None:
        """Evaluate on valid, update best and lr, call on_eval; a stop reason or None."""
        metrics = self._evaluate("valid")
        self.n_evals += 1
        value = metrics[self.task.metric]
        if not math.isfinite(value):
            return "diverged", f"non-finite valid {self.task.metric} at step {self.step}"
        if self.best is None or (value > self.best if self.maximize else value < self.best):
            assert self.model is not None
            self.best = value
            self.best_metrics = dict(metrics)
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.bad_evals = 0
        else:
            self.bad_evals += 1
            if self.bad_evals >= self.cfg.patience:
                self._set_lr(self._lr() * self.cfg.lr_decay)
                self.bad_evals = 0
                logger.debug("valid %s did not improve: lr now %g", self.task.metric, self._lr())
        record = dict(metrics)
        record["train_loss"] = self.loss_sum / max(1, self.loss_count)
        record["lr"] = self._lr()
        self.loss_sum, self.loss_count = 0.0, 0
        self.history.append((self.step, record))
        logger.debug("step %d: %s", self.step, record)
        if self.on_eval is not None and self.on_eval(self.step, dict(record)):
            return "pruned", f"stopped by on_eval at step {self.step}"
        return None

    # ----------------------------------------------------------------------------- checkpoints
    def _checkpoint_bytes(self) -> bytes:
        assert self.model is not None and self.optimizer is not None
        state = None
        if self.state is not None:
            state = [tuple(t.detach().cpu() for t in layer) for layer in self.state]
        return _checkpoint.dumps(
            {
                "config": self.cfg.to_dict(),
                "step": self.step,
                "n_evals": self.n_evals,
                "bad_evals": self.bad_evals,
                "best": self.best,
                "best_metrics": self.best_metrics,
                "best_state": _cpu(self.best_state),
                "history": self.history,
                "model": _cpu(self.model.state_dict()),
                "optimizer": self.optimizer.state_dict(),
                "carried_state": state,
                "train_tokens": self.train_tokens,
                "train_time": self.train_time,
                "elapsed": self.elapsed_now,
                "loss_sum": self.loss_sum,
                "loss_count": self.loss_count,
                "rng": _checkpoint.rng_state(),
            }
        )

    def _restore(self, p: dict[str, Any]) -> None:
        assert self.model is not None and self.optimizer is not None
        self.model.load_state_dict(p["model"])
        self.optimizer.load_state_dict(p["optimizer"])
        self.step = int(p["step"])
        self.n_evals = int(p["n_evals"])
        self.bad_evals = int(p["bad_evals"])
        self.best = p["best"]
        self.best_metrics = dict(p["best_metrics"])
        best_state = p["best_state"]
        if best_state is not None:
            best_state = {k: v.to(self.device) for k, v in best_state.items()}
        self.best_state = best_state
        self.history = [(int(s), dict(m)) for s, m in p["history"]]
        carried = p["carried_state"]
        if carried is not None:
            carried = [tuple(t.to(self.device) for t in layer) for layer in carried]
        self.state = carried
        self.train_tokens = int(p["train_tokens"])
        self.train_time = float(p["train_time"])
        self.elapsed_before = float(p["elapsed"])
        self.loss_sum = float(p["loss_sum"])
        self.loss_count = int(p["loss_count"])
        _checkpoint.set_rng_state(p["rng"])


def _cpu(state: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor] | None:
    if state is None:
        return None
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def _to_device(batch: Any, device: torch.device) -> Any:
    if device.type == "cpu":
        return batch
    if hasattr(batch, "to"):
        return batch.to(device, non_blocking=True)
    moved = {
        name: getattr(batch, name).to(device, non_blocking=True)
        for name in ("inputs", "targets", "mask")
    }
    if dataclasses.is_dataclass(batch):
        return dataclasses.replace(batch, **moved)
    if hasattr(batch, "_replace"):
        return batch._replace(**moved)
    clone = copy.copy(batch)
    for name, value in moved.items():
        setattr(clone, name, value)
    return clone


class _Progress:
    """One line on stderr, rewritten in place with a carriage return, at most twice a second."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.last = 0.0
        self.written = False

    def update(self, step: int, loss: float, lr: float, tokens_per_s: float) -> None:
        now = time.monotonic()
        if now - self.last < 0.5 and step < self.total:
            return
        self.last = now
        sys.stderr.write(
            f"\rstep {step}/{self.total}  loss {loss:.4f}  lr {lr:.4g}  {tokens_per_s:,.0f} tok/s "
        )
        sys.stderr.flush()
        self.written = True

    def close(self) -> None:
        if self.written:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.written = False
