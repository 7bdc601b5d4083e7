"""Fixtures of the report tests: a SQLite database with the known studies of report_known_db."""

from __future__ import annotations

import optuna
import pytest
from report_known_db import fill


@pytest.fixture
def filled_sqlite(sqlite_url: str) -> str:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fill(sqlite_url)
    return sqlite_url
