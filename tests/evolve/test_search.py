"""The architecture search: stores genomes and evaluations, resumes after SIGKILL, reports."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from rnnopt.errors import ConfigError
from rnnopt.evolve.__main__ import main
from rnnopt.evolve.config import Confirm, SearchConfig
from rnnopt.evolve.known import known
from rnnopt.evolve.report import format_report
from rnnopt.evolve.search import Evolution

REPO = Path(__file__).resolve().parents[2]
# fmt: off
TINY = [
    "--tasks", "memorize,arith", "--settings", "1", "--max-steps", "6", "--hidden", "6",
    "--eval-batches", "1", "--batch-size", "4", "--unroll", "12", "--references", "none",
    "--heartbeat", "1",
]
# fmt: on


def _tiny_memorize(**kw: Any) -> SearchConfig:
    """A search on memorize with cells small and short enough to run in seconds."""
    tiny = dict(hidden_size=4, max_steps=3, eval_batches=1, batch_size=2, unroll=8, references=())
    return SearchConfig(tasks=("memorize",), **{**tiny, **kw})


def _complete_evals(url: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name="evolve/t/evaluations", storage=url)
    return study.get_trials(states=(TrialState.COMPLETE,))


@pytest.mark.slow
def test_search_resumes_after_sigkill(sqlite_url: str, tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "rnnopt.evolve",
        *TINY,
        "--storage",
        sqlite_url,
        "--run",
        "t",
        "--generations",
        "2",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    # Kill it once a few evaluations are stored, in the middle of the seeds' work.
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        try:
            if len(_complete_evals(sqlite_url)) >= 2:
                break
        except KeyError:
            continue
    assert proc.poll() is None, "the search ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {t.user_attrs["slot"]: t.value for t in _complete_evals(sqlite_url)}
    assert len(before) >= 2

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-2000:]

    evals = _complete_evals(sqlite_url)
    slots = collections.Counter(t.user_attrs["slot"] for t in evals)
    assert max(slots.values()) == 1, "an evaluation ran twice"
    after = {t.user_attrs["slot"]: t.value for t in evals}
    assert all(after[s] == v for s, v in before.items()), "a stored evaluation was lost"
    genomes = optuna.load_study(study_name="evolve/t/genomes", storage=sqlite_url)
    steps = genomes.get_trials(states=(TrialState.COMPLETE,))
    kinds = collections.Counter(t.user_attrs["kind"] for t in steps)
    assert kinds["seed"] == 2 and kinds["mutant"] + kinds["reeval"] == 2
    assert len({t.user_attrs["step"] for t in steps}) == len(steps)
    # Each step evaluated exactly the slots its stages needed (a re-evaluation may also have
    # trained the GRU on its new settings, in slots of their own).
    for t in steps:
        mine = [
            e
            for e in evals
            if e.user_attrs["step"] == t.user_attrs["step"]
            and e.user_attrs["genome"] == t.user_attrs["genome"]
        ]
        if t.user_attrs["status"] == "rejected":
            assert {e.user_attrs["task"] for e in mine} <= {"memorize", "arith"}
        else:
            assert len(mine) == 2 * 1
    results = collections.defaultdict(set)
    for e in evals:
        results[e.user_attrs["genome"]].add((e.user_attrs["task"], e.user_attrs["setting"]))
    assert all(r <= results[known("gru").text] for r in results.values())
    for e in evals:
        assert set(e.params) == {"lr", "clip_norm", "init_scale", "layers"}
        assert 0.0 <= e.value <= 1.0
    # The stale trials of the killed worker were failed, not left RUNNING.
    for study in (
        genomes,
        optuna.load_study(study_name="evolve/t/evaluations", storage=sqlite_url),
    ):
        assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    text = format_report(sqlite_url, "t")
    assert "| gru | 1.000 |" in text and "| lstm |" in text
    gru_row = next(line for line in text.splitlines() if line.startswith("| gru |"))
    assert gru_row.count("(1.000)") == 2  # its own ratio on memorize and arith


def test_two_workers_share_a_run(storage_url: str) -> None:
    """Two workers on one storage (in turn here; the claim protocol is the same) never repeat a
    slot, and the second one picks up what the first left queued."""
    cfg = _tiny_memorize(run="t", generations=1, settings=1)
    a = Evolution(storage_url, cfg, heartbeat=1, grace=2, poll=0.1, worker=0)
    # Worker a creates the LSTM seed step and enqueues its slots, then stops after one evaluation.
    step = a._claim_step()
    assert step is not None and step.user_attrs["genome"] == known("lstm").text
    a._enqueue("0/memorize/0", 0, known("lstm"), 0, "memorize", 0)
    assert a._run_one_eval()
    a.close()  # a "crashes": its step trial stays RUNNING until its heartbeat is stale
    time.sleep(3.5)
    b = Evolution(storage_url, cfg, heartbeat=1, grace=2, poll=0.1, worker=1)
    b.work(max_idle=60)
    evals = b.evals.get_trials(states=(TrialState.COMPLETE,))
    slots = collections.Counter(t.user_attrs["slot"] for t in evals)
    assert slots and max(slots.values()) == 1
    steps = b.genomes.get_trials(states=(TrialState.COMPLETE,))
    assert {t.user_attrs["kind"] for t in steps} >= {"seed"}
    assert len(steps) == 3 and 0 in {t.user_attrs["step"] for t in steps}
    assert b.genomes.get_trials(states=(TrialState.FAIL,))  # a's step, retried by b


def test_a_step_killed_before_its_plan_is_dropped_not_run(sqlite_url: str) -> None:
    # A worker killed between creating a step and writing its plan leaves a trial with no
    # attributes; the stale-trial callback re-queues it as an empty WAITING copy.
    cfg = _tiny_memorize(run="husk", generations=0, settings=1)
    ev = Evolution(sqlite_url, cfg, heartbeat=1, grace=2, poll=0.05)
    ev.genomes.add_trial(optuna.trial.create_trial(state=TrialState.WAITING))
    ev.work(max_idle=5)
    steps = optuna.load_study(study_name="evolve/husk/genomes", storage=sqlite_url).get_trials()
    husks = [t for t in steps if "step" not in t.user_attrs]
    assert [(t.state, t.user_attrs["stop_reason"]) for t in husks] == [(TrialState.FAIL, "failed")]
    done = [t for t in steps if t.state == TrialState.COMPLETE]
    assert {t.user_attrs["kind"] for t in done} == {"seed"} and len(done) == 2


def test_settings_are_paired_across_genomes_and_new_in_each_round(sqlite_url: str) -> None:
    cfg = _tiny_memorize(run="p", generations=3, settings=2, reeval_fraction=1.0)
    Evolution(sqlite_url, cfg, poll=0.05).work(max_idle=60)
    evals = optuna.load_study(study_name="evolve/p/evaluations", storage=sqlite_url).get_trials(
        states=(TrialState.COMPLETE,)
    )
    by_setting: dict[int, set[str]] = collections.defaultdict(set)
    seen = collections.Counter()
    for e in evals:
        by_setting[e.user_attrs["setting"]].add(
            json.dumps([sorted(e.params.items()), e.user_attrs["train_seed"]])
        )
        seen[(e.user_attrs["genome"], e.user_attrs["setting"])] += 1
    # Setting i is one set of hyperparameters and one training seed, whichever genome it trains.
    assert all(len(v) == 1 for v in by_setting.values()), by_setting
    assert max(seen.values()) == 1, "a genome saw the same setting twice"
    gru = {s for g, s in seen if g == known("gru").text}
    lstm = {s for g, s in seen if g == known("lstm").text}
    assert {0, 1} <= gru and {0, 1} <= lstm
    # Re-evaluations took new settings, and the GRU trained on every one of them too, so each
    # score compares like with like.
    assert max(by_setting) >= 3 and lstm <= gru
    steps = optuna.load_study(study_name="evolve/p/genomes", storage=sqlite_url).get_trials()
    rounds = collections.Counter((t.user_attrs["genome"], t.user_attrs["round"]) for t in steps)
    assert max(rounds.values()) == 1 and len(steps) == 2 + 3
    seeds = {json.loads(next(iter(v)))[1] for v in by_setting.values()}
    assert len(seeds) == len(by_setting), "two settings share a training seed"


def test_a_reevaluation_trains_the_gru_on_the_same_new_settings(sqlite_url: str) -> None:
    ev = Evolution(sqlite_url, _tiny_memorize(run="c", generations=0, settings=2), poll=0.05)
    ev.work(max_idle=60)  # the two seeds, settings 0 and 1
    lstm, gru = known("lstm").text, known("gru").text
    ev = Evolution(sqlite_url, _tiny_memorize(run="c", generations=0, settings=2), poll=0.05)
    trial = ev.genomes.ask()
    ev._hold(trial._trial_id)
    plan = {"step": trial.number, "kind": "reeval", "genome": lstm, "parent": lstm,
            "mutation": "", "round": ev._next_round(ev.steps(), lstm)}  # fmt: skip
    for key, value in plan.items():
        trial.set_user_attr(key, value)
    ev._run_step(trial)
    results = ev.results()
    assert plan["round"] == 1
    assert set(results[lstm]["memorize"]) == set(results[gru]["memorize"]) == {0, 1, 2, 3}
    # The GRU's own next round skips the settings it trained on beside the LSTM.
    assert ev._next_round(ev.steps(), gru) == 2
    assert ev._next_round(ev.steps(), lstm) == 2
    ev.close()


def test_known_cells_as_seeds_join_the_population(sqlite_url: str) -> None:
    """`--seeds gru,mut3`: MUT3 is a member (a parent for mutants), not a reference, and the
    default references drop it."""
    argv = [a for a in TINY if a not in ("--references", "none")]
    main([*argv, "--tasks", "memorize", "--seeds", "gru,mut3", "--storage", sqlite_url,
          "--run", "sd", "--generations", "0"])  # fmt: skip
    ev = Evolution(sqlite_url, SearchConfig.from_identity(
        optuna.load_study(study_name="evolve/sd/genomes", storage=sqlite_url)
        .user_attrs["rnnopt.evolve"]))  # fmt: skip
    kinds = {t.user_attrs["genome"]: (t.user_attrs["kind"], t.user_attrs["status"])
             for t in ev.steps()}  # fmt: skip
    population = {g for _, g in ev.population()}
    ev.close()
    assert ev.config.seeds == ("gru", "mut3")
    assert kinds == {
        known("gru").text: ("seed", "member"),
        known("mut3").text: ("seed", "member"),
        known("mut1").text: ("reference", "evaluated"),
        known("mut2").text: ("reference", "evaluated"),
    }
    assert population == {known("gru").text, known("mut3").text}


def test_changed_settings_refuse_to_resume(sqlite_url: str) -> None:
    cfg = SearchConfig(tasks=("memorize",), run="r", references=())
    Evolution(sqlite_url, cfg).close()
    other = SearchConfig(tasks=("memorize",), run="r", references=(), hidden_size=3)
    with pytest.raises(ConfigError, match="hidden_size"):
        Evolution(sqlite_url, other)


def test_a_run_from_before_an_option_existed_resumes_at_its_default(sqlite_url: str) -> None:
    cfg = SearchConfig(tasks=("memorize",), run="old", references=())
    ev = Evolution(sqlite_url, cfg)
    ev.close()
    older = {k: v for k, v in cfg.identity().items() if k != "task_steps"}
    for study in (ev.genomes, ev.evals):
        study.set_user_attr("rnnopt.evolve", json.dumps(older, sort_keys=True))
    Evolution(sqlite_url, cfg).close()
    with pytest.raises(ConfigError, match="task_steps"):
        Evolution(sqlite_url, SearchConfig(tasks=("memorize",), run="old", references=(),
                                           task_steps=(("memorize", 5),)))  # fmt: skip
    stored = {k: v for k, v in older.items() if k != "settings_scheme"}
    ev.genomes.set_user_attr("rnnopt.evolve", json.dumps(stored, sort_keys=True))
    with pytest.raises(ConfigError, match="settings_scheme"):
        Evolution(sqlite_url, cfg)


@pytest.mark.parametrize(
    "argv",
    [
        ["--tasks", "nope"],
        ["--workers", "0"],
        ["--references", "lstm"],
        ["--seeds", "lstm"],
        ["--seeds", "gru,nope"],
        ["--seeds", "gru,gru"],
        ["--seeds", "gru,mut3", "--references", "mut3"],
        ["--layers", "9"],
        ["--run", "a/b"],
        ["--optimizer", "rmsprop"],
        ["--patience", "0"],
        ["-o", "xml.stream"],
        ["-o", "xml.stream=1"],
        ["--tasks", "memorize", "-o", "xml.stream=true"],
        ["--tasks", "xml", "-o", "xml.nope=3"],
        ["--task-steps", "memorize"],
        ["--task-steps", "memorize=-5"],
        ["--task-steps", "memorize=0"],
        ["--tasks", "arith", "--task-steps", "memorize=100"],
    ],
)
def test_bad_options_are_config_errors(argv: list[str], sqlite_url: str) -> None:
    with pytest.raises(ConfigError):
        main([*argv, "--storage", sqlite_url])


def test_cli_error_is_one_line_exit_2(sqlite_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    unreachable = "postgresql://rnnopt:s3cret@127.0.0.1:1/nowhere"
    for argv in (
        ["--tasks", "nope", "--storage", sqlite_url],
        ["report", "--storage", sqlite_url],
        ["--tasks", "memorize", "--storage", unreachable],
        ["report", "--storage", unreachable],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "rnnopt.evolve", *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
        assert "Traceback" not in done.stderr and "s3cret" not in done.stderr
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists(), "a report created a database"


def test_a_server_url_without_a_driver_uses_the_installed_one(postgres_url: str) -> None:
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    evolution = Evolution(plain, _tiny_memorize(run="plain", generations=0))
    evolution.close()
    assert "evolve/plain/genomes" in optuna.get_all_study_names(postgres_url)


@pytest.mark.slow
def test_local_worker_processes_cooperate(postgres_url: str) -> None:
    """`--workers 2` starts two real processes (spawned from `python -m rnnopt.evolve`) that
    share one run at the same time: every evaluation slot runs exactly once."""
    cmd = [sys.executable, "-m", "rnnopt.evolve", *TINY, "--storage", postgres_url,
           "--run", "t", "--generations", "2", "--workers", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-2000:]
    evals = _complete_evals(postgres_url)
    slots = collections.Counter(t.user_attrs["slot"] for t in evals)
    assert slots and max(slots.values()) == 1, "an evaluation ran twice"
    genomes = optuna.load_study(study_name="evolve/t/genomes", storage=postgres_url)
    steps = genomes.get_trials(states=(TrialState.COMPLETE,))
    assert collections.Counter(t.user_attrs["kind"] for t in steps)["seed"] == 2
    assert len(steps) == 4


def test_adam_and_task_options_reach_the_trainer(sqlite_url: str) -> None:
    """--optimizer adam draws lr from the Adam grid, and -o xml.stream=true trains xml as a
    stream; both are part of the run's identity (a resume with others is refused)."""
    main([
        "--tasks", "xml", "--settings", "1", "--max-steps", "4", "--hidden", "6",
        "--eval-batches", "1", "--batch-size", "3", "--unroll", "10", "--references", "none",
        "--generations", "0", "--run", "adam", "--optimizer", "adam", "--patience", "3",
        "-o", "xml.stream=true", "--storage", sqlite_url,
    ])  # fmt: skip
    evals = optuna.load_study(study_name="evolve/adam/evaluations", storage=sqlite_url)
    done = evals.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 2  # the two seeds, one setting each
    assert all(t.params["lr"] in (0.001, 0.002, 0.003, 0.005, 0.01) for t in done)
    assert all(t.user_attrs["stop_reason"] == "finished" for t in done)
    genomes = optuna.load_study(study_name="evolve/adam/genomes", storage=sqlite_url)
    stored = genomes.user_attrs["rnnopt.evolve"]  # a JSON value, not a JSON string
    assert stored["optimizer"] == "adam" and stored["patience"] == 3
    assert stored["task_options"] == [["xml", "stream", True]]
    with pytest.raises(ConfigError, match="optimizer"):
        Evolution(sqlite_url, SearchConfig(tasks=("xml",), run="adam", references=(),
                                           optimizer="sgd", patience=3,
                                           task_options=(("xml", "stream", True),)))


def test_task_steps_shorten_one_task(sqlite_url: str) -> None:
    main([
        "--tasks", "memorize,arith", "--settings", "1", "--max-steps", "6", "--hidden", "6",
        "--task-steps", "memorize=2", "--eval-batches", "1", "--batch-size", "3",
        "--unroll", "10", "--references", "none", "--generations", "0", "--run", "ts",
        "--storage", sqlite_url,
    ])  # fmt: skip
    evals = optuna.load_study(study_name="evolve/ts/evaluations", storage=sqlite_url)
    steps = {(t.user_attrs["task"], t.user_attrs["steps"]) for t in evals.get_trials()}
    assert steps == {("memorize", 2), ("arith", 6)}


@pytest.mark.slow
def test_interrupting_the_command_alone_stops_its_workers(sqlite_url: str) -> None:
    """SIGINT to the parent only (a scheduler, `kill -INT`): it exits and takes its
    `--workers` processes with it instead of waiting for them."""
    cmd = [sys.executable, "-m", "rnnopt.evolve", *TINY, "--storage", sqlite_url,
           "--run", "i", "--generations", "500", "--workers", "2"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    # A shell's background job inherits SIGINT ignored, and Python then keeps ignoring it.
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.5)
        try:
            evals = optuna.load_study(study_name="evolve/i/evaluations", storage=sqlite_url)
            if evals.get_trials(states=(TrialState.COMPLETE,)):
                break
        except KeyError:
            continue
    children = subprocess.run(
        ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
    ).stdout.split()
    assert len(children) >= 2
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    assert proc.returncode == 130
    time.sleep(1)
    assert not any(_alive(pid) for pid in children)


def _alive(pid: str) -> bool:
    """Running, not a zombie waiting for a reaper."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # it exited between open and read
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_confirm_adds_rounds_on_new_settings_with_the_gru_beside(sqlite_url: str) -> None:
    """Confirmation steps re-evaluate a genome on settings it never had, train the GRU on the
    same ones, do not use the search's budget, and a rerun does not repeat them."""
    cfg = _tiny_memorize(run="cf", generations=1, settings=2)
    Evolution(sqlite_url, cfg, poll=0.05).work(max_idle=60)
    lstm, gru = known("lstm").text, known("gru").text
    before = Evolution(sqlite_url, cfg).results()
    # A search step a crash left queued is the search command's, not confirm's.
    left = {"step": 99, "kind": "mutant", "genome": gru, "parent": gru, "mutation": "x"}
    ev0 = Evolution(sqlite_url, cfg)
    ev0.genomes.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, user_attrs=left))
    budget = ev0._budget_left(ev0.steps())
    ev0.close()
    plan = Confirm((lstm,), rounds=2)
    Evolution(sqlite_url, cfg, poll=0.05, confirm=plan).work(max_idle=60)
    waiting = Evolution(sqlite_url, cfg).genomes.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs["step"] for t in waiting] == [99]
    ev = Evolution(sqlite_url, cfg, poll=0.05, confirm=plan)
    steps = ev.steps()
    confirms = [t for t in steps if t.user_attrs.get("kind") == "confirm"]
    assert len(confirms) == 2 and {t.user_attrs["genome"] for t in confirms} == {lstm}
    assert all(t.state == TrialState.COMPLETE for t in confirms)
    assert {t.user_attrs["status"] for t in confirms} == {"evaluated"}
    results = ev.results()
    new = set(results[lstm]["memorize"]) - set(before[lstm]["memorize"])
    # Four settings the LSTM never had (the GRU may have had some from a re-evaluation of its
    # own in the search's one step), and the GRU has every one of them now.
    assert len(new) == 4 and not new & set(before[lstm]["memorize"])
    assert new <= set(results[gru]["memorize"])
    assert ev._budget_left(steps) == budget  # confirmation does not use the search's budget
    ev.work(max_idle=60)  # the same command again: nothing left to do
    assert len(ev.steps()) == len(steps)


@pytest.mark.slow
def test_confirm_command_shares_the_grus_new_settings(postgres_url: str) -> None:
    """`confirm` with two workers on two genomes that both need the GRU on a new setting: the
    GRU trains once per setting, and the report counts the new settings."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    base = [sys.executable, "-m", "rnnopt.evolve"]
    search = [*TINY, "--references", "mut1", "--storage", postgres_url, "--run", "t",
              "--generations", "0"]  # fmt: skip
    done = subprocess.run([*base, *search], env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-2000:]
    confirm = ["confirm", "--storage", postgres_url, "--run", "t", "--top", "0",
               "--cell", "lstm", "--cell", "mut1", "--rounds", "1", "--workers", "2",
               "--heartbeat", "1"]  # fmt: skip
    done = subprocess.run([*base, *confirm], env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-2000:]
    evals = _complete_evals(postgres_url)
    per_setting = collections.Counter(
        (t.user_attrs["genome"], t.user_attrs["task"], t.user_attrs["setting"]) for t in evals
    )
    assert max(per_setting.values()) == 1, "a genome trained twice on one setting"
    gru = {(task, s) for g, task, s in per_setting if g == known("gru").text}
    for name in ("lstm", "mut1"):
        mine = {(task, s) for g, task, s in per_setting if g == known(name).text}
        assert mine == {("memorize", 0), ("arith", 0), ("memorize", 1), ("arith", 1)}
        assert mine <= gru
    text = format_report(postgres_url, "t")
    row = next(line for line in text.splitlines() if line.startswith("| lstm | ") and "won" in line)
    assert row.count("/2 won") == 2  # memorize and arith, each over settings 0 and 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--run", "nope"], "no search run 'nope'"),
        (["--run", "t", "--cell", "gru"], "the GRU is the yardstick"),
        (["--run", "t", "--rounds", "0"], "--rounds must be a positive integer, got 0"),
        (["--run", "t", "--cell", "h'=(frob h)"], "frob"),
    ],
)
def test_confirm_refuses_bad_input_in_one_line(
    extra: list[str], message: str, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    Evolution(sqlite_url, _tiny_memorize(run="t", generations=0)).close()
    from rnnopt._cli import run_cli

    assert run_cli(main, ["confirm", "--storage", sqlite_url, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1, err


def test_passing_parents_skip_members_below_the_threshold(sqlite_url: str) -> None:
    """--parents passing draws parents only from members at 0.9 of the GRU or better; the
    paper's 'all' draws the LSTM too. The option is not part of the run's identity."""
    lstm, gru = known("lstm").text, known("gru").text
    ev = Evolution(sqlite_url, _tiny_memorize(run="pp", generations=100))
    for i, (g, acc) in enumerate(((lstm, 0.5), (gru, 0.9))):
        attrs = {"step": i, "kind": "seed", "genome": g, "status": "member", "round": 0}
        ev.genomes.add_trial(optuna.trial.create_trial(value=0.0, user_attrs=attrs))
        slot = {"genome": g, "task": "memorize", "setting": 0}
        ev.evals.add_trial(optuna.trial.create_trial(value=acc, user_attrs=slot))
    ev.close()

    def parents(mode: str) -> collections.Counter[str]:
        cfg = _tiny_memorize(run="pp", generations=100, parents=mode)
        e = Evolution(sqlite_url, cfg)  # resumes: parents is not part of the identity
        steps = e.steps()
        drawn = collections.Counter(e._plan(steps)["parent"] for _ in range(60))
        e.close()
        return drawn

    assert set(parents("passing")) == {gru}
    assert set(parents("all")) == {lstm, gru}
    with pytest.raises(ConfigError, match="unknown --parents 'best'"):
        _tiny_memorize(parents="best")
