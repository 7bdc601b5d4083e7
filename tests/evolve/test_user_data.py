"""The architecture search on the user's own data: a task scored by a metric other than accuracy
(lower is better) compared with the GRU the other way round, and its data identity stored and
checked on resume."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from user_data import write_corpus, write_sensors

from rnnopt import schema
from rnnopt.errors import StorageError
from rnnopt.evolve.config import SearchConfig
from rnnopt.evolve.known import (
    head_to_head,
    known,
    mean_ratio_interval,
    oriented,
    paired_best,
    paired_score,
    passes,
    relative_score,
    shared_pairs,
)
from rnnopt.evolve.search import Evolution

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNOPT_CACHE", str(tmp_path / "cache"))


def test_a_minimized_metric_is_compared_with_the_gru_the_other_way_round() -> None:
    # bpc: the GRU 2.0 on text; the genome 1.6 is better (ratio 2.0 / 1.6 = 1.25), its accuracy
    # on arith 0.3 against the GRU's 0.6 is worse (0.5): the score is the worse task, 0.5.
    gru = {"text": 2.0, "arith": 0.6}
    assert relative_score({"text": 1.6}, gru, ["text"], {"text"}) == 1.25
    assert relative_score({"text": 1.6, "arith": 0.6}, gru, ["text", "arith"], {"text"}) == 1.0
    assert relative_score({"text": 1.6, "arith": 0.3}, gru, ["text", "arith"], {"text"}) == 0.5
    assert relative_score(gru, gru, ["text", "arith"], {"text"}) == 1.0
    assert relative_score({"text": 4.0}, {"text": 2.0}, ["text"], {"text"}) == 0.5
    # a failed evaluation of a minimized metric is +inf: worst, ratio 0
    assert relative_score({"text": math.inf}, {"text": 2.0}, ["text"], {"text"}) == 0.0
    # the best over shared settings is the lowest value
    mine, ref = {"text": {0: 3.0, 1: 1.5, 7: 0.1}}, {"text": {0: 2.0, 1: 2.5}}
    assert paired_best(mine, ref, ["text"], {"text"}) == ({"text": 1.5}, {"text": 2.0})
    assert paired_score(mine, ref, ["text"], {"text"}) == pytest.approx(2.0 / 1.5)
    # setting by setting: won where the value is at most the GRU's; the GRU's mean / mine
    assert head_to_head(mine, ref, "text", True) == (1, 2, pytest.approx(4.5 / 4.5))
    better = {"text": {0: 1.0, 1: 1.0, 2: 1.1}}
    gru3 = {"text": {0: 2.0, 1: 2.0, 2: 2.2}}
    assert head_to_head(better, gru3, "text", True) == (3, 3, pytest.approx(2.0))
    interval = mean_ratio_interval(oriented(shared_pairs(better, gru3, "text"), True))
    assert interval is not None and interval[0] > 1.0
    # the staged filter: within 0.9 of the GRU, i.e. at most its value / 0.9
    assert passes(2.2, 2.0, 0.9, minimize=True) and not passes(2.3, 2.0, 0.9, minimize=True)
    assert passes(0.55, 0.6, 0.9) and not passes(0.5, 0.6, 0.9)


def test_a_regression_series_task_is_a_minimized_task_of_the_search(tmp_path: Path) -> None:
    csv = write_sensors(tmp_path / "sensors.csv")
    cfg = SearchConfig(
        tasks=("memorize", "series"), task_options=(("series", "data", str(csv)),),
        references=(),
    )  # fmt: skip
    assert cfg.minimize == {"series"} and cfg.metric_of("series") == "mse"
    assert [t for t, _ in cfg.data] == ["series"]
    assert "data" not in cfg.identity() and "metrics" not in cfg.identity()
    again = SearchConfig.from_identity(cfg.identity())
    assert again == cfg and again.data == cfg.data


def test_the_papers_language_model_is_searched_by_perplexity() -> None:
    cfg = SearchConfig(tasks=("xml", "ptb"), references=())  # needs the PTB files (RNNOPT_DATA)
    assert cfg.minimize == {"ptb"} and cfg.metric_of("ptb") == "perplexity"
    assert cfg.metric_of("xml") == "accuracy" and cfg.data == ()


def test_other_data_refuses_to_resume(tmp_path: Path, sqlite_url: str) -> None:
    corpus = write_corpus(tmp_path / "corpus.txt")
    tiny = dict(hidden_size=4, max_steps=2, eval_batches=1, batch_size=2, unroll=8,
                references=(), generations=0)  # fmt: skip
    cfg = SearchConfig(tasks=("text",), run="r", task_options=(("text", "data", str(corpus)),),
                       **tiny)  # fmt: skip
    ev = Evolution(sqlite_url, cfg)
    ev.close()
    stored = ev.evals.user_attrs[schema.DATA]["text"]
    assert stored["files"]["train"] and stored["options"]["level"] == "char"
    assert ev.evals.user_attrs[schema.EVOLVE_METRICS] == {
        "text": {"metric": "bpc", "direction": "minimize"}
    }
    Evolution(sqlite_url, cfg).close()  # the same data resumes
    write_corpus(corpus, seed=1)
    refused = r"other data \(changed: train file\).*, or start a new --run"
    with pytest.raises(StorageError, match=refused):
        Evolution(sqlite_url, SearchConfig(tasks=("text",), run="r",
                                           task_options=(("text", "data", str(corpus)),), **tiny))


@pytest.mark.slow
def test_search_on_a_text_corpus_end_to_end(tmp_path: Path) -> None:
    write_corpus(tmp_path / "corpus.txt", lines=200)
    env = {**os.environ, "PYTHONPATH": str(REPO), "RNNOPT_CACHE": str(tmp_path / "cache")}
    url = f"sqlite:///{tmp_path / 'evolve.db'}"
    # fmt: off
    argv = [
        sys.executable, "-m", "rnnopt.evolve", "--tasks", "text", "--data", "corpus.txt",
        "--storage", url, "--run", "mine", "--generations", "2", "--settings", "1",
        "--max-steps", "4", "--hidden", "4", "--eval-batches", "1", "--batch-size", "2",
        "--unroll", "8", "--references", "none", "--heartbeat", "1", "--optimizer", "adam",
    ]
    # fmt: on
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    evals = optuna.load_study(study_name="evolve/mine/evaluations", storage=url)
    complete = evals.get_trials(states=(TrialState.COMPLETE,))
    gru = [t for t in complete if t.user_attrs["genome"] == known("gru").text]
    # bits per character, not accuracy: the GRU's above 1, every value positive (a random
    # mutant's may be huge: its outputs can explode within the few steps, so no upper bound)
    assert gru and all(1 < t.value < 20 for t in gru) and all(t.value > 0 for t in complete)
    steps = optuna.load_study(study_name="evolve/mine/genomes", storage=url)
    seed = next(t for t in steps.get_trials() if t.user_attrs.get("genome") == known("gru").text)
    assert seed.value == 1.0 and seed.user_attrs["best_text"] == min(t.value for t in gru)
    assert steps.user_attrs[schema.METRIC] == "score"
    assert evals.user_attrs[schema.METRIC] == "bpc"

    report = subprocess.run(
        [sys.executable, "-m", "rnnopt.evolve", "report", "--storage", url],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert "| cell | score | text (bpc) | evals |" in report.stdout
    assert "| gru | 1.000 |" in report.stdout
    assert "text: bpc (minimize)" in report.stdout

    write_corpus(tmp_path / "corpus.txt", lines=200, seed=5)
    again = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=120)  # fmt: skip
    assert again.returncode == 2
    last = again.stderr.splitlines()[-1]  # after the log lines of opening the storage
    assert last.startswith("error: ") and "Traceback" not in again.stderr
    assert "other data (changed: train file); resume it with the same files" in last
