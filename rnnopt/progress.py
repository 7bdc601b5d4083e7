"""One progress display for a whole study run, across every worker process.

The command that started the workers polls the storage (the one place where all of them write)
for its studies' trial states and shows one line: trials done of the run's total, pruned,
failed, the best value so far per task, and the time left. On a terminal it is a tqdm bar
redrawn in place; elsewhere (a log file, CI) a plain log line when something changed, at most
every ``line_every_s`` seconds, and always at the end.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from rnnopt.hpo import confirm as confirm_mod

__all__ = ["RunProgress", "Tally", "tally"]

logger = logging.getLogger("rnnopt.progress")


@dataclass
class Tally:
    """Trials of a run by state; ``best`` maps task -> (value, cell)."""

    done: int = 0
    pruned: int = 0
    failed: int = 0
    best: dict[str, tuple[float, str]] = field(default_factory=dict)
    waiting: int = 0  # trials waiting at a gate of the staged filter (rnnopt/hpo/staged.py)


def tally(studies: Sequence[Any], trials_of: Sequence[Sequence[Any]]) -> Tally:
    """Count finished trials (a retried trial counts once, as its retry; a failed one is not
    done, since it does not use up a slot of --n-trials) of ``studies``
    (``StudyDef``-like: task, cell, mode, direction) whose trials are ``trials_of``."""
    from optuna.trial import TrialState

    out = Tally()
    for sd, trials in zip(studies, trials_of, strict=True):
        replaced = confirm_mod.replaced_trials(trials)
        for t in trials:
            if t.number not in replaced and _waiting(t):
                out.waiting += 1
            if t.number in replaced or not t.state.is_finished():
                continue
            out.done += t.state != TrialState.FAIL  # a failed trial leaves its slot (hpo/runner.py)
            out.pruned += t.state == TrialState.PRUNED
            out.failed += t.state == TrialState.FAIL
            if t.state != TrialState.COMPLETE or t.value is None or not math.isfinite(t.value):
                continue
            if confirm_mod.is_confirmation(t):
                continue  # a retrained best setting, not a new best
            cell = sd.cell if sd.mode == "compare" else str(t.params.get("cell", "?"))
            old = out.best.get(sd.task)
            better = old is None or (
                t.value > old[0] if sd.direction == "maximize" else t.value < old[0]
            )
            if better:
                out.best[sd.task] = (float(t.value), cell)
    return out


def _waiting(trial: Any) -> bool:
    """A RUNNING trial parked at a gate of the staged filter (not yet past the step where it
    last waited)."""
    from optuna.trial import TrialState

    from rnnopt.hpo.staged import GATE_VALUE_ATTR

    carried = trial.user_attrs.get(GATE_VALUE_ATTR)
    if trial.state != TrialState.RUNNING or not isinstance(carried, list) or not carried:
        return False
    return int(carried[0]) >= max(trial.intermediate_values, default=0)


class RunProgress:
    """Poll ``url`` every ``poll_s`` seconds in a thread and display the run's progress.

    ``total`` is the number of trials the run finishes (``n_trials`` per study plus any
    confirmation trials); use as a context manager around the workers.
    """

    def __init__(
        self,
        url: str,
        studies: Sequence[Any],
        total: int,
        *,
        stream: TextIO,
        poll_s: float = 5.0,
        line_every_s: float = 30.0,
    ) -> None:
        self.url = url
        self.studies = list(studies)
        self.total = total
        self.stream = stream
        self.poll_s = poll_s
        self.line_every_s = line_every_s
        self.metric = {sd.task: sd.metric for sd in self.studies}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rnnopt-progress", daemon=True)
        self._storage: Any = None
        self._bar: Any = None
        self._start = time.monotonic()
        self._first: int | None = None  # trials already done when the command started
        self._last_line = -math.inf
        self._last_said: tuple[int, int, int, int] | None = None

    # -- reading ------------------------------------------------------------------------------
    def poll(self) -> Tally:
        import optuna

        from rnnopt import storage as st

        if self._storage is None:
            self._storage = st.open_storage(self.url)
        trials_of = []
        for sd in self.studies:
            study = optuna.load_study(study_name=sd.name, storage=self._storage)
            trials_of.append(study.get_trials(deepcopy=False))
        return tally(self.studies, trials_of)

    # -- text ---------------------------------------------------------------------------------
    def best_text(self, counts: Tally) -> str:
        parts = [
            f"best {task} {self.metric.get(task, 'value')} {value:.4g} ({cell})"
            for task, (value, cell) in counts.best.items()
        ]
        return ", ".join(parts) if parts else "no completed trial yet"

    def eta_s(self, counts: Tally) -> float | None:
        """Seconds left at this command's rate so far (None before its first trial)."""
        first = counts.done if self._first is None else self._first
        new = counts.done - first
        if new <= 0:
            return None
        rate = new / (time.monotonic() - self._start)
        return max(0, self.total - counts.done) / rate

    def line(self, counts: Tally) -> str:
        from tqdm import tqdm

        done = min(counts.done, self.total)
        eta = self.eta_s(counts)
        left = "ETA unknown" if eta is None else f"ETA {tqdm.format_interval(eta)}"
        if done >= self.total:
            left = f"took {tqdm.format_interval(time.monotonic() - self._start)}"
        return (
            f"trials {done}/{self.total} done, {self.states_text(counts)}; "
            f"{self.best_text(counts)}; {left}"
        )

    def states_text(self, counts: Tally) -> str:
        waiting = f"{counts.waiting} waiting at a gate, " if counts.waiting else ""
        return f"{waiting}{counts.pruned} pruned, {counts.failed} failed"

    # -- display ------------------------------------------------------------------------------
    def _show(self, counts: Tally, final: bool = False) -> None:
        if self._first is None:
            self._first = counts.done
        if self.stream.isatty():
            from tqdm import tqdm

            if self._bar is None:
                sized = _columns(self.stream) > 0  # a pty without a size reports 0 columns
                self._bar = tqdm(
                    total=self.total, initial=min(counts.done, self.total), desc="trials",
                    unit="trial", file=self.stream, dynamic_ncols=sized,
                    ncols=None if sized else 120, nrows=None if sized else 20, smoothing=0,
                )
            self._bar.update(max(0, min(counts.done, self.total) - self._bar.n))  # feeds the ETA
            self._bar.set_postfix_str(
                f"{self.states_text(counts)}, {self.best_text(counts)}", refresh=False
            )
            self._bar.refresh()
            if final:
                self._bar.close()
            return
        key = (counts.done, counts.pruned, counts.failed, counts.waiting)
        now = time.monotonic()
        due = now - self._last_line >= self.line_every_s
        if (final and key != self._last_said) or (due and key != self._last_said):
            logger.info("%s", self.line(counts))
            self._last_line, self._last_said = now, key

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self._show(self.poll())
            except Exception as exc:  # a display must never stop the run
                logger.debug("progress poll failed: %s", exc)

    def __enter__(self) -> RunProgress:
        try:
            self._show(self.poll())
        except Exception as exc:
            logger.debug("progress poll failed: %s", exc)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        try:
            self._show(self.poll(), final=True)
        except Exception as exc:
            logger.debug("progress poll failed: %s", exc)
        finally:
            if self._bar is not None:
                self._bar.close()
            if self._storage is not None:
                engine = getattr(self._storage, "engine", None)
                if engine is not None:
                    engine.dispose()


def _columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 0
