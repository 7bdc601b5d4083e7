"""Storage URLs: the one place that parses, normalises, masks and checks them.

Accepted schemes: ``sqlite:///PATH``, ``postgresql://`` (alias ``postgres://``) and ``mysql://``
(alias ``mariadb://``), with or without a ``+driver``; a bare scheme gets the driver installed
with rnnopt (psycopg 3, PyMySQL). A password may sit in the user part (an unencoded ``@`` in it
is allowed: the host starts after the last ``@``) or in a ``password=`` query parameter.

Every password that passes through :func:`normalize_url` is remembered for the life of the
process, and :func:`scrub` removes remembered passwords from any text (driver and SQLAlchemy
messages, log records). Commands also take ``--storage-env VAR`` so that the URL never appears in
``argv`` (and ``ps``); libpq's ``PGPASSWORD`` and ``~/.pgpass`` work as well.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote

from rnnopt.errors import ConfigError, StorageError

__all__ = [
    "DEFAULT_URL",
    "add_storage_arguments",
    "backend_of",
    "mask_url",
    "normalize_url",
    "scrub",
    "sqlite_path",
    "storage_url",
]

DEFAULT_URL = "sqlite:///rnnopt.db"
BACKENDS = ("sqlite", "postgresql", "mysql")
_ALIASES = {"postgres": "postgresql", "mariadb": "mysql"}
# Drivers installed with rnnopt, used when a URL names none.
_DEFAULT_DRIVER = {"postgresql": "psycopg", "mysql": "pymysql"}
_PASSWORD_KEYS = ("password", "passwd", "pwd")
# Shorter remembered passwords are scrubbed only where they stand in a URL: blanking every
# "ab" in every message would make the messages unreadable.
_MIN_SCRUB_LEN = 3

_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][\w+.-]*)://(?P<rest>.*)$", re.S)
# scheme://user:PASSWORD@ in any text; the password runs to the last "@" of the token.
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][\w+.-]*://[^\s:/@'\"]*:)[^\s'\"]*@")
_QUERY_PASSWORD = re.compile(
    r"(?P<head>\b(?:" + "|".join(_PASSWORD_KEYS) + r")\s*=\s*)(?P<value>'[^']*'|[^&\s'\"]+)",
    re.I,
)

# What follows the user part of a server URL: host (or [IPv6]), port, database, query.
_HOSTPART = re.compile(r"(?:\[[^\]]*\]|[^@/?:\s\[]*)(?::[0-9]*)?(?:/[^?@]*)?(?:\?.*)?", re.S)

_secrets: set[str] = set()
_log_filter_installed = False


def _split(url: str) -> tuple[str, str | None, str | None, str, str]:
    """(scheme, user, password, host-and-path, query) of a URL. The user part of a server URL
    ends at the first ``@`` that is followed by ``HOST[:PORT][/DB][?QUERY]``, so a password may
    hold ``@``, ``/``, ``?`` and ``:`` unencoded. User and password come back decoded."""
    m = _SCHEME.match(url.strip())
    if not m:
        raise StorageError(
            f"bad storage URL {mask_url(url)!r}; expected sqlite:///PATH, "
            "postgresql://USER@HOST/DB or mysql://USER@HOST/DB"
        )
    scheme, rest = m["scheme"], m["rest"]
    user = password = None
    if not scheme.lower().startswith("sqlite"):
        for at in (i for i, ch in enumerate(rest) if ch == "@"):
            if _HOSTPART.fullmatch(rest, at + 1):
                u, colon, p = rest[:at].partition(":")
                user, password = unquote(u), unquote(p) if colon else None
                rest = rest[at + 1 :]
                break
    rest, qmark, query = rest.partition("?")
    return scheme, user, password, rest, query if qmark else ""


def _query_passwords(query: str) -> list[str]:
    out = []
    for pair in query.split("&"):
        key, eq, value = pair.partition("=")
        if eq and key.lower() in _PASSWORD_KEYS and value:
            out.append(unquote(value.replace("+", " ")))
    return out


def _remember(password: str | None) -> None:
    global _log_filter_installed
    if not password:
        return
    _secrets.add(password)
    if not _log_filter_installed:
        _log_filter_installed = True
        _install_log_scrubber()


def _install_log_scrubber() -> None:
    """Every log record made from now on (rnnopt's, Optuna's, SQLAlchemy's) is scrubbed."""
    make = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            record.msg, record.args = scrub(record.getMessage()), None
        except Exception:  # a malformed record is logging's business, not ours
            pass
        return record

    logging.setLogRecordFactory(factory)


def mask_url(text: str) -> str:
    """``text`` (a URL, or any text holding URLs) with every password replaced by ``***``:
    safe to print, log or store."""
    text = _USERINFO.sub(lambda m: m["head"] + "***@", text)
    return _QUERY_PASSWORD.sub(lambda m: m["head"] + "***", text)


def scrub(text: str, url: str | None = None) -> str:
    """``text`` with every password rnnopt has seen (and those of ``url``) removed, in plain,
    percent-encoded and form-encoded spellings; for driver messages and log lines."""
    if url:
        remember_url(url)
    text = mask_url(text)
    for secret in sorted(_secrets, key=len, reverse=True):
        if len(secret) < _MIN_SCRUB_LEN:
            continue
        for form in {secret, quote(secret, safe=""), quote_plus(secret), quote(secret)}:
            text = text.replace(form, "***")
    return text


def remember_url(url: str) -> None:
    """Remember the passwords of ``url`` so that :func:`scrub` removes them from any text."""
    try:
        _, _, password, _, query = _split(url)
    except StorageError:
        return
    _remember(password)
    for p in _query_passwords(query):
        _remember(p)


def _parse(url: str) -> Any:
    """A SQLAlchemy URL for ``url`` (password re-encoded, so a raw ``@`` in it is safe)."""
    import sqlalchemy as sa

    scheme, user, password, rest, query = _split(url)
    userinfo = ""
    if user is not None:
        userinfo = quote(user, safe="")
        if password is not None:
            userinfo += ":" + quote(password, safe="")
        userinfo += "@"
    text = f"{scheme}://{userinfo}{rest}" + (f"?{query}" if query else "")
    try:
        return sa.engine.make_url(text)
    except Exception:
        raise StorageError(
            f"bad storage URL {mask_url(url)!r}; expected sqlite:///PATH, "
            "postgresql://USER@HOST/DB or mysql://USER@HOST/DB"
        ) from None


def backend_of(url: str) -> str:
    """``sqlite``, ``postgresql`` or ``mysql``; StorageError naming the allowed ones otherwise."""
    name = _parse(url).get_backend_name().lower()
    backend = _ALIASES.get(name, name)
    if backend not in BACKENDS:
        raise StorageError(
            f"unsupported storage URL scheme {name!r} in {mask_url(url)!r}; allowed: "
            "sqlite, postgresql (or postgres), mysql (or mariadb)"
        )
    return backend


def normalize_url(url: str | None) -> str:
    """The canonical form of a storage URL (default ``sqlite:///rnnopt.db``): a SQLite path made
    absolute, aliases resolved, the installed driver filled in, the password percent-encoded.
    The URL's passwords are remembered for :func:`scrub`."""
    url = url or DEFAULT_URL
    remember_url(url)
    backend = backend_of(url)
    parsed = _parse(url)
    if backend == "sqlite":
        db = parsed.database
        if not db or db == ":memory:" or db.startswith("file:"):
            raise StorageError(
                f"storage URL {mask_url(url)!r} names no database file; use sqlite:///PATH"
            )
        return f"sqlite:///{Path(db).expanduser().resolve()}"
    _, _, driver = parsed.drivername.partition("+")
    parsed = parsed.set(drivername=f"{backend}+{driver or _DEFAULT_DRIVER[backend]}")
    return parsed.render_as_string(hide_password=False)


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL, None for a server URL."""
    parsed = _parse(url)
    return Path(parsed.database) if parsed.get_backend_name() == "sqlite" else None


def add_storage_arguments(
    parser: argparse.ArgumentParser, *, default: str | None = None, env_default: str | None = None
) -> argparse.ArgumentParser:
    """``--storage URL`` and ``--storage-env VAR`` (read the URL from an environment variable,
    so that its password stays out of ``argv``). Without either, ``$env_default`` if set, then
    ``default``, then None: the study's default, :data:`DEFAULT_URL` (see :func:`storage_url`)."""
    group = parser.add_mutually_exclusive_group()
    env = f"${env_default} or " if env_default else ""
    group.add_argument(
        "--storage",
        metavar="URL",
        help=f"SQLAlchemy URL of the Optuna database (default: {env}{default or DEFAULT_URL})",
    )
    group.add_argument(
        "--storage-env",
        metavar="VAR",
        help="read the storage URL from environment variable VAR (keeps a password out of "
        "the process list)",
    )
    parser.set_defaults(_storage_default=default, _storage_env_default=env_default)
    return parser


def storage_url(args: argparse.Namespace) -> str | None:
    """The storage URL that :func:`add_storage_arguments`' options give; None for the default
    (:func:`normalize_url` makes it :data:`DEFAULT_URL`)."""
    if getattr(args, "storage_env", None):
        var = args.storage_env
        value = os.environ.get(var, "").strip()
        if not value:
            raise ConfigError(f"--storage-env {var}: environment variable {var} is not set")
        return value
    if getattr(args, "storage", None):
        return args.storage
    env = getattr(args, "_storage_env_default", None)
    if env and os.environ.get(env, "").strip():
        return os.environ[env].strip()
    return getattr(args, "_storage_default", None)
