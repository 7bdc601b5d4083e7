"""`python -m rnnopt.tasks` through a real subprocess: output, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rnnopt import tasks
from rnnopt._cli import run_cli
from rnnopt.tasks.__main__ import main

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "rnnopt.tasks", *args], cwd=REPO, env=full_env,
        capture_output=True, text=True, timeout=120,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0]


def test_list() -> None:
    result = cli("list")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.strip().splitlines()[1:]]
    listed = {row[0]: (row[1], row[2]) for row in rows}
    assert sorted(listed) == tasks.names()
    for name, (metric, direction) in listed.items():
        cls = tasks.task_class(name)
        assert (metric, direction) == (cls.metric, cls.direction)


def test_info(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = cli("info", "--task", "ptb", "--data-dir", str(data_dir), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["vocabulary_size"] == 10_000 and info["metric"] == "perplexity"
    assert info["splits"]["train"]["tokens"] == 929_589
    assert run_cli(main, ["info", "--task", "xml", "-o", "max_tag=4"]) == 0
    out = capsys.readouterr().out
    assert "vocabulary (45): <pad> <s> . 0 1" in out and "max_tag: 4" in out


def test_sample_jsonl_matches_the_library(data_dir: Path) -> None:
    """Same output as in-process (a different interpreter, other hash seed)."""
    one = cli("sample", "--task", "arith", "-n", "4", "--seed", "3", "--jsonl",
              env={"PYTHONHASHSEED": "1"})
    assert one.returncode == 0, one.stderr
    rows = [json.loads(line) for line in one.stdout.strip().splitlines()]
    assert rows == tasks.get("arith").sample(4, seed=3)
    for row in rows:
        assert "=" in row["text"] and row["scored"][0] == row["text"].index("=") + 1


def test_closed_pipe_is_a_quiet_exit() -> None:
    """`rnnopt tasks sample ... | head`: the reader goes away before the output is written."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rnnopt", "tasks", "sample", "--task", "xml", "-n", "50"],
        cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert stderr == ""


def test_sample_in_process(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(main, ["sample", "--task", "arith", "-n", "4", "--seed", "4", "--jsonl"]) == 0
    assert [json.loads(x) for x in capsys.readouterr().out.splitlines()] == tasks.get(
        "arith").sample(4, seed=4)
    argv = ["sample", "--task", "jsb", "-n", "2", "--jsonl", "--data-dir", str(data_dir)]
    assert run_cli(main, argv) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 and all(len(r["scored"]) == r["text"].count("|") + 1 for r in rows)
    assert run_cli(main, ["sample", "--task", "memorize", "-n", "2", "--seed", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[1] == "      ^^^^^"  # scored positions marked
    argv = ["sample", "--task", "ptb", "-n", "3", "--split", "valid", "--data-dir", str(data_dir)]
    assert run_cli(main, argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(line.endswith(" <eos>") for line in lines)


def test_errors_subprocess(tmp_path: Path) -> None:
    assert_one_line_error(cli("info", "--task", "nope"), "'nope'", "arith", "xml")
    missing = tmp_path / "missing"
    assert_one_line_error(cli("info", "--task", "ptb", "--data-dir", str(missing)),
                          str(missing), "--data-dir", "RNNOPT_DATA")


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["sample", "--task", "arith", "-o", "max_digits=0"], ["max_digits=0", "[1, 18]"]),
        (["sample", "--task", "arith", "-o", "distractor_rate=-1"], ["distractor_rate=-1"]),
        (["sample", "--task", "arith", "-o", "max_digits"], ["KEY=VALUE"]),
        (["sample", "--task", "arith", "--split", "dev"], ["'dev'"]),
        (["sample", "--task", "xml", "-n", "0"], ["-n 0"]),
        (["info", "--task", "Arith"], ["'Arith'", "arith"]),
    ],
)
def test_errors_in_process(argv: list[str], words: list[str],
                           capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert all(word in err[0] for word in words)


def test_corrupt_file_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RNNOPT_DATA", str(tmp_path))
    monkeypatch.setenv("RNNOPT_CACHE", str(tmp_path / "c"))
    (tmp_path / "music").mkdir()
    (tmp_path / "music" / "jsb_chorales.json").write_text('{"train": [[[60]],')
    assert run_cli(main, ["sample", "--task", "jsb"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert "jsb_chorales.json" in err and "line 1, column 19" in err
