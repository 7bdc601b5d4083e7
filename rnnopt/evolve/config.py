"""What a search run does (``SearchConfig``, ``Confirm``), and the settings stored on its
studies and checked again on resume."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna

from rnnopt import paper, schema
from rnnopt.attrs import json_value
from rnnopt.errors import ConfigError
from rnnopt.evolve.known import KNOWN_TEXTS, known
from rnnopt.train import OPTIMIZERS

__all__ = ["ADAM_LR", "GRID", "Confirm", "SearchConfig", "check_identity", "study_names"]

# The paper's hyperparameter grids (layers are an option of the run).
GRID: dict[str, tuple[Any, ...]] = {k: paper.GRIDS[k] for k in ("lr", "clip_norm", "init_scale")}
# With --optimizer adam (not the paper's: plain SGD needs far longer runs than a CPU affords)
# only the learning-rate grid changes.
ADAM_LR = (0.001, 0.002, 0.003, 0.005, 0.01)
PARENTS = ("all", "passing")
SEEDS = ("lstm", "gru")


def study_names(run: str) -> tuple[str, str]:
    """(genomes study, evaluations study) of a search run."""
    return f"evolve/{run}/genomes", f"evolve/{run}/evaluations"


@dataclass(frozen=True)
class SearchConfig:
    """What a search run does; stored on the studies and checked again on resume."""

    tasks: tuple[str, ...] = ("memorize", "arith", "xml")
    run: str = "default"
    generations: int = 100
    settings: int = 20
    population: int = 100
    hidden_size: int = 64
    layers: tuple[int, ...] = (1,)
    max_steps: int = 2000
    task_steps: tuple[tuple[str, int], ...] = ()  # (task, steps) instead of max_steps
    eval_interval: int | None = None
    eval_batches: int | None = None
    batch_size: int = 20
    unroll: int = 35
    threshold: float = 0.9
    reeval_fraction: float = 0.2
    references: tuple[str, ...] = ("mut1", "mut2", "mut3")
    # The known cells the population starts from (the paper's: LSTM and GRU); the GRU is the
    # yardstick of every score, so it is always one of them.
    seeds: tuple[str, ...] = SEEDS
    seed: int = 0
    device: str = "cpu"
    optimizer: str = "sgd"
    patience: int = 1
    task_options: tuple[tuple[str, str, Any], ...] = ()  # (task, option, value)
    # Parents drawn from every member (the paper's), or only from members whose score passes
    # the filters' threshold: a tiny population is half LSTM, whose children cannot pass.
    parents: str = "all"
    data_dir: str | None = field(default=None, compare=False)
    # Filled from the tasks themselves, not options: (task, metric, direction) of each task,
    # and (task, identity JSON) of each task that reads the user's files (rnnopt.userdata).
    metrics: tuple[tuple[str, str, str], ...] = field(default=(), init=False, compare=False)
    data: tuple[tuple[str, str], ...] = field(default=(), init=False, compare=False)

    def __post_init__(self) -> None:
        import rnnopt.tasks
        from rnnopt import userdata

        if not self.tasks:
            raise ConfigError("--tasks needs at least one task, e.g. memorize,arith,xml")
        metrics, data = [], []
        for t in self.tasks:
            if t not in rnnopt.tasks.names():
                raise ConfigError(f"unknown task {t!r}; valid: {', '.join(rnnopt.tasks.names())}")
            task = rnnopt.tasks.get(t, data_dir=self.data_dir, **self.options_for(t))
            metrics.append((t, task.metric, task.direction))
            if (ident := userdata.identity(task)) is not None:
                data.append((t, ident))
        object.__setattr__(self, "metrics", tuple(metrics))
        object.__setattr__(self, "data", tuple(data))
        for t, steps in self.task_steps:
            if t not in self.tasks:
                raise ConfigError(
                    f"--task-steps names {t!r}, which is not in --tasks; allowed: "
                    f"{', '.join(self.tasks)}"
                )
            if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
                raise ConfigError(f"--task-steps {t}={steps!r}: steps must be a positive integer")
        for t, key, _ in self.task_options:
            if t not in self.tasks:
                raise ConfigError(
                    f"task option {t}.{key} names a task not in --tasks; allowed: "
                    f"{', '.join(self.tasks)}"
                )
        if self.parents not in PARENTS:
            raise ConfigError(f"unknown --parents {self.parents!r}; allowed: {', '.join(PARENTS)}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"unknown optimizer {self.optimizer!r}; allowed: {', '.join(OPTIMIZERS)}"
            )
        if len(set(self.tasks)) != len(self.tasks):
            raise ConfigError(f"--tasks has a repeated task: {','.join(self.tasks)}")
        for s in self.seeds:
            if s not in KNOWN_TEXTS:
                raise ConfigError(f"unknown seed cell {s!r}; allowed: {', '.join(KNOWN_TEXTS)}")
        if "gru" not in self.seeds:
            raise ConfigError(
                f"--seeds {','.join(self.seeds)} lacks gru, the cell every score is relative to"
            )
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"--seeds has a repeated cell: {','.join(self.seeds)}")
        for r in self.references:
            if r not in KNOWN_TEXTS or r in self.seeds:
                allowed = ", ".join(k for k in KNOWN_TEXTS if k not in self.seeds)
                raise ConfigError(f"unknown reference cell {r!r}; allowed: {allowed}")
        for name in (
            "generations",
            "settings",
            "population",
            "hidden_size",
            "max_steps",
            "batch_size",
            "unroll",
            "patience",
        ):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < (name != "generations")
            ):
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not self.run or "/" in self.run:
            raise ConfigError(f"run name must be non-empty without '/', got {self.run!r}")
        if not 0 < self.threshold <= 1:
            raise ConfigError(f"threshold must be in (0, 1], got {self.threshold!r}")
        if not 0 <= self.reeval_fraction <= 1:
            raise ConfigError(f"reeval_fraction must be in [0, 1], got {self.reeval_fraction!r}")
        if not self.layers or any(n not in paper.GRIDS["layers"] for n in self.layers):
            raise ConfigError(
                f"layers must be a subset of 1-{max(paper.GRIDS['layers'])}, got {self.layers!r}"
            )

    def steps_for(self, task: str) -> int:
        """Training steps of one evaluation on ``task``."""
        return dict(self.task_steps).get(task, self.max_steps)

    def options_for(self, task: str) -> dict[str, Any]:
        """The task options this run sets for ``task``."""
        return {key: value for t, key, value in self.task_options if t == task}

    @property
    def minimize(self) -> frozenset[str]:
        """The tasks scored by a metric where lower is better (the GRU / genome ratio)."""
        return frozenset(t for t, _, direction in self.metrics if direction == "minimize")

    def metric_of(self, task: str) -> str:
        """The metric a task's evaluations are scored by (its primary metric)."""
        return next(m for t, m, _ in self.metrics if t == task)

    def grid(self) -> dict[str, tuple[Any, ...]]:
        """The hyperparameter grids settings are drawn from."""
        return GRID if self.optimizer == "sgd" else {**GRID, "lr": ADAM_LR}

    @classmethod
    def from_identity(cls, stored: dict[str, Any], **overrides: Any) -> SearchConfig:
        """The config a run was stored with (``identity()``), e.g. to confirm its genomes."""
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        d = {k: v for k, v in stored.items() if k in names}
        for k in ("tasks", "layers", "references", "seeds"):
            if k in d:
                d[k] = tuple(d[k])
        for k in ("task_steps", "task_options"):
            if k in d:
                d[k] = tuple(tuple(v) for v in d[k])
        return cls(**{**d, **overrides})

    def identity(self) -> dict[str, Any]:
        """The settings a resumed or cooperating worker must share: all that makes evaluations
        comparable (not the budget, the device or how parents are drawn)."""
        d = asdict(self)
        for k in ("generations", "data_dir", "device", "parents", "metrics", "data"):
            d.pop(k)
        d["settings_scheme"] = "paired"  # runs from before paired settings cannot be resumed
        return json.loads(json.dumps(d))


_DEFAULTS: dict[str, Any] = json.loads(
    json.dumps(
        {
            f.name: f.default
            for f in dataclasses.fields(SearchConfig)
            if f.default is not dataclasses.MISSING
        }
    )
)


@dataclass(frozen=True)
class Confirm:
    """Confirmation rounds instead of search steps: each genome in ``genomes`` is re-evaluated
    on new settings (the GRU beside it) until it has ``rounds`` confirmation steps."""

    genomes: tuple[str, ...]
    rounds: int

    def __post_init__(self) -> None:
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int) or self.rounds < 1:
            raise ConfigError(f"--rounds must be a positive integer, got {self.rounds!r}")
        if not self.genomes:
            raise ConfigError("nothing to confirm: name genomes or cells, or use --top")
        if known("gru").text in self.genomes:
            raise ConfigError("the GRU is the yardstick; it trains beside every confirmed genome")


def _study_metric(config: SearchConfig, genomes: bool) -> tuple[str, str]:
    """(rnnopt.metric, rnnopt.direction) of a run's study: accuracy for a run on accuracy tasks
    (the paper's); else the genomes' score, and the evaluations' metric (names joined when the
    tasks have several, direction ``mixed``)."""
    metrics = sorted({m for _, m, _ in config.metrics})
    directions = {d for _, _, d in config.metrics}
    if metrics == ["accuracy"]:
        return "accuracy", "maximize"
    if genomes:
        return "score", "maximize"
    return ",".join(metrics), directions.pop() if len(directions) == 1 else "mixed"


def check_identity(config: SearchConfig, genomes: optuna.Study, evals: optuna.Study) -> None:
    """Store the run's identity on new studies; ConfigError when a stored run differs,
    StorageError when a task of it was evaluated on other data than it is given now."""
    ident = json.loads(json.dumps(config.identity(), sort_keys=True))
    data = {t: json.loads(value) for t, value in config.data}
    for study in (genomes, evals):
        stored = json_value(study.user_attrs.get(schema.EVOLVE))
        if stored is None:
            study.set_user_attr(schema.EVOLVE, ident)
            study.set_user_attr(schema.MODE, schema.EVOLVE_MODE)
            study.set_user_attr(schema.EVOLVE_TASKS, ",".join(config.tasks))
            metric, direction = _study_metric(config, study is genomes)
            study.set_user_attr(schema.METRIC, metric)
            study.set_user_attr(schema.DIRECTION, direction)
            study.set_user_attr(
                schema.EVOLVE_METRICS,
                {t: {"metric": m, "direction": d} for t, m, d in config.metrics},
            )
            if data:
                study.set_user_attr(schema.DATA, data)
            continue
        _check_data(config, json_value(study.user_attrs.get(schema.DATA)) or {}, data)
        if stored != ident:
            old, new = stored, config.identity()
            # A run stored before an option existed resumes with that option at its default.
            diff = sorted(
                k
                for k in old.keys() | new.keys()
                if old.get(k, _DEFAULTS.get(k)) != new.get(k, _DEFAULTS.get(k))
            )
            if not diff:
                continue
            raise ConfigError(
                f"run {config.run!r} exists with different settings ({', '.join(diff)}); "
                "use the same options to resume, or a new --run name"
            )


def _check_data(config: SearchConfig, stored: dict[str, Any], data: dict[str, Any]) -> None:
    """StorageError when a task of the run was evaluated on other data than it is given now."""
    from rnnopt import userdata

    hint = "start a new --run"
    for task in sorted(stored.keys() | data.keys()):
        now = data.get(task)
        userdata.check_resume(
            f"evolve/{config.run} ({task})",
            stored.get(task, {}),  # none stored: the task read no files then
            None if now is None else json.dumps(now),
            hint,
        )
