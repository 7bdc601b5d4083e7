# Over 450 lines: the run's layout (docstring) and one class whose planning and staged
# filter share its state.
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

import logging
import math
import random
import time
from collections import defaultdict
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from rnnopt import storage as st
from rnnopt.errors import StorageError
from rnnopt.evolve import scoring
from rnnopt.evolve.config import Confirm, SearchConfig, check_identity, study_names
from rnnopt.evolve.evaluate import enqueue, evaluate
from rnnopt.evolve.genome import Genome, parse
from rnnopt.evolve.known import Results, known, paired_best, passes
from rnnopt.evolve.mutate import mutate
from rnnopt.evolve.queue import LIVE, Queue, open_storage
from rnnopt.storage import compat

__all__ = ["Evolution", "run_worker"]

logger = logging.getLogger(__name__)

# (genome, GRU) when nothing is shared: the worst value of an accuracy (maximize) and of a
# minimized metric.
_NOTHING = {False: (0.0, math.inf), True: (math.inf, 0.0)}


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
            open_storage(storage, heartbeat=heartbeat, grace=grace)
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
        check_identity(config, self.genomes, self.evals)
        self._eval_study_id = self.storage.get_study_id_from_name(ename)
        self._genome_study_id = self.storage.get_study_id_from_name(gname)
        self._queue = Queue(self.storage, heartbeat)
        self._gru = known("gru").text

    # -- infrastructure -----------------------------------------------------------------------
    def _hold(self, trial_id: int) -> None:
        self._queue.hold(trial_id)

    def close(self) -> None:
        self._queue.close()

    def _fail_stale(self) -> None:
        self._queue.fail_stale(self.genomes, self.evals)

    def _tell(self, study: optuna.Study, trial: optuna.Trial, value: float) -> None:
        self._queue.tell(study, trial, value)

    # -- reading the database -----------------------------------------------------------------
    def steps(self) -> list[FrozenTrial]:
        return self.genomes.get_trials(deepcopy=False)

    def results(self) -> dict[str, Results]:
        """genome text -> task -> setting -> value, from the finished evaluations."""
        return scoring.collect_results(
            self.evals.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        )

    def score(self, results: Results, gru: Results) -> float | None:
        """The run's score of ``results`` against the GRU's (``scoring.score``)."""
        return scoring.score(self.config, results, gru)

    def population(self) -> list[tuple[float, str]]:
        """The best ``population`` members as (score, genome text), best first."""
        return scoring.population(self.config, self.steps(), self.results(), self._gru)

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
        trial = self._queue.claim(self.genomes, waiting)
        while trial is not None and "step" not in trial.user_attrs:
            # A step killed between its creation and its plan, re-queued as an empty copy:
            # there is nothing to resume, and its plan is made afresh below.
            self._queue.drop(self.genomes, trial, "killed before its step was planned")
            waiting = [t for t in waiting if t.number != trial.number]
            trial = self._queue.claim(self.genomes, waiting)
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
        return scoring.next_round(steps, evals, genome, self.config.settings)

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
            trial = self._queue.claim(self.genomes, waiting)
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
        enqueue(self.evals, self.config, slot, step, genome, stage, task, setting)

    # -- one evaluation -----------------------------------------------------------------------
    def _run_one_eval(self, prefer: list[FrozenTrial] | None = None) -> bool:
        waiting = list(prefer or []) + self.evals.get_trials(
            deepcopy=False, states=(TrialState.WAITING,)
        )
        trial = self._queue.claim(self.evals, waiting)
        if trial is None:
            return False
        self._evaluate(trial)
        return True

    def _evaluate(self, trial: optuna.Trial) -> None:
        attrs = trial.user_attrs
        value, stop = evaluate(trial, self.config)
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
