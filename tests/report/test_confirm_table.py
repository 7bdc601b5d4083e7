"""The report's confirmation table held against the LSTM, and what the ablation will not call
from the default study's two or three search trials per cell."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from report_known_db import CONFIRMED_SEEDS
from scipy import stats as sps

from rnnopt import report
from rnnopt._cli import run_cli
from rnnopt.hpo import confirm
from rnnopt.report.__main__ import main as report_main


def _welch(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """mean(b) - mean(a) and its 95% Welch interval, from the textbook formulas."""
    va, vb = sps.tvar(a) / len(a), sps.tvar(b) / len(b)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = sps.t.ppf(0.975, df) * math.sqrt(va + vb)
    d = sum(b) / len(b) - sum(a) / len(a)
    return d, d - half, d + half


def test_each_confirmed_cell_is_held_against_the_lstm(
    confirmed_sqlite: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rep = report.build_report(confirmed_sqlite, min_trials=2)
    header, rows = confirm.report_rows(rep.groups, rep.tasks, rep.cells)
    assert header[-1] == "against lstm (+: better) [95%]"
    by_cell = {r[1]: r for r in rows}
    assert by_cell["lstm"][-1] == "–"  # the reference itself
    # Perplexity: the sign turns so that + is better. GRU 131 against LSTM 140: +9.
    d, low, high = _welch(CONFIRMED_SEEDS["lstm"], CONFIRMED_SEEDS["gru"])
    assert by_cell["gru"][-1] == f"{-d:+.4g} [{-high:+.4g}, {-low:+.4g}] better"
    assert -high > 0  # the interval excludes zero, so "better" is earned
    d, low, high = _welch(CONFIRMED_SEEDS["lstm"], CONFIRMED_SEEDS["lstm-f"])
    assert by_cell["lstm-f"][-1] == f"{-d:+.4g} [{-high:+.4g}, {-low:+.4g}] worse"
    assert -d == pytest.approx(-42.0) and -low < 0
    assert by_cell["gru"][7] == "best" and by_cell["lstm-f"][7] == "worse"

    # The csv report carries the same table.
    report.write_report(rep, tmp_path / "csv", fmt="csv", plots=False)
    with (tmp_path / "csv" / "confirmation.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert [r["cell"] for r in table] == ["lstm", "lstm-f", "gru"]
    assert table[2][confirm.AGAINST_HEADER] == by_cell["gru"][-1]

    # The markdown report shows it too.
    report.write_report(rep, tmp_path / "md", fmt="md", plots=False)
    text = (tmp_path / "md" / "report.md").read_text()
    assert "| ptb | gru | " in text and by_cell["gru"][-1] in text

    # And the command prints it under Table 1, where a terminal shows it.
    argv = ["--storage", confirmed_sqlite, "--min-trials", "2", "--no-plots",
            "--out", str(tmp_path / "cli")]  # fmt: skip
    assert run_cli(report_main, argv) == 0
    out = capsys.readouterr().out
    assert confirm.SCOPE in out
    assert "| ptb | gru | " in out and by_cell["gru"][-1] in out


def test_ablation_does_not_call_three_trials_against_three(confirmed_sqlite: str) -> None:
    rep = report.build_report(confirmed_sqlite, min_trials=2)
    # LSTM-f's three search trials (181-190) all lie above the LSTM's three (141-160): chance one
    # time in C(6, 3) = 20, so a bootstrap interval excluding zero would be luck, not evidence.
    row = next(r for r in rep.ablation if (r["cell"], r["factor"]) == ("lstm-f", "cell vs lstm"))
    assert (row["delta"], row["interval"], row["effect"]) == (40.0, "", "too few trials")
