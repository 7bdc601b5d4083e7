"""Plug-ins: cells and tasks from an entry point, from ``--plugin`` and from ``RNNOPT_PLUGINS``;
a plug-in cell's searchable option searched by a study; bad ``--plugin`` values."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

import rnnopt.cells as cells
import rnnopt.tasks as tasks
from rnnopt import plugins
from rnnopt._cli import run_cli
from rnnopt.errors import ConfigError
from rnnopt.hpo import space
from rnnopt.hpo.objective import train_settings

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "plugin"
MODULE = "rnnopt_example_plugin"

STUDY = """
[study]
tasks = ["sine"]
cells = {cells}
sampler = "random"
pruner = "none"
n_trials = {n_trials}
max_steps = 12

[train]
batch_size = 8
unroll = 20
eval_interval = 6
eval_batches = 2
task_options = {{steps = 20}}

[space]
lr = 0.3
layers = 1
hidden_size = 6
scale = {{}}
"""


def _env(*paths: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != plugins.ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *map(str, paths)])
    env["OMP_NUM_THREADS"] = "1"
    return env


def _run(module: str, args: list[str], cwd: Path, env: dict[str, str]
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def _dist_info(root: Path) -> Path:
    """A distribution "installed" in ``root``: a .dist-info with the example's entry points."""
    dist = root / "rnnopt_example_plugin-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: rnnopt-example-plugin\nVersion: 0.1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        f"[rnnopt.cells]\nscaled-rnn = {MODULE}:ScaledRNN\n\n"
        f"[rnnopt.tasks]\nsine = {MODULE}:Sine\n"
    )
    return root


@pytest.fixture
def example_plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The example plug-in imported in this process, and forgotten afterwards."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.setenv(plugins.ENV, "")  # restored afterwards
    plugins.load([MODULE])
    yield
    cells.unregister("scaled-rnn")
    tasks.unregister("sine")
    sys.modules.pop(MODULE, None)
    plugins._loaded.discard(MODULE)


def _trials(db: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=f"sqlite:///{db}").trials


# --- end to end ---------------------------------------------------------------------------


@pytest.mark.slow
def test_entry_point_plugin_runs_a_study_and_searches_the_cell_option(tmp_path: Path) -> None:
    """The example plug-in installed for real (pip), found through its entry points only."""
    site = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q",
         "--target", str(site), str(EXAMPLE)],
        capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    assert list(site.glob("rnnopt_example_plugin-*.dist-info/entry_points.txt"))
    (tmp_path / "s.toml").write_text(STUDY.format(cells='["scaled-rnn"]', n_trials=2))
    db = tmp_path / "e.db"
    run = _run("rnnopt.study", ["--study-file", "s.toml", "--storage", f"sqlite:///{db}",
                                "--workers", "1"], tmp_path, _env(site))
    assert run.returncode == 0, run.stderr[-3000:]
    trials = _trials(db, "sine/scaled-rnn")
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    scales = [t.params["scale"] for t in trials]
    assert all(0.25 <= s <= 4.0 for s in scales) and len(set(scales)) == 2
    assert all(t.user_attrs["stop_reason"] == "finished" for t in trials)
    stored = optuna.load_study(study_name="sine/scaled-rnn",
                               storage=f"sqlite:///{db}").user_attrs["rnnopt.space"]
    assert stored["params"]["scale"] == {"type": "float", "low": 0.25, "high": 4.0, "log": True}
    listed = _run("rnnopt.tasks", ["list"], tmp_path, _env(site))
    assert listed.returncode == 0 and "sine" in listed.stdout


@pytest.mark.slow
def test_plugin_option_reaches_spawned_workers(tmp_path: Path) -> None:
    """--plugin only (nothing installed): two worker processes train the plug-in's cell on its
    task, and the searched option reaches the cell (a scale outside (0, inf) would fail)."""
    (tmp_path / "s.toml").write_text(STUDY.format(cells='["scaled-rnn", "gru"]', n_trials=1))
    db = tmp_path / "p.db"
    run = _run("rnnopt.study", ["--plugin", MODULE, "--study-file", "s.toml",
                                "--storage", f"sqlite:///{db}", "--workers", "2"],
               tmp_path, _env(EXAMPLE))
    assert run.returncode == 0, run.stderr[-3000:]
    (scaled,) = _trials(db, "sine/scaled-rnn")
    (gru,) = _trials(db, "sine/gru")
    assert scaled.state.name == gru.state.name == "COMPLETE"
    assert "scale" in scaled.params and "scale" not in gru.params  # only where declared
    assert scaled.user_attrs["device"] and gru.user_attrs["valid_metric"] >= 0
    assert "--plugin rnnopt_example_plugin" in optuna.load_study(
        study_name="sine/gru", storage=f"sqlite:///{db}").user_attrs["rnnopt.command"]


# --- bad --plugin values ---------------------------------------------------------------------


COMMANDS = [
    ("rnnopt.study", []),
    ("rnnopt.report", []),
    ("rnnopt.dashboard", []),
    ("rnnopt.db", ["views"]),
    ("rnnopt.evolve", []),
    ("rnnopt.evolve", ["report"]),
    ("rnnopt.evolve", ["confirm"]),
    ("rnnopt.tasks", ["list"]),
]


@pytest.mark.parametrize(("module", "sub"), COMMANDS, ids=[" ".join([m, *s]) for m, s in COMMANDS])
def test_every_command_refuses_a_missing_plugin_in_one_line(
    module: str, sub: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import importlib

    package = module in ("rnnopt.evolve", "rnnopt.tasks", "rnnopt.report")
    main = importlib.import_module(f"{module}.__main__" if package else module).main
    monkeypatch.chdir(tmp_path)
    code = run_cli(main, [*sub, "--plugin", "rnnopt_no_such_plugin"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: --plugin 'rnnopt_no_such_plugin'") and "\n" not in err
    assert "No module named" in err
    assert list(tmp_path.iterdir()) == []  # no database, no artifacts


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("raise RuntimeError('boom')\n", ["cannot import it", "RuntimeError: boom"]),
        ("def broken(:\n", ["cannot import it", "SyntaxError"]),
        ("X = 1\n", ["registered no cell and no task"]),
        ("import rnnopt.tasks\n@rnnopt.tasks.register\nclass T(rnnopt.tasks.ExampleTask):\n"
         "    name = 'bad'\n    metric = 'f1'\n", ["metric 'f1'", "allowed: accuracy"]),
    ],
    ids=["raises", "syntax", "registers-nothing", "bad-task"],
)
def test_bad_plugin_modules(content: str, words: list[str], tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    from rnnopt.tasks.__main__ import main

    plugin = tmp_path / "rnnopt_bad_plugin_x.py"
    plugin.write_text(content)
    monkeypatch.setenv(plugins.ENV, "")  # restored afterwards
    for value in (str(plugin), "rnnopt_bad_plugin_x"):
        monkeypatch.syspath_prepend(str(tmp_path))
        sys.modules.pop("rnnopt_bad_plugin_x", None)
        code = run_cli(main, ["list", "--plugin", value])
        err = capsys.readouterr().err.strip()
        sys.modules.pop("rnnopt_bad_plugin_x", None)
        assert code == 2 and "\n" not in err, err
        for word in words:
            assert word in err
    assert os.environ[plugins.ENV] == ""


def test_empty_plugin_value(capsys: pytest.CaptureFixture[str]) -> None:
    from rnnopt.tasks.__main__ import main

    assert run_cli(main, ["list", "--plugin", ""]) == 2
    assert "--plugin ''" in capsys.readouterr().err


def test_plugin_from_file_and_environment_for_children(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--plugin FILE.py registers now and names the file in RNNOPT_PLUGINS for children."""
    from rnnopt.tasks.__main__ import main

    monkeypatch.setenv(plugins.ENV, "")  # restored afterwards
    target = tmp_path / "my_tasks_file.py"
    target.write_text((EXAMPLE / f"{MODULE}.py").read_text())
    try:
        assert run_cli(main, ["list", "--plugin", str(target)]) == 0
        assert "sine" in capsys.readouterr().out
        assert os.environ[plugins.ENV] == str(target.resolve())
        child = subprocess.run(
            [sys.executable, "-c", "import rnnopt.cells, rnnopt.tasks;"
             "print(rnnopt.tasks.task_class('sine').metric, rnnopt.cells.spec('scaled-rnn').name)"],
            env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
            timeout=120,
        )
        assert child.stdout.split() == ["mse", "scaled-rnn"], child.stderr
    finally:
        cells.unregister("scaled-rnn")
        tasks.unregister("sine")
        sys.modules.pop("my_tasks_file", None)
        plugins._loaded.discard(str(target.resolve()))


def test_a_bad_environment_entry_is_one_line(tmp_path: Path) -> None:
    run = _run("rnnopt.tasks", ["info", "--task", "sine"], tmp_path,
               {**_env(), plugins.ENV: "rnnopt_nowhere_plugin"})
    assert run.returncode == 2
    assert run.stderr.strip() == (
        "error: RNNOPT_PLUGINS names 'rnnopt_nowhere_plugin', which cannot be imported "
        "(ModuleNotFoundError: No module named 'rnnopt_nowhere_plugin')"
    )


# --- entry points ------------------------------------------------------------------------------


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The example plug-in "installed" through a .dist-info, plus a broken task entry point."""
    root = _dist_info(tmp_path)
    broken = root / "rnnopt_broken_tasks-0.1.dist-info"
    broken.mkdir()
    (broken / "METADATA").write_text("Metadata-Version: 2.1\nName: rnnopt-broken\nVersion: 0.1\n")
    (broken / "entry_points.txt").write_text(
        "[rnnopt.tasks]\nnot-here = rnnopt_missing_task_module:Task\n"
    )
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    tasks.reload_plugins()
    cells.reload_plugins()
    yield
    monkeypatch.undo()
    cells.unregister("scaled-rnn")
    tasks.unregister("sine")
    sys.modules.pop(MODULE, None)
    tasks.reload_plugins()
    cells.reload_plugins()


def test_entry_points_register_the_task_and_the_cell(installed: None) -> None:
    assert "sine" in tasks.names() and "scaled-rnn" in cells.names()
    task = tasks.get("sine", steps=10)
    assert task.direction == "minimize" and task.info()["splits"]["valid"]["examples"] == 32
    assert cells.spec("scaled-rnn").searchable["scale"].log
    with pytest.raises(ConfigError, match=r"task plugin 'not-here'.*rnnopt_missing_task_module"):
        tasks.get("not-here")
    with pytest.raises(ConfigError, match=r"sine: option steps=1 is out of range"):
        tasks.get("sine", steps=1)


def test_task_registration_is_validated() -> None:
    class NotATask:
        name = "x"

    with pytest.raises(ConfigError, match=r"not a subclass of rnnopt\.tasks\.Task"):
        tasks.register(NotATask)

    class Dup(tasks.ExampleTask):
        name = "xml"

        def examples(self, split):  # pragma: no cover - never built
            return []

    with pytest.raises(ConfigError, match="task name 'xml' is already registered"):
        tasks.register(Dup)
    Dup.name = "has space "
    with pytest.raises(ConfigError, match="without spaces"):
        tasks.register(Dup)


# --- searchable cell options in [space] ------------------------------------------------------


def test_space_searches_a_declared_cell_option(example_plugin: None) -> None:
    sp = space.parse_space({"scale": {}})
    resolved = sp.resolved(["scaled-rnn"], grid_mode=False, search=False)
    assert resolved["params"]["scale"] == {"type": "float", "low": 0.25, "high": 4.0, "log": True}
    assert "scale" not in sp.resolved(["gru"], grid_mode=False, search=False)["params"]
    both = sp.resolved(["scaled-rnn", "gru"], grid_mode=False, search=True)
    assert both["params"]["scale"]["only_cells"] == ["scaled-rnn"]
    narrower = space.parse_space({"scale": {"low": 0.5, "high": 2}})
    assert narrower.params["scale"].low == 0.5
    assert space.parse_space({"scale": [0.5, 1.0]}).params["scale"].grid == (0.5, 1.0)
    config, options = train_settings({"scale": 1.5, "lr": 0.3}, "scaled-rnn",
                                      cells.spec("scaled-rnn"))
    assert options == {"scale": 1.5} and config == {"lr": 0.3}
    assert train_settings({"scale": 1.5}, "gru", cells.spec("gru")) == ({}, {})


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ({"scale": {"low": 0.1, "high": 2}}, ["space.scale", "outside the range", "[0.25, 4]"]),
        ({"scale": 9}, ["outside the range"]),
        ({"scale": {"low": 1, "hi": 2}}, ["unknown key(s) hi"]),
        ({"scael": {}}, ["unknown space key(s) scael", "scale"]),
    ],
)
def test_bad_cell_option_ranges(example_plugin: None, table: dict, words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        space.parse_space(table, "s.toml")
    for word in words:
        assert word in str(info.value)


def test_choices_option_and_declaration_errors() -> None:
    @cells.register("test-act", searchable=[cells.CellOption("act", choices=("tanh", "relu"))])
    def make(input_size, hidden_size, *, act="tanh"):
        return cells.TanhCell(input_size, hidden_size)

    try:
        sp = space.parse_space({"act": ["relu", "tanh"]})
        assert sp.resolved(["test-act"], grid_mode=False, search=False)["params"]["act"] == {
            "type": "categorical", "choices": ["relu", "tanh"]}
        assert space.parse_space({"act": "relu"}).params["act"].value == "relu"
        with pytest.raises(ConfigError, match=r"space.act: 'gelu'.*'tanh', 'relu'"):
            space.parse_space({"act": "gelu"})
    finally:
        cells.unregister("test-act")
    with pytest.raises(ConfigError, match=r"searchable options \['nope'\] are not among"):
        cells.register("test-x", searchable=[cells.CellOption("nope", low=0, high=1)])(make)
    with pytest.raises(ConfigError, match="log range needs low > 0"):
        cells.CellOption("a", low=0, high=1, log=True)
    with pytest.raises(ConfigError, match="choices or a range"):
        cells.CellOption("a", low=0, high=1, choices=(1, 2))


def test_the_study_file_key_is_refused_without_the_plugin(tmp_path: Path) -> None:
    """What the issue saw: without the plug-in, ``scale`` is unknown, and says what is allowed."""
    with pytest.raises(ConfigError, match=r"unknown space key\(s\) scale.*allowed: lr"):
        space.parse_space({"scale": {}})


def test_the_documented_example_is_the_tested_one() -> None:
    """docs/your-data.md shows examples/plugin in full; both must stay the same."""
    doc = (REPO / "docs" / "your-data.md").read_text()
    for name, fence in (("pyproject.toml", "toml"), (f"{MODULE}.py", "python")):
        text = (EXAMPLE / name).read_text().rstrip("\n")
        assert f"```{fence}\n{text}\n```" in doc, f"docs/your-data.md no longer shows {name}"


def test_builtin_lstm_structure_flags_are_searchable() -> None:
    """The LSTM family declares peepholes and both activations: `peepholes = {}` searches
    true/false for the LSTMs only, and the value reaches the built cell."""
    sp = space.parse_space({"peepholes": {}, "output_activation": False})
    resolved = sp.resolved(["lstm", "gru"], grid_mode=False, search=True)
    assert resolved["params"]["peepholes"] == {
        "type": "categorical", "choices": [True, False], "only_cells": ["lstm"]}
    assert resolved["params"]["output_activation"]["value"] is False
    _, options = train_settings({"peepholes": True, "output_activation": False}, "lstm",
                                cells.spec("lstm"))
    cell = cells.build("lstm", 3, 4, **options)
    assert "p_i" in cell.equation_parameters() and not cell.flags.output_activation
    with pytest.raises(ConfigError, match=r"space.peepholes: 'yes'"):
        space.parse_space({"peepholes": "yes"})


def test_the_console_script_passes_plugin_to_its_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rnnopt.__main__ import main

    monkeypatch.setenv(plugins.ENV, "")
    monkeypatch.syspath_prepend(str(EXAMPLE))
    try:
        assert main(["tasks", "info", "--task", "sine", "--plugin", MODULE]) == 0
        assert "metric: mse" in capsys.readouterr().out
    finally:
        cells.unregister("scaled-rnn")
        tasks.unregister("sine")
        sys.modules.pop(MODULE, None)
        plugins._loaded.discard(MODULE)
    assert main(["study", "--plugin", "rnnopt_no_such_plugin"]) == 2
    assert "--plugin 'rnnopt_no_such_plugin'" in capsys.readouterr().err


PARITY = '''
import rnnopt.tasks


@rnnopt.tasks.register
class Parity(rnnopt.tasks.ExampleTask):
    """Running parity of a bit string (accuracy: evolve scores genomes by it)."""

    name = "parity-plugin"
    description = "running parity of random bits"
    input_kind = "tokens"
    input_size = 2
    output_size = 2
    metric = "accuracy"

    def examples(self, split):
        import random

        rng = random.Random(split)
        out = []
        for _ in range(24):
            bits = [rng.randint(0, 1) for _ in range(12)]
            out.append((bits, [sum(bits[: i + 1]) % 2 for i in range(12)]))
        return out
'''


@pytest.mark.slow
def test_evolve_workers_import_the_plugin(tmp_path: Path) -> None:
    """evolve's spawned workers (--workers 2) evaluate genomes on a task only a --plugin file
    registers."""
    plugin = tmp_path / "parity_plugin.py"
    plugin.write_text(PARITY)
    db = tmp_path / "ev.db"
    run = _run("rnnopt.evolve", [
        "--plugin", str(plugin), "--tasks", "parity-plugin", "--settings", "1",
        "--max-steps", "4", "--hidden", "6", "--eval-batches", "1", "--batch-size", "3",
        "--unroll", "10", "--references", "none", "--generations", "0", "--run", "pp",
        "--workers", "2", "--storage", f"sqlite:///{db}",
    ], tmp_path, _env())  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    evals = _trials(db, "evolve/pp/evaluations")
    done = [t for t in evals if t.state.name == "COMPLETE"]
    assert len(done) == 2 and all(t.user_attrs["stop_reason"] == "finished" for t in done)
