"""Shared command-line plumbing: RnnoptError -> one line on stderr, exit code 2."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType

from rnnopt.errors import RnnoptError
from rnnopt.plugins import add_option as add_plugin_option  # noqa: F401  (one home)

EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell shows for a C tool cut off by `| head`


def run_cli(
    main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None
) -> int:
    """Run ``main(argv)``; turn user errors and Ctrl-C into a one-line message and an exit code,
    and a closed output pipe into a quiet exit."""
    try:
        code = main(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (`| head`) has gone: stop quietly, and point stdout at /dev/null so that
        # the interpreter's own flush at exit does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except RnnoptError as exc:
        from rnnopt.storage.urls import scrub

        print(f"error: {scrub(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(verbose: bool = False) -> None:
    """One log format for rnnopt, Optuna and every worker process: INFO, and rnnopt's own
    DEBUG detail (per-evaluation lines of each trial) with ``verbose``."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, datefmt="%H:%M:%S")
    logging.getLogger("rnnopt").setLevel(logging.DEBUG if verbose else logging.INFO)
    # Each trial's start and end lines are detail beside a run's progress display.
    logging.getLogger("rnnopt.train").setLevel(logging.DEBUG if verbose else logging.WARNING)
    import optuna

    # Optuna's own "[I 2026-...]" handler off; its records go through the root handler.
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()


def die_with_parent() -> None:
    """Linux: this worker is killed when the command that spawned it dies (even by SIGKILL),
    so killing the command stops its workers and their trials go stale, as for one process."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def cpus() -> int:
    """CPU cores this process may run on (the affinity mask, where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# Modules whose code must not be cut short: a KeyboardInterrupt raised inside a database call
# can leave a connection holding a write lock (SQLite) that the clean-up then waits on forever.
_UNINTERRUPTIBLE = (
    "sqlalchemy", "optuna", "sqlite3", "psycopg", "pymysql", "MySQLdb", "rnnopt.storage"
)
_RETRY_S = 0.05


def _in_storage_call(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith(_UNINTERRUPTIBLE):
            return True
        frame = frame.f_back
    return False


def _interrupt(signum: int, frame: FrameType | None) -> None:
    if _in_storage_call(frame):
        signal.setitimer(signal.ITIMER_REAL, _RETRY_S)  # try again once the call has returned
        return
    raise KeyboardInterrupt


def interrupt_between_storage_calls() -> None:
    """Ctrl-C (SIGINT) and SIGTERM raise KeyboardInterrupt in the main thread, but never
    inside Optuna, SQLAlchemy or a database driver: there the interrupt is retried every
    50 ms until the call has returned, so the clean-up that follows finds the database
    unlocked and consistent."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):
        signal.signal(signum, _interrupt)


def ignore_interrupts() -> None:
    """For a clean-up that must finish: drop further and pending interrupts."""
    signal.setitimer(signal.ITIMER_REAL, 0)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):
        signal.signal(signum, signal.SIG_IGN)
