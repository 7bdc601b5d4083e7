"""Shared fixtures: the real data directory and fresh databases on the real SQL servers.

The real data sets (PTB, the four music sets) are read from ``$RNNOPT_DATA``, else from
``../shared/data`` beside the repository. Without them, every test that needs them skips with a
reason naming RNNOPT_DATA (a test that reads them raises rnnopt's DataError, turned into a skip
here); the rest of the suite runs as usual.

PostgreSQL (127.0.0.1:5432, user postgres, trust) and MariaDB (127.0.0.1:3306, root, no
password) run on every developer machine and on CI; each storage test gets its own database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RNNOPT_DATA") or REPO.parent / "shared" / "data").resolve()
HAVE_DATA = (SHARED_DATA / "ptb").is_dir() and (SHARED_DATA / "music").is_dir()
NO_DATA = (
    f"the real data sets are not at {SHARED_DATA}: set RNNOPT_DATA to a directory holding "
    "ptb/ and music/ (README, Data) to run this test"
)

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MYSQL_ADMIN = "mysql+pymysql://root@127.0.0.1:3306/test"

# Test models are tiny: one intra-op thread is several times faster for them than two, and
# leaves the second core to the database servers and subprocess workers.
torch.set_num_threads(1)


def pytest_configure(config: pytest.Config) -> None:
    if HAVE_DATA and not os.environ.get("RNNOPT_DATA"):  # empty counts as unset, as above
        os.environ["RNNOPT_DATA"] = str(SHARED_DATA)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data sets (PTB and the four music sets); skips the test where they are absent."""
    if not HAVE_DATA:
        pytest.skip(NO_DATA)
    return SHARED_DATA


@pytest.fixture(scope="session")
def have_data() -> bool:
    """Whether the real data sets are here (for tests that run with or without them)."""
    return HAVE_DATA


def _skip_without_data() -> Iterator[None]:
    from rnnopt.errors import DataError

    try:
        yield
    except DataError as exc:
        if HAVE_DATA:
            raise
        pytest.skip(f"{NO_DATA} ({exc})")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    return (yield from _skip_without_data())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    return (yield from _skip_without_data())


def _fresh_database(admin_url: str, dialect: str) -> Iterator[str]:
    import sqlalchemy as sa

    name = f"rnnopt_t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with engine.connect() as conn:
            if dialect == "postgresql":
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        engine.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of a brand-new PostgreSQL database, dropped after the test."""
    yield from _fresh_database(PG_ADMIN, "postgresql")


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """SQLAlchemy URL of a brand-new MariaDB database, dropped after the test."""
    yield from _fresh_database(MYSQL_ADMIN, "mysql")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'rnnopt.db'}"


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def storage_url(request: pytest.FixtureRequest) -> str:
    """Each of the three databases in turn, fresh for this test."""
    fixture = "postgres_url" if request.param == "postgresql" else f"{request.param}_url"
    return request.getfixturevalue(fixture)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device on this machine")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def user_task_options(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """Task options that point the user-data tasks (text, series) at small files written for
    the session, so tests looping over the task registry can build every task."""
    from user_data import write_corpus, write_sensors

    root = tmp_path_factory.mktemp("user-data")
    return {
        "text": {"data": str(write_corpus(root / "corpus.txt"))},
        "series": {"data": str(write_sensors(root / "sensors.csv")), "series": "sensor"},
    }
