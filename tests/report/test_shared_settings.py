"""The report's shared-settings table: each cell against the LSTM on the search trials both
trained with one setting (rnnopt.report.load.shared_settings), with a paired t interval."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from optuna.trial import TrialState
from report_known_db import CONFIRMED_SEARCH, _study, _trial
from scipy import stats as sps

from rnnopt import report
from rnnopt.report.load import load_groups, shared_settings


def _paired_t(diffs: list[float]) -> tuple[float, float, float]:
    """Mean of ``diffs`` and its 95% Student-t interval, from the textbook formula."""
    n = len(diffs)
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = sps.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def test_cells_are_held_to_the_lstm_on_the_settings_both_trained(
    confirmed_sqlite: str, tmp_path: Path
) -> None:
    # The known PTB studies give trial k of every cell lr = 0.1 (k + 1): one setting per k.
    rep = report.build_report(confirmed_sqlite, min_trials=2)
    rows = {r["cell"]: r for r in rep.paired}
    assert set(rows) == {"gru", "lstm-f"}  # the confirmation trials never pair
    lstm = CONFIRMED_SEARCH["lstm"]
    # Perplexity: + is better, so each difference is lstm - cell.
    diffs = [a - b for a, b in zip(lstm, CONFIRMED_SEARCH["lstm-f"], strict=True)]
    mean, low, high = _paired_t(diffs)  # -35 [-66.0, -4.0]
    f = rows["lstm-f"]
    assert (f["pairs"], f["cell_ahead"], f["effect"]) == (3, "0/3", "worse")
    assert f["difference"] == pytest.approx(mean) and high < 0
    assert f["interval"] == f"[{low:+.4g}, {high:+.4g}]"
    assert f["reference_mean"] == pytest.approx(sum(lstm) / 3)
    # The GRU ran two settings, both ahead, but too unlike to call: t with one degree of freedom.
    diffs = [a - b for a, b in zip(lstm, CONFIRMED_SEARCH["gru"], strict=False)]
    mean, low, high = _paired_t(diffs)
    g = rows["gru"]
    assert (g["pairs"], g["cell_ahead"], g["effect"]) == (2, "2/2", "within noise")
    assert g["interval"] == f"[{low:+.4g}, {high:+.4g}]" and low < 0 < high

    report.write_report(rep, tmp_path / "csv", fmt="csv", plots=False)
    with (tmp_path / "csv" / "paired.csv").open() as fh:
        table = list(csv.DictReader(fh))
    effects = [(r["cell"], r["effect"]) for r in table]
    assert effects == [("lstm-f", "worse"), ("gru", "within noise")]
    report.write_report(rep, tmp_path / "md", fmt="md", plots=False)
    text = (tmp_path / "md" / "report.md").read_text()
    assert "## Shared settings: each cell against the lstm" in text
    assert "| ptb | lstm-f | 3 | 0/3 | " in text and f["interval"] in text


def test_only_one_number_and_equal_shared_parameters_make_a_pair(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    lstm = _study(url, "xml/lstm", "xml", "lstm", "maximize")
    gru = _study(url, "xml/gru", "xml", "gru", "maximize")
    lstm.add_trial(_trial(0.40, {"lr": 1.0, "clip_norm": 5.0}))  # 0: pairs
    gru.add_trial(_trial(0.45, {"lr": 1.0, "clip_norm": 5.0, "hidden_size": 16}))
    lstm.add_trial(_trial(0.41, {"lr": 2.0, "clip_norm": 5.0}))  # 1: another lr
    gru.add_trial(_trial(0.46, {"lr": 2.5, "clip_norm": 5.0}))
    lstm.add_trial(_trial(0.42, {"lr": 3.0}))  # 2: pruned on one side
    gru.add_trial(_trial(0.2, {"lr": 3.0}, state=TrialState.PRUNED, steps=30))
    lstm.add_trial(_trial(0.43, {"lr": 4.0}))  # 3: the gru's trial 4 has lstm's trial 3's lr
    gru.add_trial(_trial(0.44, {"lr": 3.5}))
    gru.add_trial(_trial(0.47, {"lr": 4.0}))
    groups = load_groups(url)
    assert shared_settings(groups[("xml", "lstm")], groups[("xml", "gru")]) == [(0.40, 0.45)]
    rep = report.build_report(url, min_trials=2)
    (row,) = rep.paired
    assert (row["cell"], row["pairs"], row["effect"], row["interval"]) == (
        "gru", 1, "too few pairs", None
    )
    assert row["difference"] == pytest.approx(0.05)
