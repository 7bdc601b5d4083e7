"""The paper's architecture search as two Optuna studies that any number of workers share.

Layout (``<run>`` from ``--run``):

- ``evolve/<run>/genomes``: one trial per search *step*. User attributes ``step`` (the step id,
  kept by retries), ``kind`` (``seed``, ``reference``, ``mutant``, ``reeval`` or ``confirm``),
  ``genome`` (canonical text), ``cell`` (registered name), ``parent``, ``mutation``,
  ``equations``, ``round``; when done ``status`` (``member``, ``rejected``, ``duplicate``,
  ``evaluated``), ``rejected_at`` and the value = the genome's score, min over tasks of (best
  accuracy / GRU's best accuracy; GRU's best / the genome's best on a task whose metric is
  better lower, ``SearchConfig.minimize``).
- ``evolve/<run>/evaluations``: one trial per (genome, task, hyperparameter setting), value =
  the best validation value of the task's primary metric (+inf when a minimized one failed);
  parameters ``lr``, ``clip_norm``, ``init_scale``, ``layers``; user
  attributes ``slot`` (``<step>/<task>/<k>``, or ``gru/<task>/<setting>`` for the GRU beside
  a re-evaluation; unique per evaluation), ``setting``, ``genome``,
  ``cell``, ``task``, ``stage``, ``step``, ``train_seed``, ``stop_reason``, ``n_params``.

Settings are paired: setting number ``i`` of a task (its hyperparameters and training seed) is
the same for every genome, and a genome's ``r``-th step on a task (its ``round``) evaluates
settings ``r * settings`` to ``(r + 1) * settings - 1``. Scores and the staged filters compare a
genome with the GRU over the settings both were evaluated on (``known.paired_score``).

Coordination happens through Optuna's trial states only. The worker that holds a step trial
RUNNING is its only coordinator: it enqueues the step's evaluations (``enqueue_trial``) and
decides the staged filter. Every worker claims WAITING evaluations (WAITING -> RUNNING is atomic
in the storage), so no evaluation runs twice. Workers send heartbeats; a crashed worker's trials
go stale and are failed; a stale step is re-queued with its attributes (the next claimant resumes
it from the evaluations already stored) and a stale evaluation's slot is enqueued again by its
step's coordinator. All state is read back from the database.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import random
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from rnnopt import paper, schema
from rnnopt import storage as st
from rnnopt.attrs import json_value
from rnnopt.errors import ConfigError, StorageError
from rnnopt.evolve.genome import Genome, parse
from rnnopt.evolve.known import (
    KNOWN_TEXTS,
    Results,
    known,
    paired_best,
    paired_score,
    passes,
)
from rnnopt.evolve.mutate import mutate
from rnnopt.storage import compat
from rnnopt.train import OPTIMIZERS

__all__ = ["GRID", "Confirm", "Evolution", "SearchConfig", "run_worker", "study_names"]

logger = logging.getLogger(__name__)

# The paper's hyperparameter grids (layers are an option of the run).
GRID: dict[str, tuple[Any, ...]] = {
    k: paper.GRIDS[k] for k in ("lr", "clip_norm", "init_scale")
}
# With --optimizer adam (not the paper's: plain SGD needs far longer runs than a CPU affords)
# only the learning-rate grid changes.
ADAM_LR = (0.001, 0.002, 0.003, 0.005, 0.01)
PARENTS = ("all", "passing")
SEEDS = ("lstm", "gru")
LIVE = (TrialState.WAITING, TrialState.RUNNING)
# An evaluation that failed, and (genome, GRU) when nothing is shared: the worst value of an
# accuracy (maximize) and of a minimized metric.
_WORST = {False: 0.0, True: math.inf}
_NOTHING = {False: (0.0, math.inf), True: (math.inf, 0.0)}


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


def _setting_rng(*parts: object) -> random.Random:
    return random.Random(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest())


def _next_round(steps: list[FrozenTrial], evals: list[FrozenTrial], genome: str, n: int) -> int:
    """The round of ``genome``'s next step: after every earlier step's round, and one whose
    ``n`` settings it has not been evaluated on (the GRU also trains beside re-evaluations)."""
    rounds = [t.user_attrs.get("round", 0) for t in steps if t.user_attrs.get("genome") == genome]
    have = {t.user_attrs.get("setting") for t in evals if t.user_attrs.get("genome") == genome}
    r = max(rounds, default=-1) + 1
    while any(r * n + k in have for k in range(n)):
        r += 1
    return r


def collect_results(trials: Iterable[FrozenTrial]) -> dict[str, Results]:
    """genome text -> task -> setting index -> accuracy, from finished evaluation trials."""
    out: dict[str, Results] = defaultdict(lambda: defaultdict(dict))
    for t in trials:
        g, task = t.user_attrs["genome"], t.user_attrs["task"]
        out[g][task][int(t.user_attrs["setting"])] = float(t.value)
    return out


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


def _retry_steps(study: optuna.Study, trial: FrozenTrial) -> None:
    """Heartbeat callback: re-queue a crashed worker's step, not its evaluations (their
    coordinator enqueues missing slots itself, so they are never queued twice)."""
    if study.study_name.endswith("/genomes"):
        st.requeue(study, trial, max_retry=None)


def _open_storage(url: str, *, heartbeat: int = 30, grace: int | None = None) -> RDBStorage:
    """An RDBStorage with heartbeats whose stale steps are re-queued with their attributes;
    StorageError (password masked) for a bad or unreachable URL."""
    url = st.normalize_url(url)
    st.check_url(url)  # writes nothing: a bad URL leaves every database as it was
    return st.open_storage(
        url,
        heartbeat_interval=heartbeat,
        grace_period=grace if grace is not None else 4 * heartbeat,
        on_stale=_retry_steps,
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


class Evolution:
    """One worker of a search run. Several (processes, machines) may share a storage URL."""

    def __init__(
        self,
        storage: str | RDBStorage,
        config: SearchConfig,
        *,
        heartbeat: int = 30,
        grace: int | None = None,
        poll: float = 1.0,
        worker: int = 0,
        confirm: Confirm | None = None,
    ) -> None:
        self.config = config
        self.confirm = confirm
        self.storage = (
            _open_storage(storage, heartbeat=heartbeat, grace=grace)
            if isinstance(storage, str)
            else storage
        )
        self.poll = poll
        self.worker = worker
        gname, ename = study_names(config.run)
        try:
            self.genomes = optuna.create_study(
                study_name=gname, storage=self.storage, direction="maximize", load_if_exists=True
            )
            self.evals = optuna.create_study(
                study_name=ename, storage=self.storage, direction="maximize", load_if_exists=True
            )
        except Exception as exc:
            raise StorageError(
                f"cannot open the search studies: {type(exc).__name__}: {st.scrub(str(exc))}"
            ) from None
        self._check_identity()
        self._eval_study_id = self.storage.get_study_id_from_name(ename)
        self._genome_study_id = self.storage.get_study_id_from_name(gname)
        interval = self.storage.get_heartbeat_interval() or heartbeat
        self._beat = st.Heartbeat(self.storage, max(0.2, interval / 2))
        self._gru = known("gru").text

    # -- infrastructure -----------------------------------------------------------------------
    def _check_identity(self) -> None:
        ident = json.loads(json.dumps(self.config.identity(), sort_keys=True))
        data = {t: json.loads(value) for t, value in self.config.data}
        for study in (self.genomes, self.evals):
            stored = json_value(study.user_attrs.get(schema.EVOLVE))
            if stored is None:
                study.set_user_attr(schema.EVOLVE, ident)
                study.set_user_attr(schema.MODE, schema.EVOLVE_MODE)
                study.set_user_attr(schema.EVOLVE_TASKS, ",".join(self.config.tasks))
                metric, direction = _study_metric(self.config, study is self.genomes)
                study.set_user_attr(schema.METRIC, metric)
                study.set_user_attr(schema.DIRECTION, direction)
                study.set_user_attr(
                    schema.EVOLVE_METRICS,
                    {t: {"metric": m, "direction": d} for t, m, d in self.config.metrics},
                )
                if data:
                    study.set_user_attr(schema.DATA, data)
                continue
            self._check_data(json_value(study.user_attrs.get(schema.DATA)) or {}, data)
            if stored != ident:
                old, new = stored, self.config.identity()
                # A run stored before an option existed resumes with that option at its default.
                diff = sorted(
                    k
                    for k in old.keys() | new.keys()
                    if old.get(k, _DEFAULTS.get(k)) != new.get(k, _DEFAULTS.get(k))
                )
                if not diff:
                    continue
                raise ConfigError(
                    f"run {self.config.run!r} exists with different settings ({', '.join(diff)}); "
                    "use the same options to resume, or a new --run name"
                )

    def _check_data(self, stored: dict[str, Any], data: dict[str, Any]) -> None:
        """StorageError when a task of the run was evaluated on other data than it is given now."""
        from rnnopt import userdata

        hint = "start a new --run"
        for task in sorted(stored.keys() | data.keys()):
            now = data.get(task)
            userdata.check_resume(
                f"evolve/{self.config.run} ({task})",
                stored.get(task, {}),  # none stored: the task read no files then
                None if now is None else json.dumps(now),
                hint,
            )

    def _hold(self, trial_id: int) -> None:
        self._beat.hold(trial_id)

    def close(self) -> None:
        self._beat.close()

    def _fail_stale(self) -> None:
        st.fail_stale_trials(self.genomes)
        st.fail_stale_trials(self.evals)

    def _pop(
        self, study: optuna.Study, study_id: int, candidates: Iterable[FrozenTrial]
    ) -> optuna.Trial | None:
        """Claim the first WAITING trial another worker has not (WAITING -> RUNNING)."""
        for ft in candidates:
            trial = compat.claim_waiting(study, ft.number)
            if trial is not None:
                self._hold(compat.trial_id_of(trial))
                return trial
        return None

    def _tell(self, study: optuna.Study, trial: optuna.Trial, value: float) -> None:
        study.tell(trial, value)
        self._beat.release(compat.trial_id_of(trial))

    # -- reading the database -----------------------------------------------------------------
    def steps(self) -> list[FrozenTrial]:
        return self.genomes.get_trials(deepcopy=False)

    def results(self) -> dict[str, Results]:
        """genome text -> task -> setting -> accuracy, from the finished evaluations."""
        return collect_results(
            self.evals.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        )

    def score(self, results: Results, gru: Results) -> float | None:
        """min over tasks of accuracy / GRU accuracy (GRU / genome for a minimized metric) over
        the settings both have (None until every task has one)."""
        return paired_score(results, gru, self.config.tasks, self.config.minimize)

    def population(self) -> list[tuple[float, str]]:
        """The best ``population`` members as (score, genome text), best first."""
        results = self.results()
        gru = results.get(self._gru, {})
        members = {
            t.user_attrs["genome"]
            for t in self.steps()
            if t.state == TrialState.COMPLETE and t.user_attrs.get("status") == "member"
        }
        scored = []
        for g in members:
            s = self.score(results.get(g, {}), gru)
            if s is not None:
                scored.append((s, g))
        scored.sort(key=lambda p: (-p[0], p[1]))
        return scored[: self.config.population]

    # -- the worker loop ----------------------------------------------------------------------
    def work(self, max_idle: float | None = None) -> None:
        """Run until the run's budget of steps is used and nothing is left to evaluate."""
        idle_since = time.monotonic()
        try:
            while True:
                self._fail_stale()
                step = self._claim_step()
                if step is not None:
                    self._run_step(step)
                    idle_since = time.monotonic()
                    continue
                if self._run_one_eval():
                    idle_since = time.monotonic()
                    continue
                if self._finished():
                    return
                if max_idle is not None and time.monotonic() - idle_since > max_idle:
                    logger.info("worker %d: idle for %.0fs, leaving", self.worker, max_idle)
                    return
                time.sleep(self.poll)
        finally:
            self.close()

    def _mine(self, steps: list[FrozenTrial]) -> list[FrozenTrial]:
        """The steps this worker runs: all, or only confirmation steps when confirming (a
        search's steps left by a crash wait for the search command)."""
        if self.confirm is None:
            return steps
        return [t for t in steps if t.user_attrs.get("kind") == "confirm"]

    def _finished(self) -> bool:
        steps = self.steps()
        if any(t.state in LIVE for t in self._mine(steps)):
            return False
        if self.evals.get_trials(deepcopy=False, states=LIVE):
            return False
        if self.confirm is not None:
            return self._plan_confirm(steps) is None
        return self._budget_left(steps) <= 0 and self._seeds_to_create(steps) == []

    def _budget_left(self, steps: list[FrozenTrial]) -> int:
        searched = {
            t.user_attrs["step"] for t in steps if t.user_attrs.get("kind") in ("mutant", "reeval")
        }
        return self.config.generations - len(searched)

    def _seeds_to_create(self, steps: list[FrozenTrial]) -> list[tuple[str, str]]:
        have = {(t.user_attrs.get("kind"), t.user_attrs.get("genome")) for t in steps}
        want = [("seed", s) for s in self.config.seeds] + [
            ("reference", r) for r in self.config.references
        ]
        return [(kind, name) for kind, name in want if (kind, known(name).text) not in have]

    def _claim_step(self) -> optuna.Trial | None:
        steps = self.steps()
        waiting = sorted(
            (t for t in self._mine(steps) if t.state == TrialState.WAITING),
            key=lambda t: (t.user_attrs.get("kind") not in ("seed", "reference"), t.number),
        )
        trial = self._pop(self.genomes, self._genome_study_id, waiting)
        if trial is not None:
            logger.info("worker %d: resuming step %s", self.worker, trial.user_attrs.get("step"))
            return trial
        # Planning reads the steps and creates the next one: two workers doing that at once
        # would both create the same seed or overshoot --generations, so it runs under a lock
        # shared by every process and machine on this storage.
        with st.study_lock(self.storage.url, self.genomes.study_name):
            return self._create_step()

    def _next_round(self, steps: list[FrozenTrial], genome: str) -> int:
        evals = self.evals.get_trials(deepcopy=False)
        return _next_round(steps, evals, genome, self.config.settings)

    def _create_step(self) -> optuna.Trial | None:
        steps = self.steps()
        plan = self._plan(steps)
        if plan is None:
            return None
        if self.confirm is None:
            with compat.quiet_experimental():
                trial = self.genomes.ask()
        else:  # not ask(): it would hand over a search step a crash left queued
            tid = self.storage.create_new_trial(self._genome_study_id)
            trial = compat.trial_from_id(self.genomes, tid)
        self._hold(compat.trial_id_of(trial))
        if "step" in trial.user_attrs:  # ask() handed us a re-queued step: do that instead
            return trial
        plan["step"] = trial.number
        for k, v in plan.items():
            trial.set_user_attr(k, v)
        logger.info(
            "worker %d: step %d %s %s", self.worker, trial.number, plan["kind"], plan["genome"]
        )
        return trial

    def _plan_confirm(self, steps: list[FrozenTrial]) -> dict[str, Any] | None:
        """The next confirmation step: the target with the fewest, while one has too few."""
        assert self.confirm is not None
        have = {g: 0 for g in self.confirm.genomes}
        for t in steps:
            g = t.user_attrs.get("genome")
            # A crashed step is failed and re-queued as a copy: count the copy only.
            if g in have and t.user_attrs.get("kind") == "confirm" and t.state != TrialState.FAIL:
                have[g] += 1
        g = min(self.confirm.genomes, key=lambda x: have[x])
        if have[g] >= self.confirm.rounds:
            return None
        return {
            "kind": "confirm",
            "genome": g,
            "parent": g,
            "mutation": "",
            "round": self._next_round(steps, g),
        }

    def _plan(self, steps: list[FrozenTrial]) -> dict[str, Any] | None:
        if self.confirm is not None:
            return self._plan_confirm(steps)
        seeds = self._seeds_to_create(steps)
        if seeds:
            kind, name = seeds[0]
            g = known(name)
            return {
                "kind": kind,
                "genome": g.text,
                "reference": name,
                "parent": "",
                "mutation": "",
                "round": self._next_round(steps, g.text),
            }
        gru_done = any(
            t.state == TrialState.COMPLETE
            and t.user_attrs.get("kind") == "seed"
            and t.user_attrs.get("genome") == self._gru
            and t.user_attrs.get("status") == "member"
            for t in steps
        )
        if not gru_done or self._budget_left(steps) <= 0:
            return None
        pop = self.population()
        if self.config.parents == "passing":
            pop = [p for p in pop if p[0] >= self.config.threshold] or pop
        if not pop:
            return None
        rng = random.Random(f"{self.config.seed}/{len(steps)}/{self.worker}/{time.time_ns()}")
        _, parent = rng.choice(pop)
        if rng.random() >= self.config.reeval_fraction:
            seen = {t.user_attrs.get("genome") for t in steps}
            for _ in range(50):
                child, op = mutate(parse(parent), rng)
                if child.text not in seen:
                    mutant = {"genome": child.text, "parent": parent, "mutation": op}
                    return {"kind": "mutant", **mutant}
        return {
            "kind": "reeval",
            "genome": parent,
            "parent": parent,
            "mutation": "",
            "round": self._next_round(steps, parent),
        }

    # -- one step -----------------------------------------------------------------------------
    def _run_step(self, trial: optuna.Trial) -> None:
        attrs = dict(trial.user_attrs)
        step, kind, text = attrs["step"], attrs["kind"], attrs["genome"]
        first = attrs.get("round", 0) * self.config.settings
        genome = parse(text)
        trial.set_user_attr("cell", genome.cell_name)
        trial.set_user_attr("equations", genome.equations())
        if kind in ("seed", "reference", "mutant") and self._is_duplicate(step, kind, text):
            trial.set_user_attr("status", "duplicate")
            self._tell(self.genomes, trial, 0.0)
            return
        if kind == "mutant":
            stages = [[t] for t in self.config.tasks]
        else:
            stages = [list(self.config.tasks)]
        n = self.config.settings
        for number, tasks in enumerate(stages):
            slots = {
                f"{step}/{task}/{k}": (genome, task, first + k) for task in tasks for k in range(n)
            }
            if kind in ("reeval", "confirm") and text != self._gru:
                # The score compares over settings shared with the GRU: train it on these too.
                # The slot is named by setting, so two steps on one new setting share it.
                gru = self.results().get(self._gru, {})
                slots |= {
                    f"gru/{task}/{first + k}": (known("gru"), task, first + k)
                    for task in tasks
                    for k in range(n)
                    if first + k not in gru.get(task, {})
                }
            self._complete_stage(step, number, slots)
            if kind != "mutant":
                continue
            task = tasks[0]
            self._wait_for_gru()
            # A mutant is a new genome: all its results are this step's.
            results = self.results()
            minimize = task in self.config.minimize
            pair = paired_best(
                results.get(text, {}), results.get(self._gru, {}), [task], self.config.minimize
            )
            mine, gru = (pair[0][task], pair[1][task]) if pair else _NOTHING[minimize]
            if not passes(mine, gru, self.config.threshold, minimize):
                logger.info(
                    "step %s: rejected at %s (%.4f < %.2f x GRU %.4f)",
                    step,
                    task,
                    mine,
                    self.config.threshold,
                    gru,
                )
                trial.set_user_attr("status", "rejected")
                trial.set_user_attr("rejected_at", task)
                self._tell(self.genomes, trial, 0.0)
                return
        results = self.results()
        mine_all = results.get(text, {})
        for t in self.config.tasks:
            if mine_all.get(t):
                best = min if t in self.config.minimize else max
                trial.set_user_attr(f"best_{t}", best(mine_all[t].values()))
        s = self.score(mine_all, results.get(self._gru, {}))
        trial.set_user_attr("status", "member" if kind in ("seed", "mutant") else "evaluated")
        self._tell(self.genomes, trial, float(s if s is not None else 0.0))
        logger.info("step %s (%s) done: score %s", step, kind, s)

    def _is_duplicate(self, step: int, kind: str, text: str) -> bool:
        return any(
            t.user_attrs.get("genome") == text
            and t.user_attrs.get("kind") in ("seed", "reference", "mutant")
            and t.user_attrs.get("step", math.inf) < step
            for t in self.steps()
        )

    def _wait_for_gru(self) -> None:
        """Return once the GRU's seed step is done (helping with other work meanwhile)."""
        while True:
            done = [
                t
                for t in self.steps()
                if t.user_attrs.get("kind") == "seed"
                and t.user_attrs.get("genome") == self._gru
                and t.state == TrialState.COMPLETE
                and t.user_attrs.get("status") == "member"
            ]
            if done:
                return
            self._wait_a_little(seed_steps=True)

    def _wait_a_little(self, seed_steps: bool = False) -> None:
        self._fail_stale()
        if seed_steps:
            waiting = [
                t
                for t in self.steps()
                if t.state == TrialState.WAITING and t.user_attrs.get("kind") == "seed"
            ]
            trial = self._pop(self.genomes, self._genome_study_id, waiting)
            if trial is not None:
                self._run_step(trial)
                return
        if not self._run_one_eval():
            time.sleep(self.poll)

    def _complete_stage(
        self, step: int, stage: int, slots: dict[str, tuple[Genome, str, int]]
    ) -> None:
        """Enqueue this stage's missing evaluation slots (slot -> genome, task, setting) and
        work until all are finished."""
        while True:
            self._fail_stale()
            status: dict[str, set[TrialState]] = defaultdict(set)
            for t in self.evals.get_trials(deepcopy=False):
                if t.user_attrs.get("slot") in slots:
                    status[t.user_attrs["slot"]].add(t.state)
            todo = [s for s in slots if TrialState.COMPLETE not in status.get(s, set())]
            if not todo:
                return
            if any(not status.get(s, set()) & set(LIVE) for s in todo):
                # Another step may share a slot (the GRU's on a new setting): enqueue under the
                # lock, after looking again, so that it is queued once.
                with st.study_lock(self.storage.url, self.evals.study_name):
                    live = {
                        t.user_attrs.get("slot")
                        for t in self.evals.get_trials(
                            deepcopy=False, states=(*LIVE, TrialState.COMPLETE)
                        )
                    }
                    for slot in todo:
                        if slot not in live:
                            genome, task, setting = slots[slot]
                            self._enqueue(slot, step, genome, stage, task, setting)
            own = [
                t
                for t in self.evals.get_trials(deepcopy=False, states=(TrialState.WAITING,))
                if t.user_attrs.get("slot") in slots
            ]
            if not self._run_one_eval(prefer=own):
                time.sleep(self.poll)

    def _enqueue(
        self, slot: str, step: int, genome: Genome, stage: int, task: str, setting: int
    ) -> None:
        rng = _setting_rng(self.config.run, self.config.seed, task, setting)
        params = {name: rng.choice(values) for name, values in self.config.grid().items()}
        params["layers"] = rng.choice(self.config.layers)
        self.evals.enqueue_trial(
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

    # -- one evaluation -----------------------------------------------------------------------
    def _run_one_eval(self, prefer: list[FrozenTrial] | None = None) -> bool:
        waiting = list(prefer or []) + self.evals.get_trials(
            deepcopy=False, states=(TrialState.WAITING,)
        )
        trial = self._pop(self.evals, self._eval_study_id, waiting)
        if trial is None:
            return False
        self._evaluate(trial)
        return True

    def _evaluate(self, trial: optuna.Trial) -> None:
        from rnnopt.evolve.cell import register_genome
        from rnnopt.train import TrainConfig, train

        attrs = trial.user_attrs
        cfg = self.config
        params = {
            name: trial.suggest_categorical(name, list(values))
            for name, values in cfg.grid().items()
        }
        params["layers"] = trial.suggest_categorical("layers", list(self.config.layers))
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
        self._tell(self.evals, trial, value)
        logger.info(
            "worker %d: %s %s = %.4f (%s)",
            self.worker,
            attrs.get("slot"),
            attrs.get("task"),
            value,
            stop,
        )


def run_worker(
    url: str,
    config: SearchConfig,
    heartbeat: int,
    grace: int | None,
    index: int,
    verbose: bool,
    workers: int = 1,
    confirm: Confirm | None = None,
) -> None:
    """Body of one local worker process (run by rnnopt.workers.run_pool)."""
    import torch

    from rnnopt._cli import cpus

    # Each of `workers` processes gets its share of the cores: oversubscribed OpenMP threads
    # made two 2-thread workers on 2 cores ten times slower than one.
    torch.set_num_threads(max(1, cpus() // workers))
    Evolution(url, config, heartbeat=heartbeat, grace=grace, worker=index, confirm=confirm).work()
