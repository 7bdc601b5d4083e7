"""Local worker processes (``--workers N``) for the study and the architecture search.

One pool: start N spawned processes, forward Ctrl-C/SIGTERM to them and wait for their clean-up,
collect their exit codes. One worker entry: the worker dies with the command that spawned it,
logs like it, and takes interrupts only between storage calls (rnnopt._cli).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["EXIT_WORKER_FAILED", "describe_failures", "run_pool", "worker_entry"]

logger = logging.getLogger(__name__)

# A worker died (killed, crashed): the command still reports what was done, then exits 1.
EXIT_WORKER_FAILED = 1
# How long the command waits, after forwarding Ctrl-C, for its workers to clean up.
CLEANUP_WAIT_S = 120


def worker_entry(
    target: Callable[..., Any], args: Sequence[Any], verbose: bool = False
) -> None:
    """Body of every worker process: ``target(*args)`` with the worker set up like the
    command (dies with its parent, logs, interrupts between storage calls only)."""
    from rnnopt._cli import die_with_parent, interrupt_between_storage_calls, setup_logging

    die_with_parent()
    setup_logging(verbose)
    interrupt_between_storage_calls()
    try:
        target(*args)
    except KeyboardInterrupt:
        sys.exit(130)


def run_pool(
    target: Callable[..., Any],
    args_per_worker: Sequence[Sequence[Any]],
    *,
    name: str = "rnnopt-worker",
    verbose: bool = False,
) -> list[int]:
    """Run ``target(*args)`` in one spawned process per entry of ``args_per_worker`` and wait
    for all; their exit codes. Ctrl-C or SIGTERM (a KeyboardInterrupt here) is passed on to the
    workers as SIGINT, so that each fails and re-queues its running trial; the command waits
    for that clean-up (killing what is left after ``CLEANUP_WAIT_S``) and re-raises."""
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=worker_entry, args=(target, tuple(args), verbose), name=f"{name}-{i}")
        for i, args in enumerate(args_per_worker)
    ]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        from rnnopt._cli import ignore_interrupts

        ignore_interrupts()
        for p in procs:
            if p.is_alive() and p.pid:
                os.kill(p.pid, signal.SIGINT)
        for p in procs:
            p.join(timeout=CLEANUP_WAIT_S)
            if p.is_alive():
                p.kill()
                p.join()
        raise
    return [int(p.exitcode or 0) for p in procs]


def describe_failures(codes: Sequence[int]) -> str | None:
    """One line naming the workers that failed (None when all exited 0)."""
    bad = [(i, c) for i, c in enumerate(codes) if c]
    if not bad:
        return None
    parts = [
        f"worker {i} " + (f"was killed by signal {-c}" if c < 0 else f"exited with code {c}")
        for i, c in bad
    ]
    return f"{len(bad)} of {len(codes)} workers failed ({', '.join(parts)})"
