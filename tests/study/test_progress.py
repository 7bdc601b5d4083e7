"""The run's one progress display: counts read back from the storage, a bar or plain lines."""

from __future__ import annotations

import io
import logging
from types import SimpleNamespace

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from rnnopt.progress import RunProgress, tally

LR = {"lr": FloatDistribution(0.1, 5.0)}


def _studies(url: str) -> list[SimpleNamespace]:
    """xml/gru (compare): 0.40, 0.45, a pruned and a failed trial, a failed one replaced by
    its retry (0.30), one running; ptb/search (minimize): lstm 120, gru 95."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    gru = optuna.create_study(storage=url, study_name="xml/gru", direction="maximize")
    for value in (0.40, 0.45):
        gru.add_trial(create_trial(value=value, params={"lr": 1.0}, distributions=LR))
    gru.add_trial(create_trial(state=TrialState.PRUNED, params={"lr": 4.0}, distributions=LR))
    gru.add_trial(create_trial(state=TrialState.FAIL, params={"lr": 4.5}, distributions=LR))
    gru.add_trial(create_trial(state=TrialState.FAIL, params={"lr": 2.0}, distributions=LR))
    gru.add_trial(create_trial(value=0.30, params={"lr": 2.0}, distributions=LR,
                               system_attrs={"failed_trial": 4, "retry_history": [4]}))
    gru.ask()  # running: not done yet
    search = optuna.create_study(storage=url, study_name="ptb/search", direction="minimize")
    dists = {**LR, "cell": CategoricalDistribution(["lstm", "gru"])}
    for cell, value in (("lstm", 120.0), ("gru", 95.0)):
        search.add_trial(create_trial(value=value, params={"lr": 1.0, "cell": cell},
                                      distributions=dists))
    return [
        SimpleNamespace(name="xml/gru", task="xml", cell="gru", mode="compare",
                        direction="maximize", metric="accuracy"),
        SimpleNamespace(name="ptb/search", task="ptb", cell="*", mode="search",
                        direction="minimize", metric="perplexity"),
    ]


def test_tally_counts_each_finished_trial_once_and_the_best_per_task(sqlite_url: str) -> None:
    studies = _studies(sqlite_url)
    counts = RunProgress(sqlite_url, studies, 10, stream=io.StringIO()).poll()
    # the failed trial is not done: it leaves its slot to another trial (docs/studies.md)
    assert (counts.done, counts.pruned, counts.failed) == (6, 1, 1)
    assert counts.best == {"xml": (0.45, "gru"), "ptb": (95.0, "gru")}
    assert tally([], []).done == 0


def test_trials_waiting_at_a_gate_of_the_staged_filter_are_shown(sqlite_url: str) -> None:
    studies = _studies(sqlite_url)
    gru = optuna.load_study(study_name="xml/gru", storage=sqlite_url)
    waiting = gru.ask()  # parked at step 700 (rnnopt/hpo/staged.py)
    waiting.report(0.3, 700)
    waiting.set_user_attr("staged_value", [700, 0.3])
    going_on = gru.ask()  # passed its gate at 700 and evaluated since: training, not waiting
    going_on.report(0.3, 700)
    going_on.report(0.35, 1400)
    going_on.set_user_attr("staged_value", [700, 0.3])
    progress = RunProgress(sqlite_url, studies, 10, stream=io.StringIO())
    counts = progress.poll()
    assert (counts.done, counts.waiting) == (6, 1)
    assert progress.line(counts).startswith("trials 6/10 done, 1 waiting at a gate, 1 pruned, ")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_one_bar(sqlite_url: str) -> None:
    studies = _studies(sqlite_url)
    screen = _Terminal()
    with RunProgress(sqlite_url, studies, 10, stream=screen, poll_s=60):
        pass
    text = screen.getvalue()
    assert "trials:" in text and "6/10" in text
    assert "1 pruned, 1 failed, best xml accuracy 0.45 (gru), best ptb perplexity 95 (gru)" in text
    assert "\r" in text  # redrawn in place


def test_elsewhere_plain_lines_at_a_sensible_rate(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    studies = _studies(sqlite_url)
    caplog.set_level(logging.INFO, logger="rnnopt.progress")
    with RunProgress(sqlite_url, studies, 10, stream=io.StringIO(), poll_s=0.05,
                     line_every_s=3600) as progress:
        optuna.load_study(study_name="xml/gru", storage=sqlite_url).add_trial(
            create_trial(value=0.5, params={"lr": 1.0}, distributions=LR))
        progress._stop.wait(0.5)  # polls ~10 times; a line at most once an hour, and the last
    lines = [r.getMessage() for r in caplog.records if r.name == "rnnopt.progress"]
    assert len(lines) == 2, lines
    assert lines[0].startswith("trials 6/10 done, 1 pruned, 1 failed; best xml accuracy 0.45")
    assert lines[0].endswith("ETA unknown")
    assert lines[1].startswith("trials 7/10 done") and "best xml accuracy 0.5 (gru)" in lines[1]
    assert "ETA " in lines[1]
