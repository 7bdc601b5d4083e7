"""Confirmation seeds (--confirm K): enqueueing, counting, intervals, and a SIGKILLed run."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from study_helpers import cli_env, popen, run, slots, tiny_study, trials

from rnnopt import stats
from rnnopt.hpo import confirm

SMALL_XML = "[train.xml]\ntask_options = { valid_size = 60, test_size = 60, force_close_after = 6 }"


def _search_study(values: list[float]) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    for i, v in enumerate(values):
        study.add_trial(
            create_trial(
                value=v, params={"lr": 0.1 * (i + 1)},
                distributions={"lr": FloatDistribution(0.01, 1.0)},
            )
        )  # fmt: skip
    return study


def test_top_up_enqueues_k_new_seeds_for_the_best_setting_once() -> None:
    study = _search_study([0.3, 0.5, 0.4])
    args = {"search": False, "direction": "maximize", "k": 3, "seed": 7}
    assert confirm.top_up(study, study.get_trials(), ["gru"], **args) == 3
    assert confirm.top_up(study, study.get_trials(), ["gru"], **args) == 0  # idempotent
    queued = [t for t in study.get_trials() if confirm.is_confirmation(t)]
    assert [t.state for t in queued] == [TrialState.WAITING] * 3
    assert {t.user_attrs["confirm_of"] for t in queued} == {1}  # the 0.5 trial
    assert [t.system_attrs["fixed_params"]["lr"] for t in queued] == [pytest.approx(0.2)] * 3
    seeds = sorted(t.user_attrs["confirm_seed"] for t in queued)
    assert seeds == [7 + confirm.CONFIRM_SEED_OFFSET + i for i in range(3)]
    # A larger K on a rerun adds only the missing seeds.
    assert confirm.top_up(study, study.get_trials(), ["gru"], **{**args, "k": 4}) == 1


def test_top_up_waits_for_the_search_to_finish() -> None:
    study = _search_study([0.3])
    study.enqueue_trial({"lr": 0.5})  # a search trial still waiting
    args = {"search": False, "direction": "maximize", "k": 2, "seed": 0}
    assert confirm.top_up(study, study.get_trials(), ["gru"], **args) == 0


def test_interval_and_verdicts_by_hand() -> None:
    mean, low, high = stats.mean_interval([0.40, 0.42, 0.44])
    # t(0.975, 2 dof) = 4.302653; standard error = 0.02 / sqrt(3)
    half = 4.302653 * 0.02 / math.sqrt(3)
    assert (mean, low, high) == pytest.approx((0.42, 0.42 - half, 0.42 + half), abs=1e-6)
    best = confirm.Confirmation(0.5, (0.50, 0.51, 0.49), 3, 0.5, 0.48, 0.52)
    close = confirm.Confirmation(0.5, (0.47, 0.52, 0.50), 3, 0.4967, 0.43, 0.56)
    far = confirm.Confirmation(0.4, (0.30, 0.31, 0.29), 3, 0.3, 0.28, 0.32)
    one = confirm.Confirmation(0.4, (0.35,), 2, 0.35, math.nan, math.nan)
    verdicts = confirm.compare_cells({"a": best, "b": close, "c": far, "d": one}, "maximize")
    assert verdicts == {"a": "best", "b": "within noise", "c": "worse", "d": "too few seeds"}
    # Lower is better: the same values, the other way round.
    assert confirm.compare_cells({"a": best, "c": far}, "minimize") == {
        "a": "worse", "c": "best"
    }
    # Against the LSTM (the paper's reference): far is 0.2 below best, t(0.975, 4 dof) = 2.776445
    # times a standard error of sqrt(2 * 0.0001 / 3) on either side.
    d = confirm.difference(best, far, "maximize")
    half = 2.776445 * math.sqrt(2 * 0.0001 / 3)
    assert (d.value, d.low, d.high) == pytest.approx((-0.2, -0.2 - half, -0.2 + half), abs=1e-6)
    assert d.verdict == "worse" and confirm.difference(best, far, "minimize").verdict == "better"
    assert confirm.difference(best, one, "maximize") is None
    against = confirm.against_reference({"lstm": best, "gru": close, "mut1": far}, "maximize")
    assert {c: x.verdict for c, x in against.items()} == {"gru": "within noise", "mut1": "worse"}
    assert confirm.against_reference({"gru": close}, "maximize") == {}
    assert confirm.describe(far, "worse", d) == (
        f"confirm 0.3000 [0.2800, 0.3200] (3/3 seeds; worse; vs lstm -0.2 "
        f"[{-0.2 - half:+.4g}, {-0.2 + half:+.4g}] worse)"
    )


def _wait_for(predicate, timeout: float = 180, every: float = 0.2):  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not reached in time")


def _confirming_with_checkpoint(url: str, name: str):  # type: ignore[no-untyped-def]
    try:
        ts = trials(url, name)
    except KeyError:
        return None
    for t in ts:
        if (
            t.state == TrialState.RUNNING
            and confirm.is_confirmation(t)
            and t.user_attrs.get("checkpoint_step", 0) >= 10
        ):
            return t
    return None


@pytest.mark.slow
def test_confirm_end_to_end_survives_sigkill_and_counts_right(
    sqlite_url: str, tmp_path: Path
) -> None:
    study = tiny_study(tmp_path, max_steps=60, n_trials=1, eval_interval=10, extra=SMALL_XML)
    args = [
        "--task", "xml", "--cells", "tanh", "--study-file", str(study), "--pruner", "none",
        "--storage", sqlite_url, "--heartbeat", "1", "--confirm", "2", "--workers", "2",
    ]  # fmt: skip
    first = popen(args, tmp_path)
    try:
        victim = _wait_for(lambda: _confirming_with_checkpoint(sqlite_url, "xml/tanh"))
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    try:
        res = run([*args, "--verbose"], tmp_path, timeout=300)
    except subprocess.TimeoutExpired as exc:  # say where it stood
        states = [(t.number, t.state.name, t.user_attrs) for t in trials(sqlite_url, "xml/tanh")]
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        raise AssertionError(f"resume hung; trials {states}; stderr {err[-3000:]}") from None
    assert res.returncode == 0, res.stderr[-2000:]
    ts = trials(sqlite_url, "xml/tanh")
    assert not any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in ts)
    counted = slots(ts)
    search = [t for t in counted if not confirm.is_confirmation(t)]
    confirming = [t for t in counted if confirm.is_confirmation(t)]
    assert len(search) == 1 and search[0].state == TrialState.COMPLETE
    assert len(confirming) == 2 and all(t.state == TrialState.COMPLETE for t in confirming)
    assert {t.user_attrs["confirm_of"] for t in confirming} == {search[0].number}
    assert all(t.params == search[0].params for t in confirming)
    assert sorted(t.user_attrs["confirm_seed"] for t in confirming) == [
        confirm.CONFIRM_SEED_OFFSET, confirm.CONFIRM_SEED_OFFSET + 1
    ]
    # The killed confirmation was retried as a confirmation, from its checkpoint.
    retry = next(t for t in ts if t.system_attrs.get("failed_trial") == victim.number)
    assert retry.user_attrs["confirm_seed"] == victim.user_attrs["confirm_seed"]
    assert retry.user_attrs.get("resumed_from_step", 0) >= 10
    assert "confirm " in res.stdout and "(2/2 seeds" in res.stdout
    assert confirm.SCOPE in res.stdout  # what the intervals do not cover

    # Confirmations do not count toward --n-trials: one more search trial runs.
    res = run([*args, "--n-trials", "2"], tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    counted = slots(trials(sqlite_url, "xml/tanh"))
    search = [t for t in counted if not confirm.is_confirmation(t)]
    assert len(search) == 2 and all(t.state.is_finished() for t in search)

    report = subprocess.run(
        [sys.executable, "-m", "rnnopt.report", "--storage", sqlite_url, "--format", "md",
         "--out", str(tmp_path / "report")],
        env=cli_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr[-2000:]
    text = (tmp_path / "report" / "report.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| xml | tanh | "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[4] == "2/2" and cells[6].startswith("[") and cells[7] == "best"
    assert confirm.SCOPE in text


@pytest.mark.parametrize(
    ("argv", "file_line", "needle"),
    [
        (["--confirm", "-1"], "", "--confirm must be an integer >= 0, got -1"),
        ([], "confirm = '3'", "--confirm must be an integer >= 0, got '3'"),
    ],
)
def test_bad_confirm_is_a_one_line_error(
    argv: list[str], file_line: str, needle: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from rnnopt._cli import run_cli
    from rnnopt.study import main

    monkeypatch.chdir(tmp_path)
    study = tmp_path / "s.toml"
    study.write_text(f"[study]\nn_trials = 1\nmax_steps = 2\n{file_line}\n")
    code = run_cli(main, ["--task", "xml", "--cells", "gru", "--study-file", str(study), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "rnnopt.db").exists()
