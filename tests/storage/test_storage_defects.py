"""Storage defects found by a reliability pass, each on the real servers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import TrialState

from rnnopt import storage as st
from rnnopt.errors import StorageError
from rnnopt.hpo.plan import Plan, make_plan
from rnnopt.hpo.runner import prepare_studies
from rnnopt.storage import compat
from rnnopt.study import build_parser, summary_table

REPO = Path(__file__).resolve().parents[2]
TINY = """
[study]
max_steps = {max_steps}
n_trials = {n_trials}

[train]
batch_size = 4
unroll = 10
eval_interval = 5
eval_batches = 1

[space]
hidden_size = 8
layers = 1
"""

pytestmark = pytest.mark.storage


def _plan(tmp_path: Path, url: str, *extra: str, n_trials: int = 1) -> Plan:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.format(max_steps=10, n_trials=n_trials))
    args = build_parser().parse_args(
        ["--task", "arith", "--cells", "gru", "--study-file", str(path), "--storage", url,
         "--workers", "1", "--device", "cpu", *extra]
    )
    return make_plan(args, [])


def _attrs_and_trials(url: str, name: str) -> tuple[dict, int]:
    study = optuna.load_study(study_name=name, storage=url)
    return study.user_attrs, len(study.trials)


@pytest.mark.parametrize("storage_url", ["sqlite", "postgresql", "mysql"], indirect=True)
def test_a_foreign_study_of_the_same_name_is_refused(storage_url: str, tmp_path: Path) -> None:
    foreign = optuna.create_study(study_name="arith/gru", storage=storage_url,
                                  direction="minimize")
    foreign.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=2)
    plan = _plan(tmp_path, storage_url)
    with pytest.raises(StorageError, match=r"'arith/gru' .* has direction minimize, not maximize"):
        prepare_studies(plan)
    assert _attrs_and_trials(storage_url, "arith/gru") == ({}, 2)
    # Same direction, but trials and no rnnopt attributes: still not ours.
    optuna.create_study(study_name="b/arith/gru", storage=storage_url, direction="maximize")
    optuna.load_study(study_name="b/arith/gru", storage=storage_url).optimize(
        lambda t: t.suggest_float("x", 0, 1), n_trials=1
    )
    with pytest.raises(StorageError, match="is not an rnnopt study"):
        prepare_studies(_plan(tmp_path, storage_url, "--study-name", "b/"))
    assert _attrs_and_trials(storage_url, "b/arith/gru") == ({}, 1)


def test_a_study_of_another_mode_or_metric_is_refused(sqlite_url: str, tmp_path: Path) -> None:
    prepare_studies(_plan(tmp_path, sqlite_url))
    optuna.load_study(study_name="arith/gru", storage=sqlite_url).set_user_attr(
        "rnnopt.mode", "evolve"
    )
    with pytest.raises(StorageError, match=r"has rnnopt\.mode='evolve', not 'compare'"):
        prepare_studies(_plan(tmp_path, sqlite_url))


def test_names_differing_in_case_do_not_merge_on_mariadb(mysql_url: str, tmp_path: Path) -> None:
    prepare_studies(_plan(tmp_path, mysql_url, "--study-name", "CaseA/"))
    before = _attrs_and_trials(mysql_url, "CaseA/arith/gru")
    with pytest.raises(StorageError, match="differs only in case from the existing study"):
        prepare_studies(_plan(tmp_path, mysql_url, "--study-name", "casea/"))
    assert _attrs_and_trials(mysql_url, "CaseA/arith/gru") == before
    assert optuna.get_all_study_names(mysql_url) == ["CaseA/arith/gru"]


def test_names_differing_in_case_are_two_studies_on_postgresql(
    postgres_url: str, tmp_path: Path
) -> None:
    prepare_studies(_plan(tmp_path, postgres_url, "--study-name", "CaseA/"))
    prepare_studies(_plan(tmp_path, postgres_url, "--study-name", "casea/"))
    assert sorted(optuna.get_all_study_names(postgres_url)) == [
        "CaseA/arith/gru", "casea/arith/gru"
    ]


OPENER = """
import sys, time
from rnnopt import storage as st
url, start = sys.argv[1], float(sys.argv[2])
while time.time() < start:
    time.sleep(0.005)
st.open_storage(url)
st.install_views(url)
print("ok")
"""


@pytest.mark.slow
@pytest.mark.parametrize("storage_url", ["postgresql", "mysql"], indirect=True)
def test_four_processes_start_together_on_an_empty_database(storage_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.time() + 6  # after every interpreter has imported rnnopt
    procs = [
        subprocess.Popen([sys.executable, "-c", OPENER, storage_url, str(start)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0 and out.strip() == "ok", err[-2000:]
    engine = sa.create_engine(storage_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM version_info")).scalar() == 1
    engine.dispose()


def test_a_stale_trial_is_failed_with_a_reason_and_retried_without_it(sqlite_url: str) -> None:
    storage = st.open_storage(sqlite_url, heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    with compat.quiet_experimental():
        trial = study.ask()
    trial.suggest_float("x", 0, 1)
    trial.set_user_attr("checkpoint_artifact", "a1")
    storage.record_heartbeat(compat.trial_id_of(trial))
    time.sleep(2.5)
    st.fail_stale_trials(study)
    failed, retry = study.get_trials(deepcopy=False)
    assert failed.state == TrialState.FAIL
    assert failed.user_attrs["stop_reason"] == "failed"
    assert "heartbeat" in failed.user_attrs["reason"]
    assert retry.state == TrialState.WAITING and retry.params == failed.params
    assert retry.user_attrs == {"checkpoint_artifact": "a1"}
    assert retry.system_attrs["failed_trial"] == 0
    assert st.replaced_numbers(study.get_trials()) == {0}


def test_a_trial_killed_before_its_first_heartbeat_still_goes_stale(storage_url: str) -> None:
    # A worker SIGKILLed between claiming a trial and beating for it left the trial RUNNING for
    # ever (Optuna's stale check skips trials without a heartbeat): a resumed study waited on it.
    storage = st.open_storage(storage_url, heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    with compat.quiet_experimental():
        orphan = study.ask()
    st.fail_stale_trials(study)  # first sight: given a heartbeat, not failed yet
    assert compat.stored_trial(orphan).state == TrialState.RUNNING
    time.sleep(2.5)
    st.fail_stale_trials(study)
    failed, retry = study.get_trials(deepcopy=False)
    assert failed.state == TrialState.FAIL and "heartbeat" in failed.user_attrs["reason"]
    assert retry.state == TrialState.WAITING and retry.system_attrs["failed_trial"] == 0


def test_the_final_table_does_not_count_replaced_trials(sqlite_url: str, tmp_path: Path) -> None:
    plan = _plan(tmp_path, sqlite_url, n_trials=1)
    prepare_studies(plan)
    study = optuna.load_study(study_name="arith/gru", storage=sqlite_url)
    with compat.quiet_experimental():
        first = study.ask()
    study.tell(first, state=TrialState.FAIL)
    st.requeue(study, compat.stored_trial(first), max_retry=3)
    with compat.quiet_experimental():
        retry = study.ask()
    study.tell(retry, 0.5)
    table = summary_table(plan)
    assert "0.5000  [1 trials, 0 pruned]" in table, table


@pytest.mark.slow
def test_a_killed_worker_still_leaves_the_table(sqlite_url: str, tmp_path: Path) -> None:
    (tmp_path / "tiny.toml").write_text(TINY.format(max_steps=150, n_trials=3))
    cmd = [sys.executable, "-m", "rnnopt.study", "--task", "arith", "--cells", "gru",
           "--study-file", "tiny.toml", "--storage", sqlite_url, "--workers", "2",
           "--device", "cpu", "--heartbeat", "1", "--pruner", "none"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    children: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.5)
        children = subprocess.run(["pgrep", "-f", "-P", str(proc.pid), "spawn_main"],
                                  capture_output=True, text=True).stdout.split()
        try:
            running = optuna.load_study(study_name="arith/gru", storage=sqlite_url).get_trials(
                states=(TrialState.RUNNING,))
        except KeyError:
            continue
        if len(children) == 2 and running:
            break
    assert len(children) == 2
    os.kill(int(children[0]), signal.SIGKILL)
    out, err = proc.communicate(timeout=400)
    assert proc.returncode == 1, err[-2000:]
    assert "arith accuracy" in out and "[3 trials" in out, out
    assert "error: 1 of 2 workers failed (worker" in err and "killed by signal 9" in err
    trials = optuna.load_study(study_name="arith/gru", storage=sqlite_url).get_trials()
    assert not [t for t in trials if t.state == TrialState.RUNNING]
