"""Storage: URLs (validated, password-masked), Optuna RDB storage with heartbeat and retry,
the artifact store that holds checkpoints, and the per-study lock that keeps trial counts exact.

Nothing here writes to the database before :func:`check_url` has passed, so a bad URL leaves
every database as it was.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import shutil
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import FrozenTrial

from rnnopt.errors import StorageError

__all__ = [
    "DEFAULT_URL",
    "HeartbeatThread",
    "artifact_store",
    "check_url",
    "default_artifact_dir",
    "existing_storage",
    "mask_url",
    "normalize_url",
    "open_storage",
    "study_lock",
]

logger = logging.getLogger(__name__)

DEFAULT_URL = "sqlite:///rnnopt.db"
DIALECTS = ("sqlite", "postgresql", "mysql")
# Drivers that are installed with rnnopt (psycopg 3, PyMySQL), used when a URL names none.
_DEFAULT_DRIVER = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}
CONNECT_TIMEOUT_S = 10


def _parse(url: str) -> Any:
    import sqlalchemy as sa

    try:
        return sa.engine.make_url(url)
    except Exception:
        raise StorageError(
            f"bad storage URL {_mask_loose(url)!r}; expected sqlite:///PATH, "
            "postgresql://USER@HOST/DB or mysql://USER@HOST/DB"
        ) from None


def _mask_loose(url: str) -> str:
    """Mask ``user:password@`` in a string that may not even parse as a URL."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def mask_url(url: str) -> str:
    """The URL with its password (if any) replaced by ``***``: safe to print, log or store."""
    try:
        return _parse(url).render_as_string(hide_password=True)
    except StorageError:
        return _mask_loose(url)


def _scrub(text: str, url: str) -> str:
    """Remove the URL's password from a driver message, wherever it appears."""
    try:
        password = _parse(url).password
    except StorageError:
        password = None
    text = _mask_loose(text)
    if password:
        text = text.replace(str(password), "***")
    return " ".join(text.split())


def normalize_url(url: str | None) -> str:
    """Default to ``sqlite:///rnnopt.db`` (made absolute), fill in the installed DB drivers."""
    url = url or DEFAULT_URL
    parsed = _parse(url)
    backend = parsed.get_backend_name()
    if backend not in DIALECTS:
        raise StorageError(
            f"unsupported storage URL scheme {parsed.drivername!r} in {mask_url(url)!r}; "
            f"allowed: {', '.join(DIALECTS)}"
        )
    if backend == "sqlite":
        db = parsed.database
        if not db or db == ":memory:":
            raise StorageError(
                f"storage URL {mask_url(url)!r} names no database file; use sqlite:///PATH"
            )
        return f"sqlite:///{Path(db).expanduser().resolve()}"
    if "+" not in parsed.drivername:
        parsed = parsed.set(drivername=_DEFAULT_DRIVER[backend])
    return parsed.render_as_string(hide_password=False)


def sqlite_path(url: str) -> Path | None:
    parsed = _parse(url)
    return Path(parsed.database) if parsed.get_backend_name() == "sqlite" else None


def check_url(url: str) -> None:
    """Raise StorageError unless the storage can be used; writes nothing.

    SQLite: the file (or its directory, when the file does not exist yet) must be writable.
    Servers: a connection must open within ``CONNECT_TIMEOUT_S`` seconds.
    """
    path = sqlite_path(url)
    if path is not None:
        if path.exists():
            if path.is_dir() or not os.access(path, os.R_OK | os.W_OK):
                raise StorageError(f"SQLite database {path} is not a writable file")
            if not os.access(path.parent, os.W_OK):
                raise StorageError(
                    f"directory {path.parent} of SQLite database {path} is not writable "
                    "(SQLite needs it for its journal)"
                )
        else:
            parent = path.parent
            if parent.exists() and not parent.is_dir():
                raise StorageError(
                    f"cannot create SQLite database {path}: {parent} is not a directory"
                )
            if not parent.is_dir():
                raise StorageError(
                    f"cannot create SQLite database {path}: directory {parent} does not exist"
                )
            if not os.access(parent, os.W_OK):
                raise StorageError(
                    f"cannot create SQLite database {path}: directory {parent} is not writable"
                )
        return
    import sqlalchemy as sa

    backend = _parse(url).get_backend_name()
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_S}
    try:
        engine = sa.create_engine(url, connect_args=connect_args, poolclass=sa.pool.NullPool)
    except ImportError as exc:
        raise StorageError(f"no database driver for {mask_url(url)!r}: {exc}") from None
    except Exception as exc:
        raise StorageError(f"bad storage URL {mask_url(url)!r}: {_scrub(str(exc), url)}") from None
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        reason = _scrub(str(getattr(exc, "orig", exc)), url).split(" (Background on")[0]
        raise StorageError(
            f"cannot connect to {backend} storage {mask_url(url)!r}: {reason[:300]}"
        ) from None
    finally:
        engine.dispose()


def existing_storage(url: str | None) -> str:
    """The normalised URL of a storage that must exist already (reading never creates one);
    ``None`` means the default, the same as the study's (:data:`DEFAULT_URL`)."""
    normalized = normalize_url(url)
    path = sqlite_path(normalized)
    if path is not None and not path.is_file():
        hint = "" if url else " (the default storage: run a study here first, or pass --storage)"
        raise StorageError(f"no SQLite database at {path}{hint}")
    check_url(normalized)
    return normalized


def open_storage(
    url: str,
    *,
    heartbeat_interval: int = 60,
    grace_period: int | None = None,
    max_retry: int = 3,
    on_stale: Callable[[optuna.Study, FrozenTrial], None] | None = None,
) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage with heartbeat: a trial whose worker stops beating for
    ``grace_period`` seconds is failed and passed to ``on_stale`` (default: re-queued with
    ``RetryHeartbeatStaleTrialCallback``)."""
    engine_kwargs: dict[str, Any] = {}
    if sqlite_path(url) is not None:
        # Several local workers share one file: wait for the lock instead of failing at once.
        engine_kwargs["connect_args"] = {"timeout": 60}
    else:
        engine_kwargs["pool_pre_ping"] = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = on_stale or optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
        # Workers that start together on a fresh database race to create Optuna's schema;
        # the losers see "already exists" errors and succeed on a second try.
        for attempt in range(4):
            try:
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period or 2 * heartbeat_interval,
                    heartbeat_stale_trial_callback=retry,
                )
            except Exception as exc:
                if attempt < 3 and "exist" in str(exc).lower():
                    time.sleep(0.5 + attempt)
                    continue
                raise StorageError(
                    f"cannot open storage {mask_url(url)!r}: {_scrub(str(exc), url)[:300]}"
                ) from None
    raise AssertionError("unreachable")


def install_views_quietly(url: str) -> None:
    """Install the SQL views of ``rnnopt.db``; a failure only logs a warning."""
    try:
        from rnnopt.db import install_views

        install_views(url)
    except Exception as exc:  # the views are a convenience; studies work without them
        logger.warning("could not install rnnopt SQL views: %s", _scrub(str(exc), url)[:200])


def default_artifact_dir(url: str) -> Path:
    """Next to the SQLite file (``<stem>-artifacts``), else ``./rnnopt-artifacts``."""
    path = sqlite_path(url)
    if path is not None:
        return path.with_name(path.stem + "-artifacts")
    return Path("rnnopt-artifacts").resolve()


def check_artifact_dir(path: Path) -> None:
    """Raise StorageError unless ``path`` is (or can be made) a writable directory."""
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise StorageError(f"artifact directory {path} cannot be created or written")


class _ReplacingArtifactStore(FileSystemArtifactStore):
    """A file-system artifact store whose writes replace a file atomically (a temporary file
    renamed into place), so a checkpoint overwritten under its stable id is never half a file,
    even when the worker dies mid-write."""

    def __init__(self, base_path: str) -> None:
        super().__init__(base_path)
        self._dir = Path(base_path)

    def write(self, artifact_id: str, content_body: Any) -> None:
        target = self._dir / artifact_id
        tmp = target.with_name(f".{artifact_id}.partial")
        with open(tmp, "wb") as fh:
            shutil.copyfileobj(content_body, fh)
        os.replace(tmp, target)


def artifact_store(path: Path) -> FileSystemArtifactStore:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create artifact directory {path}: {exc.strerror}") from None
    return _ReplacingArtifactStore(str(path))


def _lock_key(study_name: str) -> int:
    return int.from_bytes(hashlib.sha1(study_name.encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def study_lock(url: str, study_name: str, timeout_s: float = 600) -> Iterator[None]:
    """An exclusive lock per study across processes and machines, held while a worker counts
    the study's trials and claims the next one, so that concurrent workers stop exactly at
    ``--n-trials``. PostgreSQL: advisory lock; MySQL: GET_LOCK; SQLite: a lock file beside the
    database (SQLite is one machine only). Locks die with the process that holds them.
    """
    path = sqlite_path(url)
    if path is not None:
        # One lock file per database; each study locks its own byte (POSIX record lock).
        offset = _lock_key(study_name) & 0x3FFFFFFF
        with open(path.with_name(f".{path.name}.lock"), "a+") as fh:
            fcntl.lockf(fh, fcntl.LOCK_EX, 1, offset)
            try:
                yield
            finally:
                fcntl.lockf(fh, fcntl.LOCK_UN, 1, offset)
        return
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    backend = _parse(url).get_backend_name()
    key = _lock_key(study_name)
    try:
        with engine.connect() as conn:
            if backend == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            else:
                got = conn.execute(
                    sa.text("SELECT GET_LOCK(:k, :t)"), {"k": f"rnnopt{key}", "t": int(timeout_s)}
                ).scalar()
                if got != 1:
                    raise StorageError(f"timed out waiting for the lock of study {study_name!r}")
            try:
                yield
            finally:
                if backend == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                else:
                    conn.execute(sa.text("SELECT RELEASE_LOCK(:k)"), {"k": f"rnnopt{key}"})
                conn.commit()
    finally:
        engine.dispose()


class HeartbeatThread:
    """Record a trial's heartbeat every ``interval`` seconds while the trial runs.

    (``study.optimize`` does this itself; rnnopt drives trials with ask/tell so that it can
    claim trials under :func:`study_lock`.)
    """

    def __init__(self, storage: optuna.storages.RDBStorage, trial_id: int, interval: float):
        self._storage, self._trial_id, self._interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rnnopt-heartbeat")

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._storage.record_heartbeat(self._trial_id)
            except Exception as exc:  # a missed beat is retried; the grace period covers it
                logger.warning("heartbeat for trial id %d failed: %s", self._trial_id, exc)

    def __enter__(self) -> HeartbeatThread:
        self._storage.record_heartbeat(self._trial_id)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
