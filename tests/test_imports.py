"""The import rules of docs/ARCHITECTURE.md: the lower layers know nothing of Optuna or
SQLAlchemy, and nothing imports a layer above its own."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "rnnopt"

# Top-level modules and packages of rnnopt, lowest layer first. A module may import its own
# layer and those below. (Modules not listed here are not checked.)
LAYERS: list[set[str]] = [
    {"errors", "paper"},
    {"storage", "cells"},
    {"_cli", "workers", "tasks", "model"},
    {"budget"},
    {"train"},
    {"dashboard", "db"},
    {"hpo"},
    {"report", "evolve"},
    {"study"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}
NO_OPTUNA = ("rnnopt.cells", "rnnopt.tasks", "rnnopt.train", "rnnopt.model", "rnnopt.budget")


def _imports(path: Path) -> set[str]:
    """rnnopt.* modules that ``path`` imports anywhere (inside functions too)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
            if node.module == "rnnopt":
                out |= {f"rnnopt.{a.name}" for a in node.names}
    return {m for m in out if m.startswith("rnnopt.")}


def _top(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def test_nothing_imports_upward() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = _top(path)
        if here not in LAYER:
            continue
        for module in _imports(path):
            there = module.split(".")[1]
            if there in LAYER and LAYER[there] > LAYER[here]:
                wrong.append(f"{path.relative_to(REPO)} imports {module}")
    assert not wrong, "\n".join(wrong)


def test_storage_imports_only_errors() -> None:
    for path in (PACKAGE / "storage").glob("*.py"):
        others = {m.split(".")[1] for m in _imports(path)} - {"storage", "errors"}
        assert not others, f"{path.name} imports {others}"


@pytest.mark.parametrize("module", NO_OPTUNA)
def test_lower_layers_load_neither_optuna_nor_sqlalchemy(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "bad = [m for m in ('optuna', 'sqlalchemy') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_report_package_does_not_import_its_command_line() -> None:
    """``python -m rnnopt.report`` warns when the package has already imported its
    ``__main__``; the package exports only the Python API."""
    code = "import sys, rnnopt.report\nassert 'rnnopt.report.__main__' not in sys.modules\n"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_hpo_objective_alone_writes_trial_attributes() -> None:
    """On the study side a trial's user attributes have one writer, rnnopt/hpo/objective.py
    (a confirmation trial's two are given where confirm.py enqueues it)."""
    writers = []
    for path in [*sorted((PACKAGE / "hpo").glob("*.py")), PACKAGE / "study.py"]:
        if path.name == "objective.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "set_user_attr"
                and isinstance(node.value, ast.Name)
                and "trial" in node.value.id
            ):
                writers.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not writers, writers
