"""Fixtures of the report tests: a SQLite database with the known studies of report_known_db."""

from __future__ import annotations

import optuna
import pytest
from report_known_db import fill


@pytest.fixture(scope="module")
def filled_sqlite(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The known studies in SQLite, shared by a module's tests, which only read it."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path_factory.mktemp('known') / 'known.db'}"
    fill(url)
    return url
