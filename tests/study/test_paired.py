"""Paired start-up: every cell's k-th start-up trial trains one setting (rnnopt/hpo/paired.py)."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest
from study_helpers import tiny_study

from rnnopt import schema
from rnnopt._cli import run_cli
from rnnopt.attrs import json_value
from rnnopt.hpo import samplers
from rnnopt.report.__main__ import main as report_main
from rnnopt.study import main

SHARED = ("lr", "clip", "dropout")


def _objective(with_bias: bool):  # type: ignore[no-untyped-def]
    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        if with_bias:  # a parameter only one cell has, asked between the shared ones
            trial.suggest_categorical("forget_bias", [0.0, 1.0, 2.0, 3.0])
        clip = trial.suggest_float("clip", 0.1, 10.0)
        trial.suggest_categorical("dropout", [0.0, 0.1, 0.2, 0.3])
        return lr * clip

    return objective


def _params(sampler_seed: int, with_bias: bool, n: int, pairing_seed: int = 7) -> list[dict]:
    options = {"paired_startup": True, "n_startup_trials": 3}
    sampler = samplers.make_sampler(
        "tpe", sampler_seed, n_trials=n, options=options, pairing_seed=pairing_seed
    )
    study = optuna.create_study(sampler=sampler)
    study.optimize(_objective(with_bias), n_trials=n)
    return [t.params for t in study.trials]


def test_the_kth_startup_trial_is_one_setting_for_every_cell() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Two "cells": other sampler seeds (other workers) and one with a parameter of its own.
    a = _params(sampler_seed=1, with_bias=False, n=6)
    b = _params(sampler_seed=2, with_bias=True, n=6)
    for k in range(3):
        assert {p: a[k][p] for p in SHARED} == {p: b[k][p] for p in SHARED}, k
    assert len({a[k]["lr"] for k in range(3)}) == 3  # settings differ from trial to trial
    # After the start-up each sampler models on its own study: no longer one setting.
    assert any(a[k]["lr"] != b[k]["lr"] for k in range(3, 6))
    # Another pairing seed, other settings.
    c = _params(sampler_seed=1, with_bias=False, n=3, pairing_seed=8)
    assert all(c[k]["lr"] != a[k]["lr"] for k in range(3))
    # Unpaired, the same worker seed gives another draw for the cell with another space.
    plain = [
        optuna.create_study(sampler=samplers.make_sampler("tpe", 1, n_trials=6))
        for _ in range(2)
    ]
    plain[0].optimize(_objective(False), n_trials=3)
    plain[1].optimize(_objective(True), n_trials=3)
    assert any(
        plain[0].trials[k].params["clip"] != plain[1].trials[k].params["clip"] for k in range(3)
    )


def test_paired_trials_follow_the_startup() -> None:
    on = {"paired_startup": True}
    assert samplers.paired_trials("tpe", 3, on) == 2
    assert samplers.paired_trials("tpe", 30, {**on, "n_startup_trials": 4}) == 4
    assert samplers.paired_trials("random", 5, on) == 5
    assert samplers.paired_trials("paper", 5, on) == 5
    assert samplers.paired_trials("tpe", 3, {}) == 0
    assert samplers.paired_trials("tpe", 3, {"paired_startup": False}) == 0
    assert "paired across cells (trial k < 2" in samplers.startup_text("tpe", 3, on)
    assert "paired across cells" in samplers.startup_text("random", 3, on)
    assert "paired" not in samplers.startup_text("tpe", 3)


def _study_params(url: str) -> dict[str, list[dict]]:
    out = {}
    for summary in optuna.get_all_study_summaries(url, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=url)
        trials = sorted(study.trials, key=lambda t: t.number)
        out[summary.study_name] = [t.params for t in trials]
    return out


@pytest.mark.slow
def test_a_study_pairs_its_cells_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    extra = "[sampler]\nn_startup_trials = 3"
    study = tiny_study(tmp_path, max_steps=4, n_trials=2, eval_interval=2, extra=extra)
    url = f"sqlite:///{tmp_path / 'p.db'}"
    argv = ["--task", "xml", "--cells", "lstm,gru,lstm-f", "--study-file", str(study),
            "--storage", url, "--device", "cpu", "--paired-startup",
            "--pruner", "none"]  # fmt: skip
    assert run_cli(main, [*argv, "--workers", "2", "--seed", "11"]) == 0
    out = capsys.readouterr().out
    assert "start-up settings paired across cells (trial k < 2: one setting)" in out
    # The closing summary holds each cell to the LSTM on those settings.
    assert "against lstm on the settings both trained" in out
    assert [line.split()[:2] for line in out.splitlines() if "(2 pairs)" in line] == [
        ["xml", "gru"], ["xml", "lstm-f"]
    ]
    # `rnnopt report` on the database prints the same lines under its Table 1.
    summary = [line for line in out.splitlines() if "(2 pairs)" in line]
    report_argv = ["--storage", url, "--no-plots", "--out", str(tmp_path / "report")]
    assert run_cli(report_main, report_argv) == 0
    printed = capsys.readouterr().out.splitlines()
    # (the report orders cells as the paper does, the study as --cells)
    rows = [line for line in printed if re.search(r"\(\d+ pairs?\)$", line)]
    assert sorted(rows) == sorted(summary)
    params = _study_params(url)
    assert set(params) == {"xml/lstm", "xml/gru", "xml/lstm-f"}
    shared = set.intersection(*(set(p[0]) for p in params.values()))
    assert {"lr", "clip_norm", "init_scale"} <= shared, shared
    for k in range(2):
        settings = {name: {p: ps[k][p] for p in shared} for name, ps in params.items()}
        assert len({repr(sorted(s.items())) for s in settings.values()}) == 1, settings
    assert params["xml/lstm"][0] != params["xml/lstm"][1]
    for name in params:
        attrs = optuna.load_study(study_name=name, storage=url).user_attrs
        assert json_value(attrs[schema.PAIRED_STARTUP]) == {"seed": 11, "trials": 2}
    # A third trial from a worker with another --seed: the stored pairing seed still rules, so
    # trial 2 (start-up: 3 of 3 now) pairs with the first run's settings.
    assert run_cli(main, [*argv, "--workers", "1", "--seed", "12", "--n-trials", "3"]) == 0
    params = _study_params(url)
    for name in params:
        attrs = optuna.load_study(study_name=name, storage=url).user_attrs
        assert json_value(attrs[schema.PAIRED_STARTUP]) == {"seed": 11, "trials": 3}
    third = {name: {p: ps[2][p] for p in shared} for name, ps in params.items()}
    assert len({repr(sorted(s.items())) for s in third.values()}) == 1, third


@pytest.mark.parametrize("sampler", ["cmaes", "qmc"])
def test_paired_startup_needs_a_random_startup(
    sampler: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    argv = ["--task", "xml", "--cells", "gru", "--sampler", sampler, "--paired-startup",
            "--n-trials", "1", "--max-steps", "2"]  # fmt: skip
    assert run_cli(main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"sampler {sampler!r} does not" in err[0], err
    assert "allowed: tpe, random, gp, paper" in err[0]
    assert not (tmp_path / "rnnopt.db").exists()


@pytest.mark.parametrize("name", ["gp", "random", "paper"])
def test_every_sampler_with_a_random_startup_pairs(name: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    on = {"paired_startup": True}
    studies = []
    for seed, with_bias in ((1, False), (2, True)):
        sampler = samplers.make_sampler(name, seed, n_trials=4, options=on, pairing_seed=3)
        study = optuna.create_study(sampler=sampler)
        study.optimize(_objective(with_bias), n_trials=4)
        studies.append([t.params for t in study.trials])
    n = samplers.paired_trials(name, 4, on)
    assert n == (2 if name == "gp" else 4)
    for k in range(n):
        assert {p: studies[0][k][p] for p in SHARED} == {p: studies[1][k][p] for p in SHARED}


def test_the_dashboard_note_says_which_trials_are_paired() -> None:
    from rnnopt import dashboard

    attrs = {"rnnopt.task": "xml", "rnnopt.cell": "gru",
             schema.PAIRED_STARTUP: {"seed": 11, "trials": 2}}  # fmt: skip
    text = dashboard.note_markdown("xml/gru", attrs)
    assert "## Paired start-up" in text and "Trials 0 to 1" in text and "seed 11" in text
    assert "Paired" not in dashboard.note_markdown("xml/gru", {"rnnopt.task": "xml"})
