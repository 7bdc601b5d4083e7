"""SQL views over Optuna's own tables: ``rnnopt_trials``, ``rnnopt_leaderboard`` and helpers.

``install_views(url)`` creates Optuna's schema (by opening an ``RDBStorage``) and then the views
from ``sql/<dialect>.sql``. It is idempotent and cheap when the installed views are current: a
one-row view ``rnnopt_views_meta`` records the SHA-256 of the SQL that created them. The command
line is ``python -m rnnopt.db views``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from pathlib import Path

from rnnopt.errors import ConfigError, StorageError
from rnnopt.storage.rdb import check_url, open_storage
from rnnopt.storage.urls import BACKENDS, backend_of, mask_url, normalize_url, scrub

__all__ = [
    "VIEWS",
    "dialect_of",
    "drop_views",
    "install_views",
    "sql_path",
    "view_statements",
]

logger = logging.getLogger(__name__)

VIEWS = ("rnnopt_studies", "rnnopt_trial_params", "rnnopt_trials", "rnnopt_leaderboard")
_META_VIEW = "rnnopt_views_meta"
_DIALECTS = BACKENDS


def dialect_of(url: str) -> str:
    """``sqlite``, ``postgresql`` or ``mysql`` for a storage URL; StorageError otherwise."""
    return backend_of(url)


def _sql_dirs() -> list[Path]:
    package = Path(__file__).resolve().parents[1]
    # Package data (a wheel install) first, then the repository's top-level sql/ (editable).
    return [package / "sql", package.parent / "sql"]


def sql_path(dialect: str) -> Path:
    """The view definitions for one dialect."""
    if dialect not in _DIALECTS:
        raise ConfigError(f"unknown SQL dialect {dialect!r}; allowed: {', '.join(_DIALECTS)}")
    for directory in _sql_dirs():
        path = directory / f"{dialect}.sql"
        if path.is_file():
            return path
    raise StorageError(f"view definitions {dialect}.sql not found in {_sql_dirs()}")


def view_statements(dialect: str) -> list[str]:
    """The SQL statements (drops, then creates) of ``sql/<dialect>.sql``, comments removed."""
    text = sql_path(dialect).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    body = "\n".join(re.sub(r"\s--\s.*$", "", line) for line in lines)
    return [stmt.strip() for stmt in re.split(r";\s*(?:\n|$)", body) if stmt.strip()]


def _digest(statements: Sequence[str]) -> str:
    return hashlib.sha256("\n;\n".join(statements).encode()).hexdigest()[:16]


def _open_engine(url: str):  # -> sqlalchemy.engine.Engine
    """Create Optuna's tables if needed (through Optuna), then return a SQLAlchemy engine."""
    import sqlalchemy as sa

    url = normalize_url(url)
    check_url(url)
    open_storage(url)
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def _first_line(exc: BaseException, url: str) -> str:
    text = scrub(str(exc), url).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _installed_digest(conn) -> str | None:
    import sqlalchemy as sa

    try:
        with conn.begin_nested():
            return conn.execute(sa.text(f"SELECT sql_sha256 FROM {_META_VIEW}")).scalar()
    except sa.exc.DBAPIError:
        return None


def _lock(conn, dialect: str) -> None:
    """Serialise concurrent installers (several workers opening one storage at once)."""
    import sqlalchemy as sa

    if dialect == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(7205863321)"))
    elif dialect == "mysql":
        conn.execute(sa.text("SELECT GET_LOCK('rnnopt_views', 60)"))
    # SQLite: the DDL transaction itself takes the database write lock.


def install_views(url: str, *, force: bool = False) -> None:
    """Create or refresh rnnopt's read-only views in the Optuna database at ``url``.

    Idempotent; a no-op when the views were created from the same SQL. Raises StorageError when
    the database cannot be opened or the views cannot be created.
    """
    import sqlalchemy as sa

    dialect = dialect_of(url)
    statements = view_statements(dialect)
    digest = _digest(statements)
    engine = _open_engine(url)
    try:
        with engine.connect() as conn:
            if not force and _installed_digest(conn) == digest:
                logger.debug("rnnopt views are current (%s)", digest)
                return
            if conn.in_transaction():
                conn.rollback()
            with conn.begin():
                _lock(conn, dialect)
                if not force and _installed_digest(conn) == digest:
                    return
                conn.execute(sa.text(f"DROP VIEW IF EXISTS {_META_VIEW}"))
                for stmt in statements:
                    conn.execute(sa.text(stmt))
                conn.execute(
                    sa.text(f"CREATE VIEW {_META_VIEW} AS SELECT '{digest}' AS sql_sha256")
                )
            if dialect == "mysql":
                conn.execute(sa.text("SELECT RELEASE_LOCK('rnnopt_views')"))
                conn.commit()
        logger.info("installed rnnopt views (%s) in %s", digest, mask_url(normalize_url(url)))
    except sa.exc.SQLAlchemyError as exc:
        raise StorageError(f"cannot install rnnopt views: {_first_line(exc, url)}") from None
    finally:
        engine.dispose()


def drop_views(url: str) -> None:
    """Remove rnnopt's views (Optuna's tables are left alone)."""
    import sqlalchemy as sa

    dialect_of(url)
    engine = _open_engine(url)
    try:
        with engine.begin() as conn:
            for name in (_META_VIEW, *reversed(VIEWS)):
                conn.execute(sa.text(f"DROP VIEW IF EXISTS {name}"))
    except sa.exc.SQLAlchemyError as exc:
        raise StorageError(f"cannot drop rnnopt views: {_first_line(exc, url)}") from None
    finally:
        engine.dispose()


def install_views_quietly(url: str) -> None:
    """Install the views; a failure only logs a warning (studies work without them)."""
    try:
        install_views(url)
    except Exception as exc:
        logger.warning("could not install rnnopt SQL views: %s", scrub(str(exc), url)[:200])
