"""Docs that run: every fenced command in README.md and docs/*.md marked runnable runs.

The marker is an HTML comment on the line right before a ```bash fence:

    <!-- runnable -->
    ```bash
    rnnopt tasks list
    ```

A file's marked blocks run in order in one fresh directory (so a `rnnopt study` block leaves
the database that a later `rnnopt report` block reads), with `rnnopt` on PATH as the installed
console script would be. Keep marked commands cheap: seconds, not minutes.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MARKER = "<!-- runnable -->"
_BLOCK = re.compile(r"^" + re.escape(MARKER) + r"\n```bash\n(.*?)^```", re.S | re.M)
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def runnable_blocks(text: str) -> list[str]:
    """The bodies of the marked ```bash blocks of a markdown text, in order."""
    return [m.group(1) for m in _BLOCK.finditer(text)]


def test_the_marker_finds_only_marked_bash_blocks() -> None:
    text = (f"```bash\nnot me\n```\n{MARKER}\n```bash\nrnnopt tasks list\n```\n"
            f"{MARKER}\n```sh\nx\n```")
    assert runnable_blocks(text) == ["rnnopt tasks list\n"]
    marked = sum(len(runnable_blocks(p.read_text())) for p in DOCS)
    assert marked >= 4  # the README's own tour and the docs' examples
    for path in DOCS:  # a marker that does not precede a bash fence is a mistake
        text = path.read_text()
        lines = re.findall(r"^" + re.escape(MARKER) + r"$", text, re.M)
        assert len(lines) == len(runnable_blocks(text)), path.name


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    "doc", [p for p in DOCS if runnable_blocks(p.read_text())], ids=lambda p: p.name
)
def test_marked_commands_run(doc: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "rnnopt"  # what `pip install` puts on PATH ([project.scripts])
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} -m rnnopt \"$@\"\n")
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    py = bin_dir / "python"
    py.symlink_to(sys.executable)
    work = tmp_path / "work"
    work.mkdir()
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
    }
    for block in runnable_blocks(doc.read_text()):
        res = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=work, env=env,
                             capture_output=True, text=True, timeout=600)
        output = res.stdout[-1500:] + res.stderr[-3000:]
        assert res.returncode == 0, f"{doc.name}:\n{block}\n{output}"
