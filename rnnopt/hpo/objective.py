"""The thin Optuna adapter: trial -> TrainConfig -> train -> report / prune -> user attributes.

Stop reasons and trial states:

- ``finished`` / ``time_limit``: COMPLETE; the value is the best validation metric of the run.
- ``pruned`` (the study's pruner): PRUNED, ``reason`` says at which step and value.
- ``diverged`` (non-finite loss or metric): PRUNED, not FAIL, so that samplers learn the
  region is bad and the trial still counts toward ``--n-trials``; ``reason`` holds the
  trainer's message.
- an exception in training: FAIL with ``stop_reason=failed`` and the error as ``reason``.

Checkpoints go to the artifact store after each checkpointing evaluation, one artifact per
trial overwritten in place (atomically, see ``storage.artifact_store``); the trial's user
attributes ``checkpoint_artifact`` / ``checkpoint_step`` point at it and its step. A trial that
Optuna re-queues after its worker died (``RetryHeartbeatStaleTrialCallback``) inherits those
attributes from its crashed parent and resumes from that checkpoint.
"""

from __future__ import annotations

import io
import logging
import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna

from rnnopt.hpo import confirm as confirm_mod
from rnnopt.hpo import space as space_mod

__all__ = [
    "make_objective", "mark_failed", "mark_stopped", "pass_gate", "retried_from", "train_settings"
]

# Named as before the move into hpo/: log lines read `rnnopt.objective: trial 3 of ...`.
logger = logging.getLogger("rnnopt.objective")

CHECKPOINT_ATTR = "checkpoint_artifact"
CHECKPOINT_OWNER_ATTR = "checkpoint_trial"  # the trial whose run wrote checkpoint_artifact
CHECKPOINT_STEP_ATTR = "checkpoint_step"
RESUMED_ATTR = "resumed_from_step"


def train_settings(
    values: Mapping[str, Any],
    cell: str,
    cell_spec: Any,
    cell_options: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split suggested values into TrainConfig keys and cell options (the gate flags and the
    cell's own searchable options).

    ``cell_options`` are the study's fixed ones; ``forget_bias`` is passed only when the cell,
    with those options and this trial's gates, has a forget gate.
    """
    config: dict[str, Any] = {}
    options: dict[str, Any] = {
        name: bool(value)
        for name, value in values.items()
        if name in space_mod.GATE_NAMES and name in cell_spec.gates
    }
    gates = dict(options)
    for name, value in values.items():
        if name in space_mod.GATE_NAMES:
            continue
        if name == "forget_bias":
            if cell_spec.forget_bias_with({**(cell_options or {}), **gates}):
                config[name] = float(value)
        elif name not in space_mod.SPACE_PARAMS:  # a cell's own searchable option
            if name in cell_spec.searchable:
                options[name] = value
        elif name in ("layers", "hidden_size", "param_budget"):
            config[name] = int(value)
        else:
            config[name] = float(value)
    return config, options


def make_objective(
    *,
    task: str,
    cell: str | None,
    space: Mapping[str, Any],
    base: Mapping[str, Any],
    metric: str,
    artifact_store: Any,
    seed: int = 0,
    gates: Sequence[int] = (),
) -> Callable[[optuna.trial.Trial], float]:
    """Return ``objective(trial) -> float`` for one study.

    ``cell`` is None in search mode (the space then holds a ``cell`` parameter). ``base`` holds
    the fixed TrainConfig keys (max_steps, eval_interval, batch_size, device, data_dir, ...).
    The training seed is ``seed + n`` where ``n`` is the number of the original trial, so a
    retried trial trains the same model as its crashed parent; a confirmation trial trains with
    its ``confirm_seed`` attribute and is never pruned.

    ``gates``: the staged filter's steps (rnnopt/hpo/staged.py). A search trial stops at the
    next gate it has not passed and raises ``staged.Parked``; once the gate lets it through it
    is queued again (WAITING), and whichever worker claims it resumes it from its checkpoint.
    """
    from rnnopt import cells as cell_registry
    from rnnopt.hpo import staged
    from rnnopt.train import TrainConfig, train

    def objective(trial: optuna.trial.Trial) -> float:
        chosen, values = space_mod.suggest(trial, space)
        cell_name = chosen or cell
        assert cell_name is not None
        spec = cell_registry.spec(cell_name)
        extra, gate_options = train_settings(values, cell_name, spec, base.get("cell_options", {}))
        config_dict = dict(base)
        config_dict.update(extra)
        config_dict["cell_options"] = {**dict(base.get("cell_options", {})), **gate_options}
        origin = retried_from(trial)
        run_seed = seed + (trial.number if origin is None else origin)
        # A confirmation trial (rnnopt/hpo/confirm.py) carries its seed and runs unpruned.
        confirming = confirm_mod.is_confirmation(trial)
        if confirming:
            run_seed = int(trial.user_attrs[confirm_mod.SEED_ATTR])
        config_dict.update(task=task, cell=cell_name, seed=run_seed)
        config = TrainConfig(**config_dict)
        trial.set_user_attr("cell", cell_name)

        resume: bytes | None = None
        artifact_id = trial.user_attrs.get(CHECKPOINT_ATTR)
        if artifact_id:
            resume = _download(artifact_store, artifact_id)
            if resume is not None:
                trial.set_user_attr(RESUMED_ATTR, trial.user_attrs.get(CHECKPOINT_STEP_ATTR))
                logger.info(
                    "trial %d resumes trial %s from its checkpoint at step %s",
                    trial.number,
                    trial.number if origin is None else origin,
                    trial.user_attrs.get(CHECKPOINT_STEP_ATTR),
                )
                _carry_curve(trial, int(trial.user_attrs.get(CHECKPOINT_STEP_ATTR) or 0))

        state: dict[str, Any] = {
            "step": 0, "reason": None,
            # A trial that resumes its own checkpoint (the staged filter let it through a gate)
            # overwrites it; a retry's first checkpoint is an artifact of its own.
            "artifact": artifact_id
            if artifact_id and trial.user_attrs.get(CHECKPOINT_OWNER_ATTR) == trial.number
            else None,
        }
        passed = int(trial.user_attrs.get(staged.GATES_PASSED_ATTR, 0))
        pause_at = gates[passed] if not confirming and passed < len(gates) else None

        def on_eval(step: int, metrics: dict[str, float]) -> bool:
            state["step"] = step
            value = metrics.get(metric)
            if value is None or not math.isfinite(value):
                return False  # the trainer itself stops diverged runs
            logger.debug("trial %d of %s: step %d, %s %.4g", trial.number,
                         trial.study.study_name, step, metric, value)
            trial.report(float(value), step)
            if not confirming and trial.should_prune():
                state["reason"] = f"pruned by the pruner at step {step} ({metric}={value:.4g})"
                return True
            return False

        def on_checkpoint(blob: bytes) -> None:
            # One artifact per trial, overwritten in place under a stable id: every artifact
            # record that optuna-dashboard lists has its file (a retried twin's first
            # checkpoint is a new artifact of its own; its parent's stays for the parent).
            own = state.get("artifact")
            if own is None:
                state["artifact"] = _upload(artifact_store, trial, blob)
                trial.set_user_attr(CHECKPOINT_ATTR, state["artifact"])
                trial.set_user_attr(CHECKPOINT_OWNER_ATTR, trial.number)
            else:
                artifact_store.write(own, io.BytesIO(blob))
            trial.set_user_attr(CHECKPOINT_STEP_ATTR, state["step"])

        try:
            # The study shows one progress display for the whole run; the trainer's own
            # per-step line would interleave between worker processes.
            result = train(config, on_eval=on_eval, on_checkpoint=on_checkpoint, resume=resume,
                           progress=False, pause_at=pause_at)
        except Exception as exc:
            mark_failed(trial, f"{type(exc).__name__}: {exc}")
            raise
        if result.stop_reason == "paused":
            trial.set_user_attr("steps", int(result.steps))
            trial.set_user_attr(staged.GATE_VALUE_ATTR, [int(result.steps), result.best_valid])
            raise staged.Parked(result.steps)
        _record(trial, result, metric)
        if result.stop_reason == "pruned":
            reason = state["reason"] or result.message or "pruned"
            trial.set_user_attr("reason", reason)
            raise optuna.TrialPruned(reason)
        if result.stop_reason == "diverged":
            reason = f"diverged: {result.message}" if result.message else "diverged"
            trial.set_user_attr("reason", reason)
            raise optuna.TrialPruned(reason)
        value = result.best_valid
        if value is None or not math.isfinite(value):
            value = result.valid_metrics.get(metric) if result.valid_metrics else None
        if value is None or not math.isfinite(value):
            trial.set_user_attr("reason", "no finite validation metric")
            raise optuna.TrialPruned("no finite validation metric")
        return float(value)

    return objective


def retried_from(trial: optuna.trial.Trial) -> int | None:
    """Number of the original trial this one retries (the ``failed_trial`` system attribute
    that ``RetryHeartbeatStaleTrialCallback`` writes), or None."""
    from rnnopt.storage.compat import stored_trial

    return stored_trial(trial).system_attrs.get("failed_trial")


def _carry_curve(trial: optuna.trial.Trial, upto: int) -> None:
    """A retry resumed from its parent's checkpoint reports the parent's evaluations up to it,
    so that its curve (dashboard, pruners, the staged filter) starts at the first step."""
    from rnnopt.storage.compat import stored_trial

    stored = stored_trial(trial)
    history = stored.system_attrs.get("retry_history")
    if not history:
        return
    have = stored.intermediate_values
    parent = next((t for t in trial.study.get_trials(deepcopy=False) if t.number == history[-1]),
                  None)  # fmt: skip
    for step, value in sorted(parent.intermediate_values.items() if parent else ()):
        if step <= upto and step not in have:
            trial.report(value, step)


def pass_gate(trial: optuna.trial.Trial, gate: int) -> None:
    """Let a trial parked at ``gate`` (0-based) of the staged filter (rnnopt/hpo/staged.py)
    through: it will run to the next one."""
    from rnnopt.hpo import staged

    trial.set_user_attr(staged.GATES_PASSED_ATTR, gate + 1)


def mark_failed(trial: optuna.trial.Trial, reason: str) -> None:
    """Record why a trial failed (``stop_reason=failed``, ``reason`` cut to 1,000 characters)."""
    mark_stopped(trial, "failed", reason)


def mark_stopped(trial: optuna.trial.Trial, stop_reason: str, reason: str) -> None:
    """Record how and why a trial stopped outside training (``stop_reason`` one of
    ``schema.STOP_REASONS``; ``reason`` cut to 1,000 characters)."""
    trial.set_user_attr("stop_reason", stop_reason)
    trial.set_user_attr("reason", reason[:1000])


def _record(trial: optuna.trial.Trial, result: Any, metric: str) -> None:
    def finite(x: Any) -> float | None:
        return float(x) if isinstance(x, int | float) and math.isfinite(x) else None

    attrs = {
        "n_params": int(result.n_params),
        "hidden_size": int(result.hidden_size),
        "tokens_per_s": finite(result.tokens_per_s),
        "device": str(result.device),
        "stop_reason": str(result.stop_reason),
        "steps": int(result.steps),
        "valid_metric": finite((result.valid_metrics or {}).get(metric)),
        "test_metric": finite((result.test_metrics or {}).get(metric)),
    }
    if result.message and result.stop_reason != "finished":
        attrs["reason"] = str(result.message)[:1000]
    for key, value in attrs.items():
        trial.set_user_attr(key, value)


def _upload(store: Any, trial: optuna.trial.Trial, blob: bytes) -> str:
    from optuna.artifacts import upload_artifact

    fd, path = tempfile.mkstemp(prefix=f"rnnopt-trial{trial.number}-", suffix=".pt")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
        return upload_artifact(
            artifact_store=store,
            file_path=path,
            study_or_trial=trial,
            mimetype="application/octet-stream",
        )
    finally:
        os.unlink(path)


def _download(store: Any, artifact_id: str) -> bytes | None:
    try:
        with store.open_reader(artifact_id) as fh:
            return fh.read()
    except Exception as exc:
        logger.warning(
            "checkpoint %s not readable (%s); the retry starts from scratch", artifact_id, exc
        )
        return None
