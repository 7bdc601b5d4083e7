"""End-to-end studies on the real servers: completion, concurrency, crash/retry, Ctrl-C, pruning."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from study_helpers import popen, run, slots, tiny_study, trials

pytestmark = [pytest.mark.storage, pytest.mark.slow]


@pytest.mark.parametrize("storage_url", ["sqlite", "postgresql", "mysql"], indirect=True)
def test_short_study_completes(storage_url: str, tmp_path: Path) -> None:
    study = tiny_study(tmp_path, max_steps=20, n_trials=2, eval_interval=10)
    res = run(
        [
            "--task",
            "xml",
            "--cells",
            "gru",
            "--study-file",
            str(study),
            "--storage",
            storage_url,
            "--artifacts",
            str(tmp_path / "art"),
        ],
        tmp_path,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "optuna-dashboard" in res.stdout and "gru" in res.stdout.splitlines()[-1]
    ts = trials(storage_url, "xml/gru")
    assert len(ts) == 2 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in ts)
    for t in ts:
        assert t.user_attrs["cell"] == "gru" and t.user_attrs["n_params"] > 0
        assert t.user_attrs["stop_reason"] in ("finished", "pruned", "diverged")
        assert set(t.intermediate_values) <= {10, 20}
        assert {"lr", "clip_norm", "init_scale"} <= set(t.params)
    attrs = optuna.load_study(study_name="xml/gru", storage=storage_url).user_attrs
    assert attrs["rnnopt.task"] == "xml" and attrs["rnnopt.cell"] == "gru"
    assert attrs["rnnopt.mode"] == "compare" and attrs["rnnopt.metric"] == "accuracy"
    # JSON values, not JSON strings inside JSON (`optuna trials` shows them readably).
    assert attrs["rnnopt.budget"] == {"n_trials": 2, "max_steps": 20}
    assert attrs["rnnopt.space"]["params"]["hidden_size"]["value"] == 16
    from optuna_dashboard import get_note

    note = get_note(optuna.load_study(study_name="xml/gru", storage=storage_url))
    assert "xml" in note and "gru" in note and "python -m rnnopt.study" in note
    # Rerunning with a larger total continues; finished trials are not redone.
    res = run(
        [
            "--task",
            "xml",
            "--cells",
            "gru",
            "--study-file",
            str(study),
            "--n-trials",
            "3",
            "--storage",
            storage_url,
            "--artifacts",
            str(tmp_path / "art"),
        ],
        tmp_path,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    again = trials(storage_url, "xml/gru")
    assert len(again) == 3 and [t.datetime_start for t in again[:2]] == [
        t.datetime_start for t in ts
    ]


def test_three_workers_reach_exactly_n_trials(postgres_url: str, tmp_path: Path) -> None:
    study = tiny_study(tmp_path, max_steps=10, n_trials=7, eval_interval=5)
    args = [
        "--task",
        "xml",
        "--cells",
        "tanh",
        "--study-file",
        str(study),
        "--storage",
        postgres_url,
        "--artifacts",
        str(tmp_path / "art"),
    ]
    procs = [popen(args, tmp_path) for _ in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-2000:]
    ts = trials(postgres_url, "xml/tanh")
    assert len(ts) == 7 and sorted(t.number for t in ts) == list(range(7))
    assert all(t.state.is_finished() for t in ts)
    assert not any(t.state == TrialState.RUNNING for t in ts)


def _wait_for(predicate, timeout: float = 120, every: float = 0.3):  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not reached in time")


def _running_with_checkpoint(url: str, name: str, min_step: int):  # type: ignore[no-untyped-def]
    try:
        ts = trials(url, name)
    except KeyError:
        return None
    for t in ts:
        if t.state == TrialState.RUNNING and t.user_attrs.get("checkpoint_step", 0) >= min_step:
            return t
    return None


def test_killed_worker_trial_is_retried_from_its_checkpoint(
    sqlite_url: str, tmp_path: Path
) -> None:
    study = tiny_study(tmp_path, max_steps=400, n_trials=1, eval_interval=10)
    args = [
        "--task",
        "xml",
        "--cells",
        "tanh",
        "--study-file",
        str(study),
        "--pruner",
        "none",
        "--storage",
        sqlite_url,
        "--heartbeat",
        "1",
        "--workers",  # SIGKILL of the command must take its worker processes with it
        "2",
    ]
    first = popen(args, tmp_path)
    try:
        victim = _wait_for(lambda: _running_with_checkpoint(sqlite_url, "xml/tanh", 20))
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    ckpt_step = trials(sqlite_url, "xml/tanh")[victim.number].user_attrs["checkpoint_step"]
    res = run(args, tmp_path, timeout=240)
    assert res.returncode == 0, res.stderr[-2000:]
    ts = trials(sqlite_url, "xml/tanh")
    assert ts[0].state == TrialState.FAIL and not any(t.state == TrialState.RUNNING for t in ts)
    retry = ts[-1]
    assert retry.state == TrialState.COMPLETE
    assert retry.system_attrs["failed_trial"] == 0
    assert retry.params == ts[0].params
    assert retry.user_attrs["resumed_from_step"] == ckpt_step
    # Its curve: the parent's evaluations up to the checkpoint, carried over, then its own.
    upto = {s: v for s, v in ts[0].intermediate_values.items() if s <= ckpt_step}
    assert upto and {s: v for s, v in retry.intermediate_values.items() if s <= ckpt_step} == upto
    assert max(retry.intermediate_values) > ckpt_step
    assert len(slots(ts)) == 1


def test_ctrl_c_then_rerun_completes_with_the_right_count(sqlite_url: str, tmp_path: Path) -> None:
    study = tiny_study(tmp_path, max_steps=200, n_trials=2, eval_interval=10)
    args = [
        "--task",
        "xml",
        "--cells",
        "tanh",
        "--study-file",
        str(study),
        "--pruner",
        "none",
        "--storage",
        sqlite_url,
    ]
    first = popen(args, tmp_path)
    try:
        _wait_for(lambda: _running_with_checkpoint(sqlite_url, "xml/tanh", 10))
    finally:
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=120)
    assert first.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    ts = trials(sqlite_url, "xml/tanh")
    assert not any(t.state == TrialState.RUNNING for t in ts)
    assert any(t.state == TrialState.WAITING for t in ts)  # queued for the rerun
    res = run(args, tmp_path, timeout=240)
    assert res.returncode == 0, res.stderr[-2000:]
    ts = trials(sqlite_url, "xml/tanh")
    done = slots(ts)
    assert len(done) == 2 and all(t.state == TrialState.COMPLETE for t in done)
    assert not any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in ts)


def test_pruner_prunes_weak_trials_and_says_why(sqlite_url: str, tmp_path: Path) -> None:
    # Half the grid is a learning rate far too small to learn anything in 60 steps.
    study = tiny_study(
        tmp_path,
        max_steps=60,
        n_trials=8,
        eval_interval=10,
        extra="lr = [0.0001, 2.0]\nclip_norm = 5\ninit_scale = 1",
    )
    res = run(
        [
            "--task",
            "xml",
            "--cells",
            "gru",
            "--study-file",
            str(study),
            "--sampler",
            "paper",
            "--pruner",
            "median",
            "--seed",
            "3",
            "--storage",
            sqlite_url,
        ],
        tmp_path,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    ts = trials(sqlite_url, "xml/gru")
    pruned = [t for t in ts if t.state == TrialState.PRUNED]
    assert pruned, [(t.params, t.state, t.intermediate_values) for t in ts]
    for t in pruned:
        assert t.user_attrs["stop_reason"] in ("pruned", "diverged")
        assert t.user_attrs["reason"]
    assert any(t.params["lr"] == 0.0001 for t in pruned)


def test_search_mode_with_two_local_workers(sqlite_url: str, tmp_path: Path) -> None:
    study = tiny_study(tmp_path, max_steps=20, n_trials=3, eval_interval=10)
    res = run(["--task", "xml", "--cells", "lstm,gru", "--mode", "search", "--workers", "2",
               "--study-file", str(study), "--storage", sqlite_url], tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    ts = trials(sqlite_url, "xml/search")
    assert len(ts) == 3 and all(t.state.is_finished() for t in ts)
    assert all(t.params["cell"] == t.user_attrs["cell"] for t in ts)
    attrs = optuna.load_study(study_name="xml/search", storage=sqlite_url).user_attrs
    assert attrs["rnnopt.cell"] == "*" and attrs["rnnopt.mode"] == "search"
    table = res.stdout.splitlines()
    assert table[-2].startswith("lstm") and table[-1].startswith("gru")
    _assert_one_log_format(res.stderr)
    # One progress display for the run, from the parent; no per-trial lines without --verbose.
    assert "rnnopt.progress: trials 3/3 done" in res.stderr
    assert "training " not in res.stderr and ": step " not in res.stderr
    # --verbose adds each evaluation of each trial (as log records, in the same format).
    res = run(["--task", "xml", "--cells", "lstm,gru", "--mode", "search", "--workers", "2",
               "--study-file", str(study), "--storage", sqlite_url, "--n-trials", "4",
               "--verbose"], tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    _assert_one_log_format(res.stderr)
    assert re.search(r"rnnopt\.objective: trial 3 of xml/search: step 10, accuracy", res.stderr)
    assert "rnnopt.progress: trials 4/4 done" in res.stderr


LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR) [a-z_][\w.]*: ")


def _assert_one_log_format(stderr: str) -> None:
    """Every line of the parent and its workers through `logging` in one format: no Optuna
    "[I ...]" lines, no "[worker N]" prefixes, no "\\r" step lines, no __main__ loggers."""
    assert "\r" not in stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert lines
    for ln in lines:
        assert LOG_LINE.match(ln), ln
        assert not ln.split(": ", 1)[0].endswith(("__main__", "__mp_main__")), ln
