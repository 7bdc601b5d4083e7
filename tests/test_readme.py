"""The README's quick start and CI must not drift apart: CI runs the README's test command."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_quick_start_is_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (REPO / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = _bash_blocks(quick)
    assert len(blocks) == 2, blocks
    main_job, test_cmd = blocks
    assert main_job.startswith("pip install torch==2.13.0 && ")
    assert main_job.endswith("python -m rnnopt.study --task xml")
    assert test_cmd.startswith("pip install torch==2.13.0 && ")
    ci_lines = [ln.strip() for ln in (REPO / ".ci" / "run").read_text().splitlines()]
    assert test_cmd in ci_lines


def test_torch_requirement_is_satisfied_by_the_local_cpu_build() -> None:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    torch_req = next(d for d in deps if d.startswith("torch"))
    from packaging.specifiers import SpecifierSet

    assert "2.13.0" in SpecifierSet(torch_req.removeprefix("torch"))
    assert not any(d.startswith("torchtext") for d in deps)


def test_the_library_snippet_learns() -> None:
    """The README's Python example runs as printed and trains well above chance."""
    readme = (REPO / "README.md").read_text()
    usage = readme.split("Library use:", 1)[1]
    (snippet,) = re.findall(r"```python\n(.*?)```", usage, flags=re.S)[:1]
    scope: dict = {}
    exec(compile(snippet, "README.md", "exec"), scope)
    task, result = scope["task"], scope["result"]
    chance = 1.0 / task.output_size  # guessing a symbol uniformly
    assert result.stop_reason == "finished"
    assert result.valid_metrics[task.metric] > max(0.5, 5 * chance), result.valid_metrics
