"""One evaluation of a search run: the paired setting it trains on (drawn from the run, the
task and the setting number only, so the same for every genome) and the training itself."""

from __future__ import annotations

import logging
import math

import optuna

from rnnopt.errors import ConfigError
from rnnopt.evolve.config import SearchConfig
from rnnopt.evolve.genome import Genome
from rnnopt.hpo.paired import setting_rng

__all__ = ["enqueue", "evaluate"]

logger = logging.getLogger(__name__)

# The value of an evaluation that failed: the worst of an accuracy (maximize) and of a
# minimized metric.
_WORST = {False: 0.0, True: math.inf}


def enqueue(
    evals: optuna.Study,
    cfg: SearchConfig,
    slot: str,
    step: int,
    genome: Genome,
    stage: int,
    task: str,
    setting: int,
) -> None:
    """Queue the evaluation of ``genome`` on ``task``'s setting number ``setting``."""
    rng = setting_rng(cfg.run, cfg.seed, task, setting)
    params = {name: rng.choice(values) for name, values in cfg.grid().items()}
    params["layers"] = rng.choice(cfg.layers)
    evals.enqueue_trial(
        params,
        user_attrs={
            "slot": slot,
            "setting": setting,
            "step": step,
            "genome": genome.text,
            "cell": genome.cell_name,
            "task": task,
            "stage": stage,
            "train_seed": rng.randrange(2**31),
        },
    )


def evaluate(trial: optuna.Trial, cfg: SearchConfig) -> tuple[float, str]:
    """Train one claimed evaluation trial: its parameters, attributes, and (value, stop
    reason). A genome that cannot be trained scores the worst value on this setting."""
    from rnnopt.evolve.cell import register_genome
    from rnnopt.train import TrainConfig, train

    attrs = trial.user_attrs
    params = {
        name: trial.suggest_categorical(name, list(values)) for name, values in cfg.grid().items()
    }
    params["layers"] = trial.suggest_categorical("layers", list(cfg.layers))
    metric = cfg.metric_of(attrs["task"])
    value, reason = _WORST[attrs["task"] in cfg.minimize], ""
    try:
        name = register_genome(attrs["genome"])
        max_steps = cfg.steps_for(attrs["task"])
        interval = cfg.eval_interval or max(1, max_steps // 4)
        tc = TrainConfig(
            task=attrs["task"],
            task_options=cfg.options_for(attrs["task"]),
            optimizer=cfg.optimizer,
            patience=cfg.patience,
            cell=name,
            hidden_size=cfg.hidden_size,
            layers=params["layers"],
            lr=params["lr"],
            clip_norm=params["clip_norm"],
            init_scale=params["init_scale"],
            max_steps=max_steps,
            eval_interval=min(interval, max_steps),
            eval_batches=cfg.eval_batches,
            batch_size=cfg.batch_size,
            unroll=cfg.unroll,
            seed=attrs["train_seed"],
            device=cfg.device,
            data_dir=cfg.data_dir,
        )

        def on_eval(step: int, metrics: dict[str, float]) -> None:
            v = metrics.get(metric)
            if v is not None and math.isfinite(v):
                trial.report(float(v), step)

        result = train(tc, on_eval=on_eval, progress=False)  # workers log; no \r lines
        stop = result.stop_reason
        if result.best_valid is not None and math.isfinite(result.best_valid):
            value = float(result.best_valid)
        trial.set_user_attr("n_params", result.n_params)
        trial.set_user_attr("tokens_per_s", result.tokens_per_s)
        trial.set_user_attr("steps", result.steps)
        reason = result.message
    except (ConfigError, RuntimeError, FloatingPointError) as exc:
        # A genome that cannot be trained scores 0 on this setting; the search goes on.
        stop, reason = "failed", f"{type(exc).__name__}: {exc}"
        logger.warning("evaluation %s failed: %s", attrs.get("slot"), reason)
    trial.set_user_attr("stop_reason", stop)
    if reason:
        trial.set_user_attr("reason", reason[:500])
    return value, stop
