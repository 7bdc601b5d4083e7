"""`python -m rnnopt.tasks` through a real subprocess: output, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from rnnopt import tasks

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


def test_info(data_dir: Path) -> None:
    result = cli("info", "--task", "ptb", "--data-dir", str(data_dir), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["vocabulary_size"] == 10_000 and info["metric"] == "perplexity"
    assert info["splits"]["train"]["tokens"] == 929_589
    text = cli("info", "--task", "xml", "-o", "max_tag=4")
    assert text.returncode == 0 and "vocabulary (45):" in text.stdout
    assert "max_tag: 4" in text.stdout and "closing" not in text.stderr


def test_sample_jsonl_matches_the_library_and_is_seed_stable(data_dir: Path) -> None:
    """Same output as in-process, whatever the hash seed of the interpreter."""
    args = ("sample", "--task", "arith", "-n", "4", "--seed", "3", "--jsonl")
    one = cli(*args, env={"PYTHONHASHSEED": "1"})
    two = cli(*args, env={"PYTHONHASHSEED": "2"})
    assert one.returncode == 0, one.stderr
    rows = [json.loads(line) for line in one.stdout.strip().splitlines()]
    assert rows == tasks.get("arith").sample(4, seed=3) and one.stdout == two.stdout
    for row in rows:
        assert "=" in row["text"] and row["scored"][0] == row["text"].index("=") + 1
    other = cli("sample", "--task", "arith", "-n", "4", "--seed", "4", "--jsonl")
    assert other.stdout != one.stdout
    music = cli("sample", "--task", "jsb", "-n", "2", "--seed", "0", "--jsonl",
                "--data-dir", str(data_dir))
    rows = [json.loads(line) for line in music.stdout.strip().splitlines()]
    assert len(rows) == 2 and all(len(r["scored"]) == r["text"].count("|") + 1 for r in rows)


def test_sample_readable(data_dir: Path) -> None:
    result = cli("sample", "--task", "memorize", "-n", "2", "--seed", "1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and lines[1] == "      ^^^^^"  # scored positions marked
    ptb = cli("sample", "--task", "ptb", "-n", "3", "--split", "valid",
              env={"RNNOPT_DATA": str(data_dir)})
    assert ptb.returncode == 0 and len(ptb.stdout.splitlines()) == 3
    assert all(line.endswith(" <eos>") for line in ptb.stdout.splitlines())


def test_errors(tmp_path: Path) -> None:
    assert_one_line_error(cli("info", "--task", "nope"), "'nope'", "arith", "xml")
    assert_one_line_error(cli("sample", "--task", "arith", "-o", "max_digits=0"),
                          "max_digits=0", "[1, 18]")
    assert_one_line_error(cli("sample", "--task", "arith", "-o", "distractor_rate=-1"),
                          "distractor_rate=-1")
    assert_one_line_error(cli("sample", "--task", "arith", "--split", "dev"), "'dev'")
    missing = tmp_path / "missing"
    assert_one_line_error(cli("info", "--task", "ptb", "--data-dir", str(missing)),
                          str(missing), "--data-dir", "RNNOPT_DATA")
    (tmp_path / "music").mkdir()
    (tmp_path / "music" / "jsb_chorales.json").write_text('{"train": [[[60]],')
    assert_one_line_error(
        cli("sample", "--task", "jsb", env={"RNNOPT_DATA": str(tmp_path),
                                            "RNNOPT_CACHE": str(tmp_path / "c")}),
        "jsb_chorales.json", "line 1, column 19",
    )
