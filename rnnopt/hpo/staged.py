"""The staged filter across cells: a compare study (one study per cell) under ``pruner =
"staged"``.

Like the staged filters of the paper's architecture search: every cell's trials train to the
first gate (``[pruner] schedule = "0.1:4,0.3:1"``: a tenth of ``max_steps``); the 4 cells whose
best value so far is best go on to the second gate (three tenths), the best 1 to the end. A
cell's value at a gate is the best any of its trials reached up to that step (a trial that
ended before it: its own value), so the filter sees what the exhaustive comparison would have
seen at that step; ``benchmarks/strategies.py --staged`` replays the same rule on an
exhaustive run's curves (:func:`trial_score` is the one rule for both).

How a trial waits at a gate: the trainer checkpoints and stops there (``train(pause_at=)``),
the objective raises :class:`Parked`, and the worker keeps the trial RUNNING (its heart still
beats) while it trains the others. Once every trial of the cells still in has reached the gate
or ended, the gate's decision (cells kept, each cell's value) is taken once, under the first
study's lock, and stored in every study of the task (``rnnopt.staged``); the parked trials of
kept cells are queued again (RUNNING -> WAITING), so that whichever worker is free claims one
and resumes it from its checkpoint, and the others end PRUNED with the reason. A worker that
dies leaves its parked trials to go stale: their retries inherit the checkpoint and park again
at once; a run that ends (``--timeout``, Ctrl-C) queues its parked trials again itself.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from rnnopt import schema
from rnnopt.attrs import json_value
from rnnopt.errors import ConfigError

__all__ = [
    "GATES_PASSED_ATTR",
    "GATE_VALUE_ATTR",
    "Parked",
    "StagedFilter",
    "filtered_cells",
    "filtered_text",
    "finalists",
    "gate_steps",
    "parse_schedule",
    "schedule_of",
    "trial_score",
    "value_text",
]

logger = logging.getLogger("rnnopt.study")

DEFAULT_SCHEDULE = "0.1:4,0.3:1"
GATES_PASSED_ATTR = "staged_gates_passed"  # trial: how many gates it has passed
GATE_VALUE_ATTR = "staged_value"  # trial: [step, best value so far] where it last parked


class Parked(Exception):
    """Raised by the objective when its trial stopped at a gate to wait for the others."""

    def __init__(self, step: int) -> None:
        super().__init__(f"parked at step {step}")
        self.step = step


def parse_schedule(text: str, label: str = "[pruner] schedule") -> list[tuple[float, int]]:
    """``"0.1:4,0.3:1"`` -> [(0.1, 4), (0.3, 1)]: at each fraction of max_steps, cells kept."""
    stages: list[tuple[float, int]] = []
    example = "such as 0.1:4,0.3:1 (FRACTION:CELLS KEPT, fractions rising in (0, 1))"
    for part in str(text).split(","):
        frac, _, keep = part.partition(":")
        try:
            stage = (float(frac), int(keep))
        except ValueError:
            raise ConfigError(f"{label} {text!r}: allowed: {example}") from None
        if not 0 < stage[0] < 1 or stage[1] < 1 or (stages and stage[0] <= stages[-1][0]):
            raise ConfigError(f"{label} {text!r}: allowed: {example}, cells kept >= 1")
        stages.append(stage)
    return stages


def schedule_of(pruner_options: Mapping[str, Any]) -> list[tuple[float, int]]:
    """The schedule a plan's ``[pruner]`` options give (the default where they give none)."""
    return parse_schedule(pruner_options.get("schedule", DEFAULT_SCHEDULE))


def finalists(pruner_options: Mapping[str, Any], n_cells: int) -> int:
    """How many of a task's ``n_cells`` cells pass the last gate (and can be confirmed)."""
    return min(n_cells, schedule_of(pruner_options)[-1][1])


def gate_steps(schedule: Sequence[tuple[float, int]], max_steps: int, eval_interval: int
               ) -> list[int]:  # fmt: skip
    """Each gate's step: its fraction of ``max_steps`` rounded to an evaluation step (the
    values compared there are evaluations); they must rise and stay below ``max_steps``."""
    steps: list[int] = []
    for frac, _ in schedule:
        step = max(eval_interval, round(frac * max_steps / eval_interval) * eval_interval)
        if step >= max_steps or (steps and step <= steps[-1]):
            gates = ", ".join(f"{f:g}" for f, _ in schedule)
            raise ConfigError(
                f"[pruner] schedule: gates at {gates} of {max_steps} steps fall on the same or "
                f"the last evaluation (every {eval_interval} steps); allowed: gates at least one "
                "evaluation apart and before max_steps (fewer gates, or a smaller eval_interval)"
            )
        steps.append(step)
    return steps


def trial_score(steps: int | None, values: Iterable[tuple[int, float | None]],
                final: float | None, upto: int, sign: int) -> float:  # fmt: skip
    """A trial's value at a gate at step ``upto``, signed so that larger is better: its own
    (final) value if it ended by then, else the best value it reported up to that step;
    -inf if it has none."""
    if steps is not None and upto >= steps and final is not None and math.isfinite(final):
        return sign * final
    seen = [sign * v for step, v in values if step <= upto and v is not None and math.isfinite(v)]
    return max(seen, default=-math.inf)


def filtered_cells(record: Any) -> dict[str, tuple[int, float | None]]:
    """The cells a stored staged filter (a study's ``rnnopt.staged``) dropped: cell -> (the
    gate's step, the cell's value there)."""
    out: dict[str, tuple[int, float | None]] = {}
    for decision in (json_value(record) or {}).get("decisions", []):
        for cell, value in decision["scores"].items():
            if cell not in decision["kept"]:
                out[cell] = (int(decision["step"]), value)
    return out


def filtered_text(step: int, value: float | None) -> str:
    """How a table shows a cell the filter dropped."""
    return f"filtered at step {step} ({value_text(value)})"


def _values(trial: Any) -> list[tuple[int, float | None]]:
    """A stored trial's evaluations, with the best value so far that it recorded at its last
    gate (the trainer's, on the same evaluations; it also covers a retry's parent)."""
    values = list(trial.intermediate_values.items())
    carried = trial.user_attrs.get(GATE_VALUE_ATTR)
    if isinstance(carried, list) and len(carried) == 2:
        values.append((int(carried[0]), carried[1]))
    return values


def _score(trial: Any, upto: int, sign: int) -> float:
    from optuna.trial import TrialState

    final = trial.value if trial.state == TrialState.COMPLETE else None
    steps = trial.user_attrs.get("steps")
    return trial_score(steps if isinstance(steps, int) else None, _values(trial), final, upto, sign)


def _at_gate(trial: Any, gate: int, step: int) -> bool:
    """Whether a trial is done with gate ``gate``: ended, or waiting there."""
    if trial.state.is_finished():
        return True
    carried = trial.user_attrs.get(GATE_VALUE_ATTR)
    return (
        int(trial.user_attrs.get(GATES_PASSED_ATTR, 0)) == gate
        and isinstance(carried, list)
        and int(carried[0]) >= step
    )


def value_text(value: float | None) -> str:
    """A cell's value at a gate as the reasons, tables and notes show it."""
    return "none" if value is None else f"{value:.4g}"


class StagedFilter:
    """One worker's side of the staged filter: the trials it parked, their heartbeats, and the
    gates' decisions (read from, or taken and stored in, the studies' attributes)."""

    def __init__(self, plan: Any, storage: Any, study_of: Callable[[Any], Any]) -> None:
        from rnnopt import storage as st

        self.plan = plan
        self.storage = storage
        self.study_of = study_of
        self.schedule = schedule_of(plan.pruner_options)
        self.gates = gate_steps(self.schedule, plan.max_steps, plan.eval_interval)
        self.parked: list[tuple[Any, Any, Any]] = []  # (sd, study, trial)
        self.decided: dict[tuple[str, int], dict[str, Any]] = {}
        self.beat = st.Heartbeat(storage, plan.heartbeat)

    # --- parking ---------------------------------------------------------------------------
    def park(self, sd: Any, study: Any, trial: Any) -> None:
        from rnnopt.storage import compat

        self.beat.hold(compat.trial_id_of(trial))
        self.parked.append((sd, study, trial))

    def holding(self) -> bool:
        return bool(self.parked)

    def resolve(self, gave_up: set[str]) -> bool:
        """Act on every parked trial whose gate is decided: a kept cell's trial is queued again
        (WAITING: whichever worker is free claims it and resumes it from its checkpoint), the
        others end PRUNED. Returns whether anything was done."""
        from optuna.trial import TrialState

        from rnnopt.hpo.objective import mark_stopped, pass_gate

        acted = False
        for entry in list(self.parked):
            sd, study, trial = entry
            if not self._still_mine(entry):
                continue
            gate = int(trial.user_attrs.get(GATES_PASSED_ATTR, 0))
            decision = self.decision(sd.task, gate, gave_up)
            if decision is None:
                continue
            acted = True
            if sd.cell in decision["kept"]:
                pass_gate(trial, gate)
                self._queue(entry)
                continue
            self._drop(entry)
            scores = decision["scores"]
            rank = sorted(scores, key=lambda c: _key(scores[c], sd.direction)).index(sd.cell)
            reason = (
                f"filtered at gate {gate + 1} of {len(self.gates)} (step {decision['step']}): "
                f"{sd.task} {sd.metric} {value_text(scores.get(sd.cell))}, cell ranked "
                f"{rank + 1} of {len(scores)}, {len(decision['kept'])} kept"
            )
            mark_stopped(trial, "pruned", reason)
            study.tell(trial, state=TrialState.PRUNED)
            logger.debug("trial %d of %s %s", trial.number, sd.name, reason)
        return acted

    def release(self) -> None:
        """Queue this worker's parked trials again (WAITING) as the run ends while they wait: a
        later run claims them, and they wait at their gate again from their checkpoints."""
        for entry in list(self.parked):
            if self._still_mine(entry):
                self._queue(entry)
        self.beat.close()

    def _queue(self, entry: tuple[Any, Any, Any]) -> None:
        from optuna.trial import TrialState

        from rnnopt.storage import compat

        self._drop(entry)
        self.storage.set_trial_state_values(compat.trial_id_of(entry[2]), TrialState.WAITING)

    def _drop(self, entry: tuple[Any, Any, Any]) -> None:
        from rnnopt.storage import compat

        self.parked.remove(entry)
        self.beat.release(compat.trial_id_of(entry[2]))

    def _still_mine(self, entry: tuple[Any, Any, Any]) -> bool:
        """Whether a parked trial is still RUNNING; if another worker failed it as stale (this
        one stalled past the grace period), its retry goes on without this worker."""
        from optuna.trial import TrialState

        from rnnopt.storage import compat

        if compat.stored_trial(entry[2]).state == TrialState.RUNNING:
            return True
        self._drop(entry)
        return False

    # --- decisions -------------------------------------------------------------------------
    def decision(self, task: str, gate: int, gave_up: set[str]) -> dict[str, Any] | None:
        """Gate ``gate``'s decision for ``task`` (``{"gate", "step", "kept", "scores"}``), or
        None while some trial of a cell still in has not reached it."""
        from rnnopt import storage as st

        key = (task, gate)
        if key in self.decided:
            return self.decided[key]
        group = [sd for sd in self.plan.studies if sd.task == task]
        found = self._recorded(group[0], gate)
        if found is None:
            with st.study_lock(self.plan.url, group[0].name):
                found = self._recorded(group[0], gate)
                if found is None:
                    found = self._decide(group, gate, gave_up)
                    if found is None:
                        return None
                    self._store(group, found)
        self.decided[key] = found
        return found

    def _record(self, sd: Any) -> tuple[int, dict[str, Any]]:
        study_id = self.storage.get_study_id_from_name(sd.name)
        record = json_value(self.storage.get_study_user_attrs(study_id).get(schema.STAGED))
        return study_id, dict(record or {})

    def _recorded(self, sd: Any, gate: int) -> dict[str, Any] | None:
        decisions = self._record(sd)[1].get("decisions", [])
        return decisions[gate] if gate < len(decisions) else None

    def _decide(self, group: Sequence[Any], gate: int, gave_up: set[str]) -> dict[str, Any] | None:
        from rnnopt.hpo import confirm as confirm_mod
        from rnnopt.hpo.runner import _slots_used

        if gate == 0:
            alive = [sd.cell for sd in group]
        else:
            before = self._recorded(group[0], gate - 1)
            if before is None:
                return None
            alive = list(before["kept"])
        step = self.gates[gate]
        sign = 1 if group[0].direction == "maximize" else -1
        scores: dict[str, float | None] = {}
        for sd in group:
            if sd.cell not in alive:
                continue
            trials = [
                t for t in self.study_of(sd).get_trials(deepcopy=False)
                if not confirm_mod.is_confirmation(t)
            ]  # fmt: skip
            if _slots_used(trials) < self.plan.n_trials and sd.name not in gave_up:
                return None  # trials still to be drawn
            if not all(_at_gate(t, gate, step) for t in trials):
                return None
            best = max((_score(t, step, sign) for t in trials), default=-math.inf)
            scores[sd.cell] = sign * best if math.isfinite(best) else None
        keep = self.schedule[gate][1]
        kept = sorted(alive, key=lambda c: _key(scores.get(c), group[0].direction))[:keep]
        return {"gate": gate, "step": step, "kept": kept, "scores": scores}

    def _store(self, group: Sequence[Any], found: dict[str, Any]) -> None:
        from rnnopt.hpo.runner import _write_note

        for sd in group:
            study_id, record = self._record(sd)
            decisions = record.get("decisions", [])[: found["gate"]]
            record.update(gates=self.gates, decisions=[*decisions, found])
            self.storage.set_study_user_attr(study_id, schema.STAGED, record)
            _write_note(self.study_of(sd))  # the dashboard's note shows the decisions
        kept = ", ".join(found["kept"])
        logger.info("staged filter, %s gate %d (step %d): kept %s", group[0].task,
                    found["gate"] + 1, found["step"], kept)  # fmt: skip


def _key(value: float | None, direction: str) -> tuple[int, float]:
    """Sort key: best first, cells without a value last."""
    if value is None:
        return (1, 0.0)
    return (0, -value if direction == "maximize" else value)

