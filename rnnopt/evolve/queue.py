"""Claiming work in a search run's studies: every worker claims WAITING trials (WAITING ->
RUNNING is atomic in the storage, ``storage.compat.claim_waiting``), holds a heartbeat on what
it runs (``storage.Heartbeat``), and fails a crashed worker's stale trials; a stale step is
re-queued with its attributes, a stale evaluation's slot is enqueued again by its step's
coordinator."""

from __future__ import annotations

from collections.abc import Iterable

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from rnnopt import storage as st
from rnnopt.storage import compat

__all__ = ["LIVE", "Queue", "open_storage"]

LIVE = (TrialState.WAITING, TrialState.RUNNING)


def _retry_steps(study: optuna.Study, trial: FrozenTrial) -> None:
    """Heartbeat callback: re-queue a crashed worker's step, not its evaluations (their
    coordinator enqueues missing slots itself, so they are never queued twice)."""
    if study.study_name.endswith("/genomes"):
        st.requeue(study, trial, max_retry=None)


def open_storage(url: str, *, heartbeat: int = 30, grace: int | None = None) -> RDBStorage:
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


class Queue:
    """One worker's claims on a storage: the trials it holds RUNNING, kept alive by one
    heartbeat thread."""

    def __init__(self, storage: RDBStorage, heartbeat: int) -> None:
        interval = storage.get_heartbeat_interval() or heartbeat
        self._beat = st.Heartbeat(storage, max(0.2, interval / 2))

    def hold(self, trial_id: int) -> None:
        self._beat.hold(trial_id)

    def close(self) -> None:
        self._beat.close()

    @staticmethod
    def fail_stale(*studies: optuna.Study) -> None:
        for study in studies:
            st.fail_stale_trials(study)

    def claim(self, study: optuna.Study, candidates: Iterable[FrozenTrial]) -> optuna.Trial | None:
        """Claim the first WAITING trial another worker has not (WAITING -> RUNNING)."""
        for ft in candidates:
            trial = compat.claim_waiting(study, ft.number)
            if trial is not None:
                self.hold(compat.trial_id_of(trial))
                return trial
        return None

    def tell(self, study: optuna.Study, trial: optuna.Trial, value: float) -> None:
        study.tell(trial, value)
        self._beat.release(compat.trial_id_of(trial))

    def drop(self, study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
        """Fail a claimed trial that holds nothing to run, saying why."""
        trial.set_user_attr("stop_reason", "failed")
        trial.set_user_attr("reason", reason)
        study.tell(trial, state=TrialState.FAIL)
        self._beat.release(compat.trial_id_of(trial))
