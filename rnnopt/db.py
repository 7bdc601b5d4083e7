"""SQL views over Optuna's own tables: ``rnnopt_trials``, ``rnnopt_leaderboard`` and helpers.

``install_views(url)`` creates Optuna's schema (by opening an ``RDBStorage``) and then the views
from ``sql/<dialect>.sql``. It is idempotent and cheap when the installed views are current: a
one-row view ``rnnopt_views_meta`` records the SHA-256 of the SQL that created them.

Command line::

    python -m rnnopt.db views --storage URL [--drop] [--force]
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import re
from collections.abc import Sequence
from pathlib import Path

from rnnopt.errors import ConfigError, StorageError

__all__ = [
    "VIEWS",
    "dialect_of",
    "drop_views",
    "install_views",
    "normalize_url",
    "sql_path",
    "view_statements",
]

# Named, not __name__: run as `python -m` this module is __main__ (__mp_main__ in workers).
logger = logging.getLogger("rnnopt.db")

VIEWS = ("rnnopt_studies", "rnnopt_trial_params", "rnnopt_trials", "rnnopt_leaderboard")
_META_VIEW = "rnnopt_views_meta"
_DIALECTS = ("sqlite", "postgresql", "mysql")
# Drivers that are installed with rnnopt; a bare scheme would pick one that is not.
_DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg",
                    "mysql": "mysql+pymysql", "mariadb": "mysql+pymysql"}


def normalize_url(url: str) -> str:
    """Give ``postgresql://`` and ``mysql://`` URLs the drivers rnnopt installs."""
    if not isinstance(url, str) or "://" not in url:
        raise StorageError(
            f"bad storage URL {url!r}: expected sqlite:///FILE, postgresql://... or mysql://..."
        )
    scheme, rest = url.split("://", 1)
    return f"{_DEFAULT_DRIVERS.get(scheme.lower(), scheme)}://{rest}"


def dialect_of(url: str) -> str:
    """``sqlite``, ``postgresql`` or ``mysql`` for a storage URL; StorageError otherwise."""
    scheme = normalize_url(url).split("://", 1)[0].split("+", 1)[0].lower()
    if scheme == "mariadb":
        scheme = "mysql"
    if scheme not in _DIALECTS:
        raise StorageError(
            f"storage URL scheme {scheme!r} has no rnnopt views; allowed: {', '.join(_DIALECTS)}"
        )
    return scheme


def _sql_dirs() -> list[Path]:
    here = Path(__file__).resolve().parent
    # Package data (a wheel install) first, then the repository's top-level sql/ (editable).
    return [here / "sql", here.parent / "sql"]


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
    import optuna
    import sqlalchemy as sa

    url = normalize_url(url)
    try:
        optuna.storages.RDBStorage(url, skip_compatibility_check=False)
    except Exception as exc:  # sqlalchemy / driver errors: one line for the user
        raise StorageError(f"cannot open storage {_redact(url)}: {_first_line(exc)}") from exc
    try:
        return sa.create_engine(url, poolclass=sa.pool.NullPool)
    except Exception as exc:
        raise StorageError(f"cannot open storage {_redact(url)}: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _redact(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


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
        logger.info("installed rnnopt views (%s) in %s", digest, _redact(normalize_url(url)))
    except sa.exc.SQLAlchemyError as exc:
        raise StorageError(f"cannot install rnnopt views: {_first_line(exc)}") from exc
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
        raise StorageError(f"cannot drop rnnopt views: {_first_line(exc)}") from exc
    finally:
        engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    from rnnopt._cli import add_plugin_option, setup_logging
    from rnnopt.storage import DEFAULT_URL, existing_storage

    parser = argparse.ArgumentParser(prog="python -m rnnopt.db", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    views = sub.add_parser("views", help="install (or drop) the rnnopt SQL views")
    views.add_argument(
        "--storage", help=f"SQLAlchemy URL of the Optuna database (default {DEFAULT_URL}, as study)"
    )
    views.add_argument("--drop", action="store_true", help="remove the views instead")
    views.add_argument("--force", action="store_true", help="recreate even if current")
    args = add_plugin_option(parser).parse_args(argv)
    setup_logging()
    args.storage = existing_storage(args.storage)
    if args.drop:
        drop_views(args.storage)
        logger.info("dropped rnnopt views")
    else:
        install_views(args.storage, force=args.force)
        logger.info("views: %s", ", ".join(VIEWS))
    return 0


if __name__ == "__main__":
    import sys

    from rnnopt._cli import run_cli

    sys.exit(run_cli(main))
