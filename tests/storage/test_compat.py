"""One test per use of Optuna's private API (rnnopt.storage.compat): an Optuna upgrade that
changes one of them fails the test named after it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

from rnnopt.storage import compat

REPO = Path(__file__).resolve().parents[2]


def _study(url: str, heartbeat: int | None = None) -> optuna.Study:
    with compat.quiet_experimental():
        storage = optuna.storages.RDBStorage(url, heartbeat_interval=heartbeat, grace_period=1
                                             if heartbeat else None)
    return optuna.create_study(storage=storage, study_name="s")


def test_storage_of_is_the_studys_storage(sqlite_url: str) -> None:
    study = _study(sqlite_url)
    assert isinstance(compat.storage_of(study), optuna.storages.BaseStorage)
    assert compat.storage_of(study).get_study_id_from_name("s") == compat.study_id_of(study)


def test_trial_id_of_and_stored_trial(sqlite_url: str) -> None:
    study = _study(sqlite_url)
    trial = study.ask()
    frozen = compat.stored_trial(trial)
    assert frozen.number == trial.number and frozen._trial_id == compat.trial_id_of(trial)
    compat.storage_of(study).set_trial_system_attr(compat.trial_id_of(trial), "k", 1)
    assert compat.stored_trial(trial).system_attrs["k"] == 1


def test_trial_from_id_gives_a_live_trial(sqlite_url: str) -> None:
    study = _study(sqlite_url)
    tid = compat.storage_of(study).create_new_trial(compat.study_id_of(study))
    trial = compat.trial_from_id(study, tid)
    assert trial.suggest_float("x", 0, 1) is not None
    study.tell(trial, 1.0)
    assert study.trials[0].state == TrialState.COMPLETE


def test_claim_waiting_moves_a_queued_trial_once(sqlite_url: str) -> None:
    study = _study(sqlite_url)
    study.enqueue_trial({"x": 0.5})
    first = compat.claim_waiting(study, 0)
    assert first is not None and compat.stored_trial(first).state == TrialState.RUNNING
    assert compat.claim_waiting(study, 0) is None  # already claimed
    study.tell(first, 1.0)
    assert compat.claim_waiting(study, 0) is None  # finished


def test_stale_trial_ids_after_the_grace_period(sqlite_url: str) -> None:
    study = _study(sqlite_url, heartbeat=1)
    trial = study.ask()
    compat.storage_of(study).record_heartbeat(compat.trial_id_of(trial))
    assert compat.stale_trial_ids(study) == []
    time.sleep(2.2)
    assert compat.stale_trial_ids(study) == [compat.trial_id_of(trial)]
    assert compat.stale_trial_ids(_study(sqlite_url.replace(".db", "2.db"))) == []


def test_running_without_heartbeat_lists_only_unbeaten_running_trials(sqlite_url: str) -> None:
    study = _study(sqlite_url, heartbeat=1)
    beaten, unbeaten = study.ask(), study.ask()
    compat.storage_of(study).record_heartbeat(compat.trial_id_of(beaten))
    assert compat.running_without_heartbeat(study) == [compat.trial_id_of(unbeaten)]
    study.tell(unbeaten, 1.0)
    assert compat.running_without_heartbeat(study) == []
    assert compat.running_without_heartbeat(_study(sqlite_url.replace(".db", "2.db"))) == []


def test_quiet_experimental_is_scoped(sqlite_url: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with compat.quiet_experimental():
            optuna.storages.RDBStorage(sqlite_url, heartbeat_interval=5)
        experimental = optuna.exceptions.ExperimentalWarning
        assert not [w for w in caught if issubclass(w.category, experimental)]
        optuna.storages.RDBStorage(sqlite_url, heartbeat_interval=5)
    assert any(issubclass(w.category, optuna.exceptions.ExperimentalWarning) for w in caught)


def test_importing_rnnopt_installs_no_warning_filter() -> None:
    # Third-party libraries (urllib3, scipy, numpy) add filters of their own; rnnopt adds none.
    code = (
        "import warnings, optuna; before = list(warnings.filters)\n"
        "import rnnopt.evolve.search, rnnopt.evolve.__main__, rnnopt.study, rnnopt.report\n"
        "import rnnopt.dashboard, rnnopt.db, rnnopt.storage\n"
        "new = [f for f in warnings.filters if f not in before]\n"
        "bad = [f for f in new if issubclass(f[2], optuna.exceptions.ExperimentalWarning)\n"
        "       or (f[1] is not None and 'eartbeat' in f[1].pattern)\n"
        "       or (f[3] is not None and 'rnnopt' in f[3].pattern)]\n"
        "assert not bad, bad\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
