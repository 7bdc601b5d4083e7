"""Search spaces and study files: parsing, validation, resolution per cell, canonical JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rnnopt.errors import ConfigError
from rnnopt.hpo import space, studyfile

REPO = Path(__file__).resolve().parents[2]


def test_paper_defaults_resolve_to_grids_under_paper_sampler_and_ranges_otherwise() -> None:
    s = space.parse_space({"hidden_size": 32})
    grid = s.resolved(["lstm"], grid_mode=True, search=False)["params"]
    assert grid["lr"] == {"type": "categorical", "choices": [0.1, 0.2, 0.3, 0.5, 1, 2, 5]}
    assert grid["clip_norm"]["choices"] == [1, 2.5, 5, 10, 20]
    assert grid["init_scale"]["choices"] == [0.3, 0.7, 1, 1.4, 2, 2.8]
    assert grid["layers"]["choices"] == [1, 2, 3, 4]
    assert grid["hidden_size"] == {"type": "fixed", "value": 32}
    rng = s.resolved(["lstm"], grid_mode=False, search=False)["params"]
    assert rng["lr"] == {"type": "float", "low": 0.1, "high": 5, "log": True}
    assert rng["layers"] == {"type": "int", "low": 1, "high": 4, "log": False}


def test_gates_and_forget_bias_only_for_cells_that_have_them() -> None:
    s = space.parse_space({"gates": ["forget_gate"], "forget_bias": [0, 1], "hidden_size": 8})
    lstm = s.resolved(["lstm"], grid_mode=True, search=False)["params"]
    gru = s.resolved(["gru"], grid_mode=True, search=False)["params"]
    assert lstm["forget_gate"]["choices"] == [True, False] and "forget_bias" in lstm
    assert "forget_gate" not in gru and "forget_bias" not in gru
    both = s.resolved(["lstm", "gru"], grid_mode=True, search=True)
    assert both["cell"]["choices"] == ["lstm", "gru"]
    assert both["params"]["forget_gate"]["only_cells"] == ["lstm"]


def test_canonical_json_is_order_independent() -> None:
    a = space.parse_space({"lr": [1, 2], "hidden_size": 8}).resolved(
        ["gru"], grid_mode=True, search=False
    )
    b = json.loads(space.canonical_json(a))
    assert space.canonical_json(b) == space.canonical_json(a)
    assert " " not in space.canonical_json(a)


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ({"learning_rate": [1]}, "learning_rate"),
        ({"lr": {"low": 5, "high": 1}}, "low=5"),
        ({"lr": {"low": -1, "high": 1, "log": True}}, "lr"),
        ({"layers": [1, 7]}, "layers"),
        ({"dropout": 1.5}, "dropout"),
        ({"lr": {"grid": [1], "spread": 2}}, "spread"),
        ({"gates": ["reset_gate"]}, "gates"),
        ({"lr": []}, "lr"),
        ({"hidden_size": 8, "param_budget": 1000}, "hidden_size or param_budget"),
    ],
)
def test_bad_space_raises_config_error_naming_key_and_file(table: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        space.parse_space(table, "studies/x.toml")
    assert needle in str(info.value) and "studies/x.toml" in str(info.value)


def test_study_file_unknown_key_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text("[study]\ntasks = ['xml']\nn_trails = 3\n")
    with pytest.raises(ConfigError, match=r"n_trails.*bad\.toml"):
        studyfile.load_study_file(str(f))


@pytest.mark.parametrize(
    "path",
    [*sorted((REPO / "studies").glob("*.toml")), REPO / "rnnopt" / "studies" / "quick.toml"],
    ids=lambda p: p.name,
)
def test_shipped_study_files_parse_and_resolve(path: Path) -> None:
    from rnnopt import cells, tasks

    sf = studyfile.load_study_file(str(path))
    for t in sf.study.get("tasks", [sf.study.get("task")]):
        assert t is None or t in tasks.names()  # None: the task comes from --task
    chosen = sf.study.get("cells", list(space.PAPER_CELLS))
    for c in chosen:
        assert c in cells.names()
    resolved = sf.space.resolved(
        chosen,
        grid_mode=sf.study.get("sampler") == "paper",
        search=sf.study.get("mode") == "search",
    )
    assert resolved["params"]


def test_default_plan_is_the_quick_study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--task xml` alone: the quick study's budget, Adam, hidden 128, xml (and arith) as a
    stream, and one worker per core (at most 4) on CPU."""
    from rnnopt._cli import cpus
    from rnnopt.hpo.plan import make_plan
    from rnnopt.study import build_parser

    monkeypatch.chdir(tmp_path)
    plan = make_plan(build_parser().parse_args(["--task", "xml", "--device", "cpu"]), None)
    assert (plan.n_trials, plan.max_steps, plan.sampler, plan.pruner) == (3, 7000, "tpe", "median")
    assert plan.workers == max(1, min(cpus(), 4))
    assert [sd.name for sd in plan.studies] == [f"xml/{c}" for c in space.PAPER_CELLS]
    sd = plan.studies[0]
    assert sd.base["optimizer"] == "adam" and sd.base["task_options"] == {"stream": True}
    params = sd.space["params"]
    assert params["hidden_size"]["value"] == 128 and params["layers"]["value"] == 1
    assert (params["lr"]["low"], params["lr"]["high"]) == (0.002, 0.008)
    # arith, too, is read as a stream (a fresh problem per column hides the forget gate)
    plan = make_plan(build_parser().parse_args(["--task", "arith", "--device", "cpu"]), None)
    assert plan.studies[0].base["task_options"] == {"stream": True}
    # the command line still wins over the default study file
    plan = make_plan(build_parser().parse_args(
        ["--task", "xml", "--n-trials", "5", "--max-steps", "50", "--workers", "1"]), None)
    assert (plan.n_trials, plan.max_steps, plan.workers) == (5, 50, 1)


def test_forget_bias_belongs_to_the_forget_gate() -> None:
    """Searched together, forget_bias is suggested only in trials that keep the forget gate,
    and never reaches a cell without one (the LSTM ablation study's space)."""
    import optuna

    from rnnopt import cells
    from rnnopt.hpo.objective import train_settings

    s = space.parse_space({"gates": ["forget_gate"], "forget_bias": [0, 1, 2], "hidden_size": 8})
    resolved = s.resolved(["lstm"], grid_mode=True, search=False)
    assert resolved["params"]["forget_bias"]["requires"] == {"forget_gate": True}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        _, values = space.suggest(trial, resolved)
        gate = values["forget_gate"]
        seen.add(gate)
        assert ("forget_bias" in values) == gate and ("forget_bias" in trial.params) == gate
        study.tell(trial, 0.0)
    assert seen == {True, False}
    # a fixed forget_gate=False among the study's cell options drops the bias as well
    spec = cells.spec("lstm")
    config, gates = train_settings({"forget_bias": 2.0}, "lstm", spec, {"forget_gate": False})
    assert "forget_bias" not in config and gates == {}
    config, _ = train_settings({"forget_bias": 2.0, "forget_gate": True}, "lstm", spec, {})
    assert config == {"forget_bias": 2.0}
    # without gate search, the rule is the cells': lstm-f has no bias to search
    plain = space.parse_space({"forget_bias": [0, 1], "hidden_size": 8})
    assert "requires" not in plain.resolved(["lstm"], grid_mode=True, search=False)["params"][
        "forget_bias"
    ]
    assert "forget_bias" not in plain.resolved(["lstm-f"], grid_mode=True, search=False)["params"]


def test_forget_bias_without_a_forget_gate_is_refused_by_the_trainer() -> None:
    from rnnopt.train import TrainConfig
    from rnnopt.train._loop import model_cell_options

    config = TrainConfig(
        task="xml", cell="lstm", hidden_size=8, forget_bias=1.0,
        cell_options={"forget_gate": False},
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"forget_bias=1\.0 .*'lstm'.*no forget gate"):
        model_cell_options(config)
