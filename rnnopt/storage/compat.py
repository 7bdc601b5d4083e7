"""The only module that touches Optuna's private API (checked against Optuna 5.1).

rnnopt drives trials with ask/tell under its own study lock and heartbeat, and the
architecture search claims queued trials itself; both need a few things Optuna keeps private.
Each use is one function here with one test in ``tests/storage/test_compat.py``, so an Optuna
upgrade that changes one of them fails one clearly named test.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "claim_waiting",
    "quiet_experimental",
    "running_without_heartbeat",
    "stale_trial_ids",
    "storage_of",
    "stored_trial",
    "study_id_of",
    "trial_from_id",
    "trial_id_of",
]


def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage a study reads and writes (``Study._storage``)."""
    return study._storage


def study_id_of(study: optuna.Study) -> int:
    """The study's id in its storage (``Study._study_id``)."""
    return study._study_id


def trial_id_of(trial: optuna.Trial) -> int:
    """The storage id of a live trial (``Trial._trial_id``)."""
    return trial._trial_id


def stored_trial(trial: optuna.Trial) -> FrozenTrial:
    """The trial as stored now, system attributes included (``Trial`` has no public
    ``system_attrs`` in Optuna 5)."""
    return storage_of(trial.study).get_trial(trial_id_of(trial))


def trial_from_id(study: optuna.Study, trial_id: int) -> optuna.Trial:
    """A live trial object for a trial this process has moved to RUNNING itself."""
    return optuna.Trial(study, trial_id)


def stale_trial_ids(study: optuna.Study) -> list[int]:
    """RUNNING trials whose heartbeat is older than the grace period
    (``optuna.storages._heartbeat``: ``BaseHeartbeat._get_stale_trial_ids``); empty without
    heartbeats."""
    from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled

    storage = storage_of(study)
    if not isinstance(storage, BaseHeartbeat) or not is_heartbeat_enabled(storage):
        return []
    return list(storage._get_stale_trial_ids(study_id_of(study)))


def running_without_heartbeat(study: optuna.Study) -> list[int]:
    """Ids of RUNNING trials with no heartbeat recorded: Optuna's stale check skips them
    (``RDBStorage._get_stale_trial_ids``), so a worker killed between claiming a trial and its
    first heartbeat would leave it RUNNING for ever. Empty without heartbeats."""
    from optuna.storages._heartbeat import is_heartbeat_enabled
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    storage = storage_of(study)
    rdb = getattr(storage, "_backend", storage)  # under Optuna's _CachedStorage
    if not isinstance(rdb, optuna.storages.RDBStorage) or not is_heartbeat_enabled(rdb):
        return []
    with _create_scoped_session(rdb.scoped_session) as session:
        rows = (
            session.query(models.TrialModel.trial_id)
            .outerjoin(models.TrialHeartbeatModel)
            .filter(models.TrialModel.study_id == study_id_of(study))
            .filter(models.TrialModel.state == TrialState.RUNNING)
            .filter(models.TrialHeartbeatModel.trial_heartbeat_id.is_(None))
            .all()
        )
    return [r[0] for r in rows]


def claim_waiting(study: optuna.Study, trial_number: int) -> optuna.Trial | None:
    """Move one WAITING trial to RUNNING atomically, as Optuna's private
    ``Study._pop_waiting_trial_id`` does; None when another worker claimed it first."""
    storage = storage_of(study)
    tid = storage.get_trial_id_from_study_id_trial_number(study_id_of(study), trial_number)
    try:
        if not storage.set_trial_state_values(tid, state=TrialState.RUNNING):
            return None
    except UpdateFinishedTrialError:
        return None
    return trial_from_id(study, tid)


@contextlib.contextmanager
def quiet_experimental() -> Iterator[None]:
    """Silence, for the calls inside only, Optuna's warnings about the experimental features
    rnnopt relies on deliberately (heartbeats, ``fail_stale_trials``, heartbeats with
    ask/tell)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        yield
