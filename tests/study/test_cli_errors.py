"""Every bad input: one line on stderr naming the problem, exit code 2, database unchanged."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from study_helpers import tiny_study

from rnnopt._cli import run_cli
from rnnopt.study import main


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run_cli(main, argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--task", "xmll"], "unknown task 'xmll'"),
        (["--task", "xml", "--cells", "lstm,lstn"], "unknown cell 'lstn'"),
        (["--task", "xml", "--sampler", "grid"], "unknown sampler 'grid'"),
        (["--task", "xml", "--pruner", "early"], "unknown pruner 'early'"),
        (["--task", "xml", "--n-trials", "0"], "--n-trials must be an integer >= 1"),
        (["--task", "xml", "--mode", "both"], "unknown mode 'both'"),
        (["--task", "xml", "--workers", "0"], "--workers must be an integer >= 1, got 0"),
        (["--task", "xml", "--workers", "many"], "--workers must be an integer >= 1 or auto"),
        (["--task", "xml", "--storage", "oracle://u@h/db"], "unsupported storage URL scheme"),
        (["--task", "xml", "--storage", "not a url"], "bad storage URL"),
        (
            ["--task", "xml", "--storage", "postgresql+psycopg://postgres@127.0.0.1:1/x"],
            "cannot connect to postgresql",
        ),
        (
            ["--task", "xml", "--storage", "sqlite:////nonexistent-dir/sub/r.db"],
            "directory /nonexistent-dir/sub does not exist",
        ),
    ],
)
def test_bad_option_exits_2_with_one_line(
    extra: list[str],
    needle: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "rnnopt.db"
    args = ["--study-file", str(tiny_study(tmp_path)), "--cells", "lstm", *extra]
    code, out, err = _run(args, capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and needle in err, err
    assert "Traceback" not in err + out
    assert not db.exists() and not (tmp_path / "rnnopt-artifacts").exists()


def test_unwritable_sqlite_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if os.geteuid() == 0:
        # root writes anywhere; a path below a regular file is unwritable for everyone.
        target = tmp_path / "file" / "r.db"
        (tmp_path / "file").write_text("")
    else:
        (tmp_path / "ro").mkdir(mode=0o500)
        target = tmp_path / "ro" / "r.db"
    code, _, err = _run(
        [
            "--task",
            "xml",
            "--study-file",
            str(tiny_study(tmp_path)),
            "--cells",
            "lstm",
            "--storage",
            f"sqlite:///{target}",
        ],
        capsys,
    )
    assert code == 2 and err.startswith("error: ") and str(target.parent) in err
    assert not target.exists()


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("[study]\ntasks = ['xml']\nn_trails = 3\n", "n_trails"),
        ("[space]\nlr = {low = 2, high = 1}\n", "space.lr"),
        ("[space]\nwidth = 3\n", "width"),
        ("[train]\nbatchsize = 3\n", "batchsize"),
        ("[study\n", "not valid TOML"),
    ],
)
def test_bad_study_file(
    body: str, needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(body)
    db = tmp_path / "r.db"
    code, _, err = _run(
        ["--task", "xml", "--study-file", str(f), "--storage", f"sqlite:///{db}"], capsys
    )
    assert code == 2 and needle in err and str(f) in err and err.count("\n") == 1, err
    assert not db.exists()


def test_password_is_never_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    url = "postgresql://alice:s3cr3t-pw@127.0.0.1:1/rnnopt"
    code, out, err = _run(
        [
            "--task",
            "xml",
            "--study-file",
            str(tiny_study(tmp_path)),
            "--cells",
            "lstm",
            "--storage",
            url,
        ],
        capsys,
    )
    assert code == 2 and "cannot connect" in err and "alice:***@" in err
    assert "s3cr3t-pw" not in out + err + caplog.text


def test_changed_space_is_refused_and_database_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "r.db"
    url = f"sqlite:///{db}"
    study = tiny_study(tmp_path, max_steps=10, n_trials=1, eval_interval=5)
    base = ["--task", "xml", "--cells", "tanh", "--storage", url, "--study-file", str(study)]
    code, out, err = _run(base, capsys)
    assert code == 0, err
    assert "xml/tanh" in out and "optuna-dashboard" in out
    before = _digest(db)
    changed = tiny_study(
        tmp_path,
        max_steps=10,
        n_trials=1,
        eval_interval=5,
        extra="lr = [0.5, 1]",
        name="changed.toml",
    )
    code, _, err = _run(
        ["--task", "xml", "--cells", "tanh", "--storage", url, "--study-file", str(changed)], capsys
    )
    assert code == 2 and "different search space" in err and "--study-name" in err
    assert _digest(db) == before
    # A new prefix starts a new study next to the old one.
    code, out, err = _run(
        [
            "--task",
            "xml",
            "--cells",
            "tanh",
            "--storage",
            url,
            "--study-name",
            "v2/",
            "--study-file",
            str(changed),
        ],
        capsys,
    )
    assert code == 0 and "v2/xml/tanh" in out, err
