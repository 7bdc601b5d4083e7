"""The staged filter across cells as a study mode (``pruner = "staged"``, rnnopt/hpo/staged.py):
the same cells, trials and steps as its replay on an exhaustive comparison's curves, resumed
after SIGKILL while trials wait at a gate, and its bad settings refused."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import optuna
import pytest
from optuna.trial import TrialState
from study_helpers import cli_env, popen, run, slots, tiny_study, trials

from rnnopt.errors import ConfigError
from rnnopt.hpo import staged

CELLS = ["tanh", "lstm", "gru", "mut1"]
SMALL_XML = "[train.xml]\ntask_options = { valid_size = 60, test_size = 60, force_close_after = 6 }"
SCHEDULE = "0.2:2,0.5:1"
LR = 'lr = { grid = [0.003, 0.03], low = 0.003, high = 0.03, log = true }'


def _study_file(tmp: Path, pruner: str) -> Path:
    extra = f'{LR}\n{SMALL_XML}\n[pruner]\nschedule = "{SCHEDULE}"' if pruner == "staged" else (
        f"{LR}\n{SMALL_XML}"
    )
    return tiny_study(tmp, max_steps=60, n_trials=2, eval_interval=6, extra=extra,
                      name=f"{pruner}.toml")  # fmt: skip


def _args(tmp: Path, url: str, pruner: str) -> list[str]:
    return [
        "--task", "xml", "--cells", ",".join(CELLS), "--study-file", str(_study_file(tmp, pruner)),
        "--sampler", "paper", "--pruner", pruner, "--seed", "5", "--storage", url, "--workers", "1",
    ]  # fmt: skip


def _all(url: str) -> dict[str, list[optuna.trial.FrozenTrial]]:
    """Each cell's trials that count, in the order of the trials they stand for (a retry in
    its original's place)."""
    def original(t: optuna.trial.FrozenTrial) -> int:
        return t.system_attrs.get("failed_trial", t.number)

    return {c: sorted(slots(trials(url, f"xml/{c}")), key=original) for c in CELLS}


def _decisions_of(url: str, cells: list[str]) -> list[dict]:
    storage = optuna.storages.RDBStorage(url)
    try:
        attrs = [optuna.load_study(study_name=f"xml/{c}", storage=storage).user_attrs
                 for c in cells]  # fmt: skip
    finally:
        storage.engine.dispose()
    records = [a["rnnopt.staged"] for a in attrs]
    assert all(r == records[0] for r in records)  # every cell's study holds the same record
    return records[0]["decisions"]


def _decisions(url: str) -> list[dict]:
    decisions = _decisions_of(url, CELLS)
    assert [d["step"] for d in decisions] == [12, 30]  # 0.2 and 0.5 of 60, on evaluations
    return decisions


def test_gates_fall_on_evaluations_and_must_be_apart() -> None:
    assert staged.gate_steps(staged.parse_schedule("0.1:4,0.3:1"), 7000, 700) == [700, 2100]
    assert staged.gate_steps([(0.2, 2), (0.5, 1)], 60, 6) == [12, 30]
    assert staged.gate_steps([(0.12, 2)], 100, 10) == [10]  # the nearest evaluation
    with pytest.raises(ConfigError, match="apart and before max_steps"):
        staged.gate_steps([(0.1, 4), (0.12, 1)], 100, 10)  # both on step 10
    with pytest.raises(ConfigError, match="apart and before max_steps"):
        staged.gate_steps([(0.96, 1)], 100, 10)  # on the last evaluation
    for bad in ("0.1", "0.1:x", "0.3:2,0.1:1", "1.0:1", "0.1:0"):
        with pytest.raises(ConfigError, match=r"allowed: such as 0\.1:4,0\.3:1"):
            staged.parse_schedule(bad)


@pytest.mark.slow
def test_staged_study_trains_what_its_replay_on_the_exhaustive_comparison_says(
    tmp_path: Path, strategies: ModuleType
) -> None:
    """The study mode and the benchmark's replay are one rule: on the same seeds the staged
    study keeps the cells the replay keeps, trains exactly the steps it counts, and the
    surviving cell's trials end with the exhaustive run's values (pausing at the gates and
    resuming from checkpoints changes nothing)."""
    full_url = f"sqlite:///{tmp_path / 'full.db'}"
    staged_url = f"sqlite:///{tmp_path / 'staged.db'}"
    res = run(_args(tmp_path, full_url, "none"), tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    res = run(_args(tmp_path, staged_url, "staged"), tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]

    full = _all(full_url)
    curves = [
        {"cell": c, "steps": t.user_attrs["steps"], "value": t.value,
         "values": sorted(t.intermediate_values.items())}
        for c in CELLS for t in full[c]
    ]  # fmt: skip
    replay = strategies.staged(curves, staged.parse_schedule(SCHEDULE), 60, maximize=True)
    [(spent, named, named_value)] = replay["curve"]

    done = _all(staged_url)
    decisions = _decisions(staged_url)
    assert [d["step"] for d in decisions] == [12, 30]
    assert len(decisions[0]["kept"]) == 2 and decisions[1]["kept"] == [named]
    assert set(decisions[1]["scores"]) == set(decisions[0]["kept"])
    for d in decisions:  # a filtered cell's value at its last gate is the replay's for it
        for cell in set(d["scores"]) - set(d["kept"]):
            assert d["scores"][cell] == pytest.approx(replay["best"][cell])
    assert sum(t.user_attrs["steps"] for ts in done.values() for t in ts) == spent
    for cell, ts in done.items():
        assert len(ts) == 2
        if cell == named:
            assert [t.state for t in ts] == [TrialState.COMPLETE] * 2
            assert [t.value for t in ts] == [t.value for t in full[cell]]  # bit-identical
            assert max(t.value for t in ts) == named_value
            assert [t.params for t in ts] == [t.params for t in full[cell]]
        else:
            assert [t.state for t in ts] == [TrialState.PRUNED] * 2
            gate = 1 if cell in decisions[0]["kept"] else 0
            assert all(t.user_attrs["reason"].startswith(f"filtered at gate {gate + 1} of 2")
                       for t in ts)  # fmt: skip
            assert {t.user_attrs["steps"] for t in ts} == {[12, 30][gate]}
    assert "pruner staged" in res.stdout
    from optuna_dashboard import get_note

    note = get_note(optuna.load_study(study_name=f"xml/{named}", storage=staged_url))
    assert "## Staged filter" in note and f"| 2 | 30 | {named} | " in note
    report = subprocess.run(
        [sys.executable, "-m", "rnnopt", "report", "--storage", staged_url, "--no-plots",
         "--format", "md", "--out", str(tmp_path / "report")],
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr[-2000:]
    table = (tmp_path / "report" / "report.md").read_text()
    for cell, (step, value) in staged.filtered_cells({"decisions": decisions}).items():
        assert f"| {cell} | filtered at step {step} ({value:.4g})" in table, table
    for cell, (step, _) in staged.filtered_cells({"decisions": decisions}).items():
        assert re.search(rf"(?m)^{cell} +filtered at step {step} \(", res.stdout), res.stdout


def _parked_at_second_gate(url: str) -> bool:
    try:
        ts = [t for c in CELLS for t in trials(url, f"xml/{c}")]
    except KeyError:
        return False
    return any(t.state == TrialState.RUNNING and t.user_attrs.get(staged.GATES_PASSED_ATTR) == 1
               and t.user_attrs.get(staged.GATE_VALUE_ATTR, [0])[0] == 30 for t in ts)  # fmt: skip


@pytest.mark.slow
def test_staged_study_resumes_after_sigkill_with_the_same_decisions(
    tmp_path: Path, postgres_url: str
) -> None:
    """The run is killed while trials wait at the second gate; the rerun, with two workers,
    retries them from their checkpoints and ends as an uninterrupted run does."""
    reference = f"sqlite:///{tmp_path / 'reference.db'}"
    res = run(_args(tmp_path, reference, "staged"), tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    args = [*_args(tmp_path, postgres_url, "staged"), "--heartbeat", "1"]
    first = popen(args, tmp_path)
    try:
        end = time.monotonic() + 180
        while not _parked_at_second_gate(postgres_url):
            assert time.monotonic() < end and first.poll() is None, "no trial parked in time"
            time.sleep(0.1)
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    res = run([*args, "--workers", "2"], tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.dumps(_decisions(postgres_url)) == json.dumps(_decisions(reference))
    done, expected = _all(postgres_url), _all(reference)
    retried = [t for c in CELLS for t in trials(postgres_url, f"xml/{c}")
               if t.system_attrs.get("failed_trial") is not None]  # fmt: skip
    assert retried and all(t.user_attrs["resumed_from_step"] >= 12 for t in retried)
    for cell in CELLS:
        assert [t.state for t in done[cell]] == [t.state for t in expected[cell]]
        assert [t.value for t in done[cell]] == [t.value for t in expected[cell]]
        assert not any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in done[cell])


def test_staged_is_refused_where_it_cannot_work(tmp_path: Path, sqlite_url: str) -> None:
    study = _study_file(tmp_path, "staged")
    base = ["--task", "xml", "--cells", "tanh,gru", "--study-file", str(study),
            "--storage", sqlite_url, "--pruner", "staged"]  # fmt: skip
    res = run([*base, "--mode", "search"], tmp_path)
    assert res.returncode == 2 and "needs mode compare" in res.stderr
    assert "Traceback" not in res.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text(study.read_text().replace(SCHEDULE, "0.1:2,0.12:1"))
    res = run([*base[:4], "--study-file", str(bad), *base[6:]], tmp_path)
    assert res.returncode == 2 and "apart and before max_steps" in res.stderr
    assert "Traceback" not in res.stderr and not Path(sqlite_url[10:]).exists()


@pytest.mark.slow
def test_confirmation_retrains_the_finalists_only(tmp_path: Path, sqlite_url: str) -> None:
    """Keeping two cells past the last gate and --confirm 2: both finalists' best settings are
    retrained with two seeds, the dropped cell gets none, and the run counts them right."""
    study = tiny_study(tmp_path, max_steps=30, n_trials=1, eval_interval=10,
                       extra=f'{SMALL_XML}\n[pruner]\nschedule = "0.34:2"')  # fmt: skip
    res = run(["--task", "xml", "--cells", "tanh,gru,mut1", "--study-file", str(study),
               "--pruner", "staged", "--confirm", "2", "--storage", sqlite_url,
               "--workers", "1", "--seed", "2"], tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    [decision] = _decisions_of(sqlite_url, ["tanh", "gru", "mut1"])
    assert decision["step"] == 10 and len(decision["kept"]) == 2
    for cell in ("tanh", "gru", "mut1"):
        confirming = [t for t in trials(sqlite_url, f"xml/{cell}")
                      if "confirm_seed" in t.user_attrs]  # fmt: skip
        assert len(confirming) == (2 if cell in decision["kept"] else 0), cell
        assert all(t.state == TrialState.COMPLETE for t in confirming)
        line = next(x for x in res.stdout.splitlines() if x.startswith(f"{cell} "))
        assert ("confirm " in line) == (cell in decision["kept"]), line
        assert ("filtered at step 10" in line) == (cell not in decision["kept"]), line
    assert "trials 7/7 done" in res.stderr  # 3 searched + 2 x 2 confirmations


@pytest.mark.slow
def test_a_timeout_queues_the_waiting_trials_and_a_rerun_finishes(
    tmp_path: Path, sqlite_url: str
) -> None:
    args = _args(tmp_path, sqlite_url, "staged")
    res = run([*args, "--timeout", "1"], tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    queued = {(c, t.number): t for c in CELLS for t in trials(sqlite_url, f"xml/{c}")}
    assert {t.state for t in queued.values()} == {TrialState.WAITING}  # none failed or RUNNING
    assert all(t.user_attrs["staged_value"][0] == 12 for t in queued.values())  # at the gate
    res = run(args, tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    done = _all(sqlite_url)
    assert all(len(ts) == 2 and all(t.state.is_finished() for t in ts) for ts in done.values())
    assert not any(t.system_attrs.get("failed_trial") for ts in done.values() for t in ts)
    resumed = [t for c, ts in done.items() for t in ts if (c, t.number) in queued]
    assert len(resumed) == len(queued)
    assert all(t.user_attrs["resumed_from_step"] >= 12 for t in resumed)
    assert [d["step"] for d in _decisions(sqlite_url)] == [12, 30]
