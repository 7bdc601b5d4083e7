"""Inputs checked at the edge, before anything is created: each bad value is one line
``error: ...`` naming it and what is allowed, exit code 2, and no database file. A study whose
every trial failed ends non-zero naming the first error, and failed trials leave their slots
to a fixed rerun."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from study_helpers import tiny_study

from rnnopt import cells
from rnnopt._cli import cpus, run_cli
from rnnopt.cells import TanhCell
from rnnopt.hpo.plan import MAX_AUTO_WORKERS, make_plan
from rnnopt.study import build_parser, main


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run_cli(main, argv)
    out, err = capsys.readouterr()
    return code, out, err


def _refused(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], *needles: str
) -> str:
    db = tmp_path / "edge.db"
    code, out, err = _run([*argv, "--storage", f"sqlite:///{db}"], capsys)
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in out + err
    for needle in needles:
        assert needle in err, err
    assert not db.exists() and not (tmp_path / "edge-artifacts").exists()
    return err


def _file(tmp_path: Path, body: str, name: str = "edge.toml") -> str:
    path = tmp_path / name
    path.write_text(body)
    return str(path)


TINY_SPACE = "\n[space]\nhidden_size = 8\nlayers = 1\n"


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        ("[study]\ntask = 5\n" + TINY_SPACE, ["study.task", "5", "task name"]),
        ("[train]\ncell_options = 5\n" + TINY_SPACE, ["train.cell_options", "5", "table"]),
        ("[train]\ntask_options = 5\n" + TINY_SPACE, ["train.task_options", "5", "table"]),
        ("[train.xml]\ntask_options = 5\n" + TINY_SPACE, ["train.xml.task_options", "table"]),
        ("[train.TYPO]\nunroll = 5\n" + TINY_SPACE, ["train.TYPO", "arith", "xml"]),
        ("[study]\ntimeout = true\n" + TINY_SPACE, ["timeout", "True", "seconds"]),
        ("[train]\ncell_options = {peepholez = true}\n" + TINY_SPACE, ["peepholez", "allowed"]),
        ("[train]\ncell_options = {forget_gate = 3}\n" + TINY_SPACE, ["forget_gate", "3"]),
        ("[space]\nlayers = {low = 1, high = 4, step = 0.5}\nhidden_size = 8\n",
         ["space.layers.step", "0.5", "integer"]),
        ("[space]\nhidden_size = 100000000\nlayers = 1\n", ["100000000", "memory", "GiB"]),
        ("[space]\nhidden_size = {low = 8, high = 100000000}\nlayers = 1\n",
         ["100000000", "memory"]),
    ],
)  # fmt: skip
def test_bad_study_file_value(
    body: str, needles: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--task", "xml", "--cells", "lstm", "--study-file", _file(tmp_path, body)]
    _refused(argv, tmp_path, capsys, *needles)


def test_study_file_that_is_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes("description = 'caf\u00e9'\n".encode("latin-1"))
    argv = ["--task", "xml", "--cells", "lstm", "--study-file", str(path)]
    _refused(argv, tmp_path, capsys, str(path), "UTF-8")


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (["--seed", str(2**32)], ["--seed", "4294967296", "0..4294967295"]),
        (["--cells", ""], ["--cells", "''"]),
        (["--cells", " , "], ["--cells"]),
        (["--heartbeat", "1e10"], ["--heartbeat", "10000000000", "1..86400"]),
        (["--heartbeat", "2.5"], ["--heartbeat", "2.5", "integer"]),
        (["--heartbeat", "soon"], ["--heartbeat", "soon"]),
        (["--study-name", "p" * 520], ["study name", "512"]),
    ],
)
def test_bad_option(
    extra: list[str], needles: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--task", "xml", "--cells", "lstm", "--study-file", str(tiny_study(tmp_path)), *extra]
    _refused(argv, tmp_path, capsys, *needles)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_cuda(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--task", "xml", "--cells", "lstm", "--study-file", str(tiny_study(tmp_path)),
            "--device", "cuda:7", "--workers", "1"]  # fmt: skip
    _refused(argv, tmp_path, capsys, "cuda:7", "allowed")


def test_ptb_validation_too_short_for_one_batch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RNNOPT_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "data"
    (root / "ptb").mkdir(parents=True)
    words = " ".join(f"w{i % 50}" for i in range(3000))
    (root / "ptb" / "ptb.train.txt").write_text(f" {words}\n")
    (root / "ptb" / "ptb.valid.txt").write_text(" w1 w2 w3 w4\n")
    (root / "ptb" / "ptb.test.txt").write_text(f" {words[:2000]}\n")
    argv = ["--task", "ptb", "--cells", "lstm", "--study-file", str(tiny_study(tmp_path)),
            "--data-dir", str(root)]  # fmt: skip
    _refused(argv, tmp_path, capsys, "valid", "ptb", "batch")


@pytest.mark.storage
@pytest.mark.parametrize("server", ["postgres_url", "mysql_url"])
def test_study_name_over_512_characters_on_a_server(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> None:
    import sqlalchemy as sa

    url = request.getfixturevalue(server)
    argv = ["--task", "xml", "--cells", "lstm", "--study-file", str(tiny_study(tmp_path)),
            "--study-name", "x" * 600, "--storage", url]  # fmt: skip
    code, out, err = _run(argv, capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert "512" in err and "Traceback" not in out + err
    engine = sa.create_engine(url)
    try:
        assert sa.inspect(engine).get_table_names() == []  # nothing created
    finally:
        engine.dispose()


# --- a study whose trials all fail, and its fixed rerun ----------------------------------------

BROKEN = {"on": True}


class _Flaky(TanhCell):
    """The tanh cell, broken while BROKEN["on"]: every trial fails in its first step."""

    def forward(self, x, state=None):  # type: ignore[no-untyped-def]
        if BROKEN["on"]:
            raise RuntimeError("the flaky cell is broken")
        return super().forward(x, state)


@pytest.fixture
def flaky_cell():
    cells.register("edge-flaky", options=())(_Flaky)
    BROKEN["on"] = True
    yield "edge-flaky"
    cells.unregister("edge-flaky")


@pytest.mark.slow
def test_all_trials_failed_exits_non_zero_and_a_fixed_rerun_trains(
    flaky_cell: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import optuna
    from optuna.trial import TrialState

    url = f"sqlite:///{tmp_path / 'flaky.db'}"
    study = tiny_study(tmp_path, max_steps=4, n_trials=2, eval_interval=2)
    argv = ["--task", "xml", "--cells", flaky_cell, "--workers", "1", "--storage", url,
            "--study-file", str(study)]  # fmt: skip
    code, _, err = _run(argv, capsys)
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "xml/edge-flaky" in last, err
    assert "2 trials" in last and "RuntimeError: the flaky cell is broken" in last
    states = [t.state for t in optuna.load_study(study_name="xml/edge-flaky", storage=url).trials]
    assert states == [TrialState.FAIL, TrialState.FAIL]

    BROKEN["on"] = False  # the mistake fixed: the rerun trains the full budget
    code, _, err = _run(argv, capsys)
    assert code == 0, err
    trials = optuna.load_study(study_name="xml/edge-flaky", storage=url).trials
    assert [t.state for t in trials][:2] == [TrialState.FAIL, TrialState.FAIL]
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials[2:])
    assert len(trials) == 4


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--n-trials", "1", "--cells", "lstm"], 1),  # a smoke run: in this process, all cores
        (["--n-trials", "1", "--cells", "lstm,gru"], min(2, cpus(), MAX_AUTO_WORKERS)),
        (["--n-trials", "1", "--cells", "lstm", "--workers", "2"], 2),  # explicit: as asked
    ],
)
def test_auto_workers_never_exceed_the_trials(
    tmp_path: Path, argv: list[str], expected: int
) -> None:
    args = ["--task", "xml", "--storage", f"sqlite:///{tmp_path / 'w.db'}", *argv]
    assert make_plan(build_parser().parse_args(args), args).workers == expected
    assert not (tmp_path / "w.db").exists()
