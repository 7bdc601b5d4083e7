"""Optuna's RDB storage as rnnopt uses it: checked, opened for writing (schema creation safe
against concurrent starts), opened for reading (never creating anything), the per-study lock,
the heartbeat, and stale-trial handling.

Nothing here writes to a database before :func:`check_url` has passed, so a bad URL leaves every
database as it was. Every error message is scrubbed of passwords.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from rnnopt.errors import StorageError
from rnnopt.storage import compat
from rnnopt.storage.urls import backend_of, mask_url, normalize_url, scrub, sqlite_path

__all__ = [
    "Heartbeat",
    "check_url",
    "existing_storage",
    "fail_stale_trials",
    "open_existing",
    "open_storage",
    "requeue",
    "study_lock",
]

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10
StaleCallback = Callable[[optuna.Study, FrozenTrial], None]


def _reason(exc: BaseException, url: str, limit: int = 300) -> str:
    """One scrubbed line from a driver or SQLAlchemy error."""
    text = str(getattr(exc, "orig", None) or exc) or type(exc).__name__
    text = scrub(text, url).split("(Background on")[0]
    return " ".join(text.split())[:limit]


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
    _connect_check(url)


def _connect_check(url: str) -> None:
    import sqlalchemy as sa

    backend = backend_of(url)
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_S}
    try:
        engine = sa.create_engine(url, connect_args=connect_args, poolclass=sa.pool.NullPool)
    except ImportError as exc:
        raise StorageError(f"no database driver for {mask_url(url)!r}: {exc}") from None
    except Exception as exc:
        raise StorageError(f"bad storage URL {mask_url(url)!r}: {_reason(exc, url)}") from None
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        raise StorageError(
            f"cannot connect to {backend} storage {mask_url(url)!r}: {_reason(exc, url)}"
        ) from None
    finally:
        engine.dispose()


def _engine_kwargs(url: str) -> dict[str, Any]:
    if sqlite_path(url) is not None:
        # Several local workers share one file: wait for the lock instead of failing at once.
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True}


@contextlib.contextmanager
def _named_lock(url: str, name: str, timeout_s: float = 600) -> Iterator[None]:
    """An exclusive lock named ``name`` across processes and machines sharing the database.
    PostgreSQL: advisory lock; MySQL/MariaDB: GET_LOCK; SQLite: a byte-range lock on a file
    beside the database (SQLite is one machine only). Locks die with the process holding them.
    """
    key = int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "big", signed=True)
    path = sqlite_path(url)
    if path is not None:
        # One lock file per database; each name locks its own byte (POSIX record lock).
        offset = key & 0x3FFFFFFF
        with open(path.with_name(f".{path.name}.lock"), "a+") as fh:
            fcntl.lockf(fh, fcntl.LOCK_EX, 1, offset)
            try:
                yield
            finally:
                fcntl.lockf(fh, fcntl.LOCK_UN, 1, offset)
        return
    import sqlalchemy as sa

    backend = backend_of(url)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            if backend == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            else:
                got = conn.execute(
                    sa.text("SELECT GET_LOCK(:k, :t)"), {"k": f"rnnopt{key}", "t": int(timeout_s)}
                ).scalar()
                if got != 1:
                    raise StorageError(f"timed out waiting for the database lock {name!r}")
            conn.commit()
            try:
                yield
            finally:
                if backend == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                else:
                    conn.execute(sa.text("SELECT RELEASE_LOCK(:k)"), {"k": f"rnnopt{key}"})
                conn.commit()
    except sa.exc.SQLAlchemyError as exc:
        raise StorageError(
            f"cannot take the database lock {name!r} in {mask_url(url)!r}: {_reason(exc, url)}"
        ) from None
    finally:
        engine.dispose()


def study_lock(
    url: str, study_name: str, timeout_s: float = 600
) -> contextlib.AbstractContextManager[None]:
    """An exclusive lock per study across processes and machines, held while a worker counts
    the study's trials and claims the next one, so that concurrent workers stop exactly at
    ``--n-trials``."""
    return _named_lock(url, study_name, timeout_s)


def open_storage(
    url: str,
    *,
    heartbeat_interval: int = 60,
    grace_period: int | None = None,
    max_retry: int = 3,
    on_stale: StaleCallback | None = None,
) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage for writing, creating its tables if needed, with heartbeat: a trial
    whose worker stops beating for ``grace_period`` seconds is failed by
    :func:`fail_stale_trials` and passed to ``on_stale`` (default: :func:`requeue`).

    Processes that start together on an empty server database would race to create Optuna's
    schema (``Duplicate entry 'v3.2.0.a'``); creation runs under a database lock, and a
    remaining race error is retried.
    """
    url = normalize_url(url)
    callback = on_stale or _requeue_callback(max_retry)
    lock = _named_lock if sqlite_path(url) is None else _no_lock
    last: Exception | None = None
    for attempt in range(5):
        try:
            with lock(url, "rnnopt-schema"), compat.quiet_experimental():
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=_engine_kwargs(url),
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period or 2 * heartbeat_interval,
                    heartbeat_stale_trial_callback=callback,
                )
        except StorageError:
            raise
        except Exception as exc:
            last = exc
            text = str(exc).lower()
            if not any(w in text for w in ("exist", "duplicate", "deadlock", "locked")):
                break
            time.sleep(0.3 * (attempt + 1))
    assert last is not None
    raise StorageError(f"cannot open storage {mask_url(url)!r}: {_reason(last, url)}") from None


@contextlib.contextmanager
def _no_lock(url: str, name: str) -> Iterator[None]:
    yield  # SQLite: the DDL transaction takes the database's write lock itself


def existing_storage(url: str | None) -> str:
    """The normalised URL of a storage that must exist already (reading never creates one);
    ``None`` means the default, the same as the study's (:data:`DEFAULT_URL`)."""
    normalized = normalize_url(url)
    path = sqlite_path(normalized)
    if path is not None:
        if not path.is_file():
            hint = (
                "" if url else " (the default storage: run a study here first, or pass --storage)"
            )
            raise StorageError(f"no SQLite database at {path}{hint}")
    else:
        _connect_check(normalized)
    return normalized


def open_existing(url: str | None) -> optuna.storages.RDBStorage:
    """An existing Optuna database, for readers (report, dashboard, views): never creates a
    database file or a table. StorageError naming the URL (password masked) otherwise."""
    url = existing_storage(url)
    try:
        return optuna.storages.RDBStorage(
            url, engine_kwargs=_engine_kwargs(url), skip_table_creation=True
        )
    except Exception as exc:
        raise StorageError(
            f"{mask_url(url)!r} is not an Optuna database: {_reason(exc, url)}"
        ) from None


# --- trials whose worker died -----------------------------------------------------------------


def requeue(study: optuna.Study, failed: FrozenTrial, max_retry: int | None) -> None:
    """Queue a retry of a failed trial (same parameters), as Optuna's
    ``RetryHeartbeatStaleTrialCallback`` does, unless it was retried ``max_retry`` times. The
    retry keeps the trial's user attributes except its ``stop_reason`` and ``reason``, and the
    system attributes ``failed_trial`` (the original) and ``retry_history``."""
    history = [*failed.system_attrs.get("retry_history", []), failed.number]
    if max_retry is not None and len(history) > max_retry:
        return
    system = {
        **failed.system_attrs,
        "failed_trial": failed.system_attrs.get("failed_trial", failed.number),
        "retry_history": history,
    }
    user = {k: v for k, v in failed.user_attrs.items() if k not in ("stop_reason", "reason")}
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.WAITING,
            params=failed.params,
            distributions=failed.distributions,
            user_attrs=user,
            system_attrs=system,
        )
    )


def _requeue_callback(max_retry: int | None) -> StaleCallback:
    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        requeue(study, trial, max_retry)

    return callback


def replaced_numbers(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of the failed trials that a queued retry replaces (they do not count toward
    ``--n-trials`` nor in trial counts shown to the user)."""
    return {
        t.system_attrs["retry_history"][-1] for t in trials if t.system_attrs.get("retry_history")
    }


def fail_stale_trials(study: optuna.Study) -> None:
    """Fail the trials whose worker stopped beating, with ``stop_reason=failed`` and a
    ``reason``, and pass each to the storage's stale-trial callback (a retry by default).

    A RUNNING trial that never had a heartbeat (its worker died right after claiming it) is
    given one now, from the database's clock, so that it goes stale after the grace period
    like any other; a live worker beats for its own trial as soon as it has claimed it."""
    storage = compat.storage_of(study)
    for tid in compat.running_without_heartbeat(study):
        storage.record_heartbeat(tid)
    failed = []
    for tid in compat.stale_trial_ids(study):
        try:
            storage.set_trial_user_attr(tid, "stop_reason", "failed")
            storage.set_trial_user_attr(
                tid, "reason", "its worker stopped (no heartbeat within the grace period)"
            )
            if storage.set_trial_state_values(tid, state=TrialState.FAIL):
                failed.append(tid)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # finished meanwhile, or failed by another process
    callback = storage.get_heartbeat_stale_trial_callback()
    for tid in failed:
        logger.info("trial %d of %s failed: its worker stopped", storage.get_trial(tid).number,
                    study.study_name)
        if callback is not None:
            callback(study, storage.get_trial(tid))


class Heartbeat:
    """Record the heartbeat of the trials this process holds, every ``interval`` seconds.

    ``study.optimize`` does this itself; rnnopt drives trials with ask/tell (and the search
    claims queued trials itself), so it beats its own hearts. Use as a context manager::

        with Heartbeat(storage, interval, trial_id): ...   # one trial
        beat = Heartbeat(storage, interval); beat.hold(id); ...; beat.release(id); beat.close()
    """

    def __init__(self, storage: optuna.storages.RDBStorage, interval: float, *trial_ids: int):
        self._storage, self._interval = storage, interval
        self._held: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rnnopt-heartbeat")
        for tid in trial_ids:
            self.hold(tid)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                held = list(self._held)
            for tid in held:
                try:
                    self._storage.record_heartbeat(tid)
                except Exception as exc:  # a missed beat is retried; the grace period covers it
                    logger.warning("heartbeat for trial id %d failed: %s", tid, exc)

    def hold(self, trial_id: int) -> None:
        """Beat for ``trial_id`` from now on (the first beat at once)."""
        self._storage.record_heartbeat(trial_id)
        with self._lock:
            self._held.add(trial_id)

    def release(self, trial_id: int) -> None:
        with self._lock:
            self._held.discard(trial_id)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()

    def __enter__(self) -> Heartbeat:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
