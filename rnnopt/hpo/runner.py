"""The worker side of a study: create or check the studies (``prepare_studies``), then the
ask/tell loop each worker runs until every study holds its trials (``run_worker``), in one
process or a pool (``run_workers``)."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rnnopt import schema, userdata
from rnnopt._cli import cpus, ignore_interrupts
from rnnopt.attrs import json_value
from rnnopt.errors import StorageError
from rnnopt.hpo import confirm as confirm_mod
from rnnopt.hpo import space as space_mod
from rnnopt.hpo.plan import MAX_SEED, Plan, StudyDef
from rnnopt.hpo.samplers import make_pruner, make_sampler, paired_trials
from rnnopt.hpo.staged import Parked, StagedFilter

__all__ = ["prepare_studies", "run_worker", "run_workers"]

# Named as before the move into hpo/: the worker loop logs as the study command.
logger = logging.getLogger("rnnopt.study")
PARKED = "parked"  # _run_trial's outcome for a trial waiting at a staged filter's gate

# --- the studies ------------------------------------------------------------------------------


def _attrs(plan: Plan, sd: StudyDef) -> dict[str, Any]:
    import rnnopt

    return {
        "rnnopt.task": sd.task,
        "rnnopt.cell": sd.cell,
        "rnnopt.mode": sd.mode,
        "rnnopt.space": json.loads(sd.space_json),
        "rnnopt.budget": {"n_trials": plan.n_trials, "max_steps": plan.max_steps}
        | ({"confirm": plan.confirm} if plan.confirm else {})
        | ({"staged": _schedule(plan)} if plan.pruner == "staged" else {}),
        "rnnopt.version": rnnopt.__version__,
        "rnnopt.metric": sd.metric,
        "rnnopt.direction": sd.direction,
        "rnnopt.command": plan.command,
        "rnnopt.train": json.loads(
            space_mod.canonical_json(
                {k: v for k, v in sd.base.items() if k not in ("device", "data_dir")}
            )
        ),
        **({userdata.DATA_ATTR: json.loads(sd.data)} if sd.data else {}),
        **(
            {schema.PAIRED_STARTUP: {"seed": plan.seed, "trials": n_paired}}
            if (n_paired := paired_trials(plan.sampler, plan.n_trials, plan.sampler_options))
            else {}
        ),
    }


def _schedule(plan: Plan) -> str:
    """The staged filter's schedule as stored (``0.1:4,0.3:1``)."""
    from rnnopt.hpo.staged import schedule_of

    stages = schedule_of(plan.pruner_options)
    return ",".join(f"{frac:g}:{keep}" for frac, keep in stages)


def prepare_studies(plan: Plan) -> None:
    """Refuse mismatched existing studies (before creating any), then create/update all."""
    import optuna

    from rnnopt import storage as st

    storage = st.open_storage(plan.url, heartbeat_interval=plan.heartbeat)
    summaries = {
        s.study_name: s
        for s in optuna.study.get_all_study_summaries(storage, include_best_trial=False)
    }
    folded = {name.casefold(): name for name in summaries}
    for sd in plan.studies:
        hint = (
            f"pass another --study-name prefix to start a new study, or delete it with "
            f"`optuna delete-study --study-name {sd.name} --storage URL`"
        )
        other = folded.get(sd.name.casefold())
        if other is not None and other != sd.name and st.backend_of(plan.url) == "mysql":
            # MySQL/MariaDB compare study names without case: Optuna would load the other.
            raise StorageError(
                f"study {sd.name!r} differs only in case from the existing study {other!r} in "
                f"{plan.masked_url}, and MySQL/MariaDB compare study names without case; "
                "pass another --study-name prefix"
            )
        if sd.name not in summaries:
            continue
        summary = summaries[sd.name]
        attrs = summary.user_attrs
        if summary.direction.name.lower() != sd.direction:
            raise StorageError(
                f"study {sd.name!r} in {plan.masked_url} has direction "
                f"{summary.direction.name.lower()}, not {sd.direction}; {hint}"
            )
        if "rnnopt.task" not in attrs and summary.n_trials:
            raise StorageError(
                f"study {sd.name!r} in {plan.masked_url} is not an rnnopt study (it has "
                f"{summary.n_trials} trials and no rnnopt attributes); {hint}"
            )
        # Other data first: it names the file or option that changed (another level changes
        # the metric too, which would only say that).
        userdata.check_resume(sd.name, attrs.get(userdata.DATA_ATTR), sd.data, hint)
        for key, want in (
            ("rnnopt.task", sd.task), ("rnnopt.mode", sd.mode), ("rnnopt.metric", sd.metric)
        ):
            if attrs.get(key) not in (None, want):
                raise StorageError(
                    f"study {sd.name!r} in {plan.masked_url} has {key}={attrs[key]!r}, not "
                    f"{want!r}; {hint}"
                )
        stored_space = json_value(attrs.get("rnnopt.space"))
        if stored_space is not None and space_mod.canonical_json(stored_space) != sd.space_json:
            raise StorageError(
                f"study {sd.name!r} in {plan.masked_url} has a different search space; {hint}"
            )
        if attrs.get("rnnopt.direction") not in (None, sd.direction):
            raise StorageError(
                f"study {sd.name!r} has direction {attrs['rnnopt.direction']}; {hint}"
            )
        budget = json_value(attrs.get("rnnopt.budget")) or {}
        if budget.get("max_steps") not in (None, plan.max_steps):
            raise StorageError(
                f"study {sd.name!r} was run with --max-steps {budget['max_steps']}, not "
                f"{plan.max_steps}: trials of one study must share a budget; {hint}"
            )
        staged_now = _schedule(plan) if plan.pruner == "staged" else None
        if summary.n_trials and budget.get("staged") != staged_now:
            def what(schedule: Any) -> str:
                return f"the staged filter {schedule}" if schedule else "no staged filter"

            raise StorageError(
                f"study {sd.name!r} in {plan.masked_url} was run with "
                f"{what(budget.get('staged'))}, not {what(staged_now)}: the cells' trials "
                f"must meet the same gates; {hint}"
            )
    for sd in plan.studies:
        study = optuna.create_study(
            study_name=sd.name, storage=storage, direction=sd.direction, load_if_exists=True
        )
        current = study.user_attrs
        changed = False
        for key, value in _attrs(plan, sd).items():
            if key in ("rnnopt.command",) and key in current:
                continue
            if key == schema.PAIRED_STARTUP and key in current:
                value = {**value, "seed": json_value(current[key])["seed"]}  # the first wins
            if current.get(key) != value:
                study.set_user_attr(key, value)
                changed = True
        if changed:
            _write_note(study)
        from rnnopt.dashboard import set_metric_name

        set_metric_name(study, sd.metric)
    st.install_views_quietly(plan.url)


def _write_note(study: Any) -> None:
    """The optuna-dashboard note (task, cell, space, budget, command); never fatal."""
    from rnnopt.dashboard import write_study_note

    try:
        write_study_note(study)
    except Exception as exc:  # a note is a convenience; the study must go on without it
        logger.warning("could not write the dashboard note of %s: %s", study.study_name, exc)


# --- the worker loop --------------------------------------------------------------------------


def _slots_used(trials: Sequence[Any]) -> int:
    """Trials that count toward --n-trials: all but FAILED ones (a failed trial leaves its slot
    to a rerun; a retry's FAILED parent is replaced by the retry in any case) and the
    confirmation trials."""
    from optuna.trial import TrialState

    return sum(
        1
        for t in trials
        if t.state != TrialState.FAIL and not confirm_mod.is_confirmation(t)
    )


def _progress_line(sd: StudyDef, trials: Sequence[Any], n_trials: int) -> str:
    from optuna.trial import TrialState

    replaced = confirm_mod.replaced_trials(trials)
    counted = [t for t in trials if t.number not in replaced]
    search = [t for t in counted if not confirm_mod.is_confirmation(t)]
    done = [t for t in search if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    complete = [t for t in done if t.state == TrialState.COMPLETE and t.value is not None]
    pruned = sum(t.state == TrialState.PRUNED for t in done)
    failed = sum(t.state == TrialState.FAIL for t in search)
    best = "-"
    if complete:
        pick = max if sd.direction == "maximize" else min
        b = pick(complete, key=lambda t: t.value)
        best = f"{b.value:.4g} (trial {b.number})"
    line = (
        f"{sd.name}: {len(done)}/{n_trials} done, "
        f"{pruned} pruned, {failed} failed, best {sd.metric} {best}"
    )
    confirming = [t for t in counted if confirm_mod.is_confirmation(t)]
    if confirming:
        finished = sum(t.state.is_finished() for t in confirming)
        line += f"; confirmation {finished}/{len(confirming)} done"
    return line


def run_worker(plan: Plan, index: int = 0, progress: Callable[[str], None] | None = None) -> None:
    """Work on every study of the plan until each holds ``n_trials`` finished trials."""
    import optuna
    from optuna.trial import TrialState

    from rnnopt import storage as st
    from rnnopt.hpo.objective import make_objective
    from rnnopt.storage import compat

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = st.open_storage(plan.url, heartbeat_interval=plan.heartbeat, max_retry=plan.max_retry)
    store = st.artifact_store(Path(plan.artifacts))
    deadline = time.monotonic() + plan.timeout if plan.timeout else math.inf
    sampler_seed = (
        None if plan.sampler_seed is None else (plan.sampler_seed + 7919 * index) % (MAX_SEED + 1)
    )
    loaded: dict[str, Any] = {}
    failures: dict[str, int] = {}  # failed trials per study in this run
    stager: StagedFilter | None = None
    gates: list[int] = []
    # The command shows the run's progress (rnnopt.progress); this per-study line is detail.
    say = progress or (lambda line: logger.debug("%s", line))

    def study_of(sd: StudyDef) -> Any:
        if sd.name not in loaded:
            attrs = storage.get_study_user_attrs(storage.get_study_id_from_name(sd.name))
            pairing = json_value(attrs.get(schema.PAIRED_STARTUP)) or {}
            loaded[sd.name] = optuna.load_study(
                study_name=sd.name,
                storage=storage,
                sampler=make_sampler(
                    plan.sampler, sampler_seed, n_trials=plan.n_trials,
                    options=plan.sampler_options, pairing_seed=pairing.get("seed", plan.seed),
                ),
                pruner=make_pruner(
                    plan.pruner, max_steps=plan.max_steps, eval_interval=plan.eval_interval,
                    options=plan.pruner_options,
                ),
            )
        return loaded[sd.name]

    def one_pass() -> bool:
        """Run trials until no study has a free slot; True if some study still has others'
        trials running (finished or stale later)."""
        pending = False
        for sd in plan.studies:
            study = study_of(sd)
            objective = make_objective(
                task=sd.task,
                cell=None if sd.mode == "search" else sd.cell,
                space=sd.space,
                base=sd.base,
                metric=sd.metric,
                artifact_store=store,
                seed=plan.seed,
                gates=gates,
            )
            # Failed trials do not count toward --n-trials; at most n_trials of them per run, so
            # that a study that always fails ends.
            while time.monotonic() < deadline and failures.get(sd.name, 0) < plan.n_trials:
                with st.study_lock(plan.url, sd.name):
                    # Under the lock: a stale trial is failed and its retry queued in one step
                    # for the other workers, which would otherwise see a free slot between the
                    # two and ask for a new trial beside the retry.
                    st.fail_stale_trials(study)
                    trials = study.get_trials(deepcopy=False)
                    waiting = any(t.state == TrialState.WAITING for t in trials)
                    if _slots_used(trials) >= plan.n_trials and not waiting:
                        if plan.confirm and confirm_mod.top_up(
                            study, trials, sd.cells, search=sd.mode == "search",
                            direction=sd.direction, k=plan.confirm, seed=plan.seed,
                        ):  # fmt: skip
                            continue  # the search is done: claim its confirmation trials
                        pending |= any(t.state == TrialState.RUNNING for t in trials)
                        break
                    with compat.quiet_experimental():
                        trial = study.ask()
                    storage.record_heartbeat(compat.trial_id_of(trial))
                outcome = _run_trial(study, trial, objective, storage, plan)
                if outcome == TrialState.FAIL:
                    failures[sd.name] = failures.get(sd.name, 0) + 1
                elif outcome is PARKED:
                    assert stager is not None
                    stager.park(sd, study, trial)
                say(_progress_line(sd, study.get_trials(deepcopy=False), plan.n_trials))
        return pending

    if plan.pruner == "staged":
        stager = StagedFilter(plan, storage, study_of)
        gates = stager.gates
    try:
        while time.monotonic() < deadline:
            pending = one_pass()
            if stager is not None and stager.holding():
                gave_up = {name for name, n in failures.items() if n >= plan.n_trials}
                if stager.resolve(gave_up):
                    continue  # kept trials queued again, or trials ended: claim and go on
                pending = True
            if not pending:
                break
            # Others' trials still run: wait, so that a dead worker's trial is retried here.
            time.sleep(min(plan.heartbeat, 5))
    finally:
        if stager is not None:
            stager.release()


def _run_trial(study: Any, trial: Any, objective: Any, storage: Any, plan: Plan) -> Any:
    """Run one trial and tell its outcome; returns the TrialState told, or ``PARKED`` (not
    told: it waits at a gate of the staged filter)."""
    import optuna
    from optuna.trial import TrialState

    from rnnopt import storage as st
    from rnnopt.hpo.objective import mark_failed
    from rnnopt.storage import compat

    try:
        with st.Heartbeat(storage, plan.heartbeat, compat.trial_id_of(trial)):
            value = objective(trial)
    except Parked:
        return PARKED  # the trial stays RUNNING; the staged filter holds it
    except optuna.TrialPruned:
        study.tell(trial, state=TrialState.PRUNED)
        return TrialState.PRUNED
    except KeyboardInterrupt:
        ignore_interrupts()  # finish the clean-up undisturbed
        mark_failed(trial, "interrupted (Ctrl-C); queued for a retry")
        study.tell(trial, state=TrialState.FAIL)
        st.requeue(study, compat.stored_trial(trial), plan.max_retry)
        raise
    except Exception as exc:
        logger.warning(
            "trial %d of %s failed: %s: %s", trial.number, study.study_name, type(exc).__name__, exc
        )
        if "stop_reason" not in trial.user_attrs:
            mark_failed(trial, st.scrub(f"{type(exc).__name__}: {exc}"))
        study.tell(trial, state=TrialState.FAIL)
        return TrialState.FAIL
    study.tell(trial, value)
    return TrialState.COMPLETE


def _worker_body(plan: Plan, index: int) -> None:
    """Body of a ``--workers`` process (see rnnopt.workers): own storage connection, own
    device and threads."""
    import torch

    torch.set_num_threads(max(1, cpus() // plan.workers))
    if plan.device in ("auto", "cuda") and torch.cuda.device_count() > 1:
        device = f"cuda:{index % torch.cuda.device_count()}"
        for sd in plan.studies:
            sd.base["device"] = device

    run_worker(plan, index)


def run_workers(plan: Plan) -> str | None:
    """Run the plan's workers to the end; a line naming the workers that died, or None."""
    from rnnopt.workers import describe_failures, run_pool

    if plan.workers == 1:
        run_worker(plan, 0)
        return None
    codes = run_pool(
        _worker_body, [(plan, i) for i in range(plan.workers)], verbose=plan.verbose
    )
    return describe_failures(codes)
