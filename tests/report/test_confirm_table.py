"""The report's confirmation table held against the LSTM, and what the ablation will not call
from the default study's two or three search trials per cell."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import optuna
import pytest
from report_known_db import _study, _trial
from scipy import stats as sps

from rnnopt import report
from rnnopt.hpo import confirm

# PTB (lower is better): three search trials per cell, then three confirmation seeds of the best.
SEARCH = {"lstm": [150.0, 141.0, 160.0], "gru": [133.0, 135.0], "lstm-f": [181.0, 190.0, 185.0]}
CONFIRM = {"lstm": [140.0, 142.0, 138.0], "gru": [130.0, 131.0, 132.0], "lstm-f": [180.0, 184.0]}


def _fill(url: str) -> None:
    for cell, values in SEARCH.items():
        s = _study(url, f"ptb/{cell}", "ptb", cell, "minimize")
        for i, v in enumerate(values):
            s.add_trial(_trial(v, {"lr": 0.1 * (i + 1)}))
        best = min(range(len(values)), key=values.__getitem__)
        for i, v in enumerate(CONFIRM[cell]):
            t = _trial(v, {"lr": 0.1 * (best + 1)})
            t.set_user_attr(confirm.CONFIRM_ATTR, best)
            t.set_user_attr(confirm.SEED_ATTR, confirm.CONFIRM_SEED_OFFSET + i)
            s.add_trial(t)


@pytest.fixture(scope="module")
def confirmed_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path_factory.mktemp('confirmed') / 'c.db'}"
    _fill(url)
    return url


def _welch(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """mean(b) - mean(a) and its 95% Welch interval, from the textbook formulas."""
    va, vb = sps.tvar(a) / len(a), sps.tvar(b) / len(b)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = sps.t.ppf(0.975, df) * math.sqrt(va + vb)
    d = sum(b) / len(b) - sum(a) / len(a)
    return d, d - half, d + half


def test_each_confirmed_cell_is_held_against_the_lstm(confirmed_url: str, tmp_path: Path) -> None:
    rep = report.build_report(confirmed_url, min_trials=2)
    header, rows = confirm.report_rows(rep.groups, rep.tasks, rep.cells)
    assert header[-1] == "against lstm (+: better) [95%]"
    by_cell = {r[1]: r for r in rows}
    assert by_cell["lstm"][-1] == "–"  # the reference itself
    # Perplexity: the sign turns so that + is better. GRU 131 against LSTM 140: +9.
    d, low, high = _welch(CONFIRM["lstm"], CONFIRM["gru"])
    assert by_cell["gru"][-1] == f"{-d:+.4g} [{-high:+.4g}, {-low:+.4g}] better"
    assert -high > 0  # the interval excludes zero, so "better" is earned
    d, low, high = _welch(CONFIRM["lstm"], CONFIRM["lstm-f"])
    assert by_cell["lstm-f"][-1] == f"{-d:+.4g} [{-high:+.4g}, {-low:+.4g}] worse"
    assert -d == pytest.approx(-42.0) and -low < 0
    assert by_cell["gru"][7] == "best" and by_cell["lstm-f"][7] == "worse"

    # The csv report carries the same table.
    report.write_report(rep, tmp_path / "csv", fmt="csv", plots=False)
    with (tmp_path / "csv" / "confirmation.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert [r["cell"] for r in table] == ["lstm", "lstm-f", "gru"]
    assert table[2]["against lstm (+: better) [95%]"] == by_cell["gru"][-1]

    # The markdown report shows it too.
    report.write_report(rep, tmp_path / "md", fmt="md", plots=False)
    text = (tmp_path / "md" / "report.md").read_text()
    assert "| ptb | gru | " in text and by_cell["gru"][-1] in text


def test_ablation_does_not_call_three_trials_against_three(confirmed_url: str) -> None:
    rep = report.build_report(confirmed_url, min_trials=2)
    # LSTM-f's three search trials (181-190) all lie above the LSTM's three (141-160): chance one
    # time in C(6, 3) = 20, so a bootstrap interval excluding zero would be luck, not evidence.
    row = next(r for r in rep.ablation if (r["cell"], r["factor"]) == ("lstm-f", "cell vs lstm"))
    assert (row["delta"], row["interval"], row["effect"]) == (40.0, "", "too few trials")
