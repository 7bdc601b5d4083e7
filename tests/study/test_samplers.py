"""Sampler and pruner options from a study file, and random start-up sized to the study."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from study_helpers import tiny_study

from rnnopt._cli import run_cli
from rnnopt.hpo import samplers
from rnnopt.hpo.plan import make_plan
from rnnopt.study import build_parser, main


def _plan(tmp_path: Path, extra: str, *argv: str):  # type: ignore[no-untyped-def]
    study = tiny_study(tmp_path, n_trials=3, extra=extra)
    args = ["--task", "xml", "--cells", "gru", "--study-file", str(study),
            "--storage", f"sqlite:///{tmp_path / 'r.db'}", *argv]  # fmt: skip
    return make_plan(build_parser().parse_args(args), args)


def test_startup_trials_are_sized_to_the_study() -> None:
    # Optuna's default (10) would make every trial of a 3-trial study random.
    assert [samplers.startup_trials(n) for n in (3, 12, 30, 200)] == [2, 4, 10, 10]
    sampler = samplers.make_sampler("tpe", 0, n_trials=3)
    assert sampler._n_startup_trials == 2
    gp = samplers.make_sampler("gp", 0, n_trials=12)
    assert gp._n_startup_trials == 4
    text = samplers.startup_text("tpe", 3)
    assert "first 2 of 3 trials per study are random start-up, 1 modelled" in text
    assert "all 3 trials" in samplers.startup_text("random", 3)


def test_study_file_tables_reach_the_sampler_and_pruner(tmp_path: Path) -> None:
    extra = (
        "[sampler]\nn_startup_trials = 2\nmultivariate = true\n"
        "[pruner]\nmin_resource = 20\nreduction_factor = 2\n"
    )
    plan = _plan(tmp_path, extra, "--pruner", "successive-halving")
    assert plan.sampler_options == {"n_startup_trials": 2, "multivariate": True}
    sampler = samplers.make_sampler(
        plan.sampler, 0, n_trials=plan.n_trials, options=plan.sampler_options
    )
    assert sampler._n_startup_trials == 2 and sampler._multivariate
    pruner = samplers.make_pruner(
        plan.pruner, max_steps=plan.max_steps, eval_interval=plan.eval_interval,
        options=plan.pruner_options,
    )  # fmt: skip
    assert isinstance(pruner, optuna.pruners.SuccessiveHalvingPruner)
    assert pruner._min_resource == 20 and pruner._reduction_factor == 2
    assert "first 2 of 3" in samplers.startup_text(plan.sampler, 3, plan.sampler_options)


@pytest.mark.parametrize(
    ("extra", "argv", "needle"),
    [
        ("[sampler]\nn_startup = 2", [], "unknown [sampler] key(s) n_startup for sampler 'tpe'"),
        ("[sampler]\nn_startup_trials = 2", ["--sampler", "random"],
         "unknown [sampler] key(s) n_startup_trials for sampler 'random'"),
        ("[sampler]\nn_startup_trials = 'two'", [], "[sampler] n_startup_trials = 'two'"),
        ("[pruner]\nwarmup = 3", [], "unknown [pruner] key(s) warmup for pruner 'median'"),
        ("[pruner]\nreduction_factor = 1", ["--pruner", "hyperband"],
         "[pruner] reduction_factor = 1 in"),
        ("[pruner]\nmin_resource = 20\nmax_resource = 10", ["--pruner", "hyperband"],
         "pruner 'hyperband' refused its options"),
        ("pruner = 3", [], "[pruner] must be a table"),
    ],
)  # fmt: skip
def test_bad_tables_are_one_line_errors(
    extra: str, argv: list[str], needle: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    study = tmp_path / "bad.toml"
    # A tiny budget, in case a bad value ever slipped through and the study started.
    study.write_text(extra + "\n[study]\nn_trials = 1\nmax_steps = 2\n")
    code = run_cli(main, ["--task", "xml", "--cells", "gru", "--study-file", str(study), *argv])
    _, err = capsys.readouterr()
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert not (tmp_path / "rnnopt.db").exists()
