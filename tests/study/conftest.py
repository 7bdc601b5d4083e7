"""Fixtures of the study tests."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import pytest
from study_helpers import REPO


@pytest.fixture(scope="module")
def strategies() -> ModuleType:
    """benchmarks/strategies.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("strategies", REPO / "benchmarks/strategies.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["strategies"] = module
    spec.loader.exec_module(module)
    return module
