"""Fixtures of the report tests: SQLite databases with the known studies of report_known_db."""

from __future__ import annotations

from collections.abc import Callable

import optuna
import pytest
from report_known_db import fill, fill_confirmed


def _known(factory: pytest.TempPathFactory, name: str, write: Callable[[str], None]) -> str:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{factory.mktemp(name) / f'{name}.db'}"
    write(url)
    return url


@pytest.fixture(scope="module")
def filled_sqlite(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The known studies in SQLite, shared by a module's tests, which only read it."""
    return _known(tmp_path_factory, "known", fill)


@pytest.fixture(scope="module")
def confirmed_sqlite(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The confirmed PTB studies (search trials and confirmation seeds), read only."""
    return _known(tmp_path_factory, "confirmed", fill_confirmed)
