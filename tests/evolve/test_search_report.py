"""The search report read back from stored trials: paired ratios and setting-by-setting counts."""

from __future__ import annotations

import optuna

from rnnopt.evolve.known import head_to_head, known, mean_ratio_interval
from rnnopt.evolve.report import format_report, scores


def _store(url: str, run: str, accs: dict[str, dict[str, dict[int, float]]]) -> None:
    """A run's studies holding one member step per genome and the given evaluations."""
    steps = optuna.create_study(study_name=f"evolve/{run}/genomes", storage=url)
    steps.set_user_attr("rnnopt.task", "arith,xml")
    evals = optuna.create_study(
        study_name=f"evolve/{run}/evaluations", storage=url, direction="maximize"
    )
    for i, (genome, by_task) in enumerate(accs.items()):
        steps.add_trial(
            optuna.trial.create_trial(
                value=0.0, user_attrs={"step": i, "genome": genome, "status": "member"}
            )
        )
        for task, by_setting in by_task.items():
            for setting, acc in by_setting.items():
                attrs = {"genome": genome, "task": task, "setting": setting}
                evals.add_trial(optuna.trial.create_trial(value=acc, user_attrs=attrs))


def test_head_to_head_counts_settings_won_and_the_mean_ratio() -> None:
    gru = {"arith": {0: 0.50, 1: 0.40, 2: 0.60}}
    cell = {"arith": {0: 0.55, 1: 0.40, 2: 0.45, 7: 0.99}}  # setting 7: the GRU never had it
    won, shared, mean = head_to_head(cell, gru, "arith")
    assert (won, shared) == (2, 3)  # a tie counts as won ("at least as good")
    assert abs(mean - (0.55 + 0.40 + 0.45) / 1.50) < 1e-12
    assert head_to_head(cell, gru, "xml") is None


def test_mean_ratio_interval_brackets_the_mean_and_narrows_with_more_settings() -> None:
    assert mean_ratio_interval([(0.5, 0.5)]) is None  # one setting: nothing to resample
    few = [(0.52, 0.50), (0.47, 0.50), (0.55, 0.50), (0.49, 0.50)]
    many = few * 8
    lo, hi = mean_ratio_interval(few)
    assert lo < sum(a for a, _ in few) / sum(g for _, g in few) < hi
    lo8, hi8 = mean_ratio_interval(many)
    assert lo < lo8 < hi8 < hi
    # A cell better on every setting has an interval wholly above 1.
    assert mean_ratio_interval([(0.51, 0.50), (0.62, 0.60), (0.41, 0.40)])[0] > 1.0
    assert mean_ratio_interval(few) == mean_ratio_interval(few)  # deterministic


def test_report_shows_paired_ratios_and_settings_won(sqlite_url: str) -> None:
    gru, found = known("gru").text, known("mut2").text.replace("tanh", "sigmoid", 1)
    _store(
        sqlite_url,
        "r",
        {
            gru: {"arith": {0: 0.50, 1: 0.40}, "xml": {0: 0.45, 1: 0.47, 2: 0.49}},
            # Its best over all settings (0.60 on setting 5) is not paired with the GRU.
            found: {"arith": {0: 0.52, 1: 0.38, 5: 0.60}, "xml": {0: 0.46, 1: 0.48}},
        },
    )
    tasks, rows = scores(sqlite_url, "r")
    assert tasks == ["arith", "xml"]
    mine = next(x for x in rows if x.label == "found")
    assert mine.best == {"arith": 0.60, "xml": 0.48}
    assert abs(mine.ratio["arith"] - 0.52 / 0.50) < 1e-12
    assert abs(mine.ratio["xml"] - 0.48 / 0.47) < 1e-12
    assert mine.per_setting["arith"][:2] == (1, 2) and mine.per_setting["xml"][:2] == (2, 2)
    text = format_report(sqlite_url, "r")
    assert "| found-1 | 1.021 | 0.6000 (1.040) | 0.4800 (1.021) | 5 |" in text
    # Two settings resample to three ratios: both of one, both of the other, one of each.
    assert (
        "| found-1 | 1/2 won, mean 1.000 [0.950, 1.040] | 2/2 won, mean 1.022 [1.021, 1.022] |"
        in text
    )
    assert "| gru | 1/" not in text  # the GRU is not compared with itself
