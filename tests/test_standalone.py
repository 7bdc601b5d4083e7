"""A fresh clone stands alone: without ../shared beside it, every test is collected and the
tests that need the real data sets skip, naming RNNOPT_DATA."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _clone(dest: Path) -> Path:
    """Copy the files git would check out (tracked and new, not ignored) into ``dest/repo``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split("\0")  # fmt: skip
    root = dest / "repo"
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    return root


@pytest.mark.slow
def test_suite_collects_and_data_tests_skip_without_shared(tmp_path: Path) -> None:
    root = _clone(tmp_path)
    assert not (root.parent / "shared").exists()
    env = {k: v for k, v in os.environ.items() if k != "RNNOPT_DATA"}
    env["PYTHONPATH"] = str(root)

    def pytest_run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
            cwd=root, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip

    collected = pytest_run("--collect-only", "-q")
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-2000:]
    summary = collected.stdout.strip().splitlines()[-1]
    assert summary.endswith(" tests collected") or " tests collected in " in summary, summary
    assert "error" not in summary and int(summary.split()[0]) > 500, summary

    real = pytest_run(
        "-q", "-rs", "tests/tasks/test_tasks_real.py::test_ptb_counts_and_vocabulary",
        "tests/cells/test_cells.py::test_reference_vectors_cover_the_paper_and_are_current",
    )  # fmt: skip
    assert real.returncode == 0, real.stdout[-3000:]
    assert "1 passed, 1 skipped" in real.stdout
    assert "RNNOPT_DATA" in real.stdout
