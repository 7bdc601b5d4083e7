"""Ctrl-C never lands inside a storage call: the clean-up after it finds SQLite unlocked."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from rnnopt._cli import _UNINTERRUPTIBLE, ignore_interrupts, interrupt_between_storage_calls


@pytest.fixture
def handlers() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM)}
    interrupt_between_storage_calls()
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def _busy_python(seconds: float) -> int:
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        n += 1
    return n


CHILD = """
import json, sys, time, traceback
import optuna
from rnnopt import storage as st
from rnnopt._cli import _UNINTERRUPTIBLE, ignore_interrupts, interrupt_between_storage_calls

interrupt_between_storage_calls()
storage = st.open_storage(sys.argv[1])
study = optuna.create_study(storage=storage, study_name=sys.argv[2])
trial_id = study.ask()._trial_id
print("ready", flush=True)
n = 0
try:
    while True:
        storage.set_trial_user_attr(trial_id, f"k{n % 7}", n)
        n += 1
        end = time.monotonic() + 0.002
        while time.monotonic() < end:
            pass
except KeyboardInterrupt as exc:
    ignore_interrupts()
    frames = [f.f_globals.get("__name__", "") for f, _ in traceback.walk_tb(exc.__traceback__)]
    storage.set_trial_user_attr(trial_id, "cleanup", n)  # what the study's clean-up does
    print(json.dumps({"n": n, "frames": frames}), flush=True)
"""


def test_ctrl_c_in_a_storage_loop_lands_between_writes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    rng = random.Random(0)
    for round_ in range(6):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, url, f"s{round_}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.2 + rng.random() * 0.2)
        child.send_signal(signal.SIGINT)
        # Without the deferral the clean-up write waits on a lock left by the cut-short
        # write, for SQLite's whole 60 s busy timeout.
        out, err = child.communicate(timeout=30)
        assert child.returncode == 0, err[-2000:]
        report = json.loads(out)
        assert report["n"] > 0
        assert not any(m.startswith(_UNINTERRUPTIBLE) for m in report["frames"]), report
        study = optuna.load_study(study_name=f"s{round_}", storage=url)
        assert study.trials[0].user_attrs["cleanup"] == report["n"]


def test_an_interrupt_inside_a_storage_call_is_delivered_after_it(handlers: None) -> None:
    # Code that runs with a storage package's globals, as Optuna's and SQLAlchemy's does.
    namespace: dict = {"__name__": "sqlalchemy.engine.fake", "signal": signal}
    exec(
        "def call(busy, main):\n"
        "    signal.pthread_kill(main, signal.SIGINT)\n"
        "    busy(0.3)\n"
        "    return 'returned'\n",
        namespace,
    )
    main = threading.main_thread().ident
    result = None
    with pytest.raises(KeyboardInterrupt):
        result = namespace["call"](_busy_python, main)
        _busy_python(2.0)
    assert result == "returned"


def test_ignore_interrupts_drops_a_pending_one(handlers: None) -> None:
    signal.setitimer(signal.ITIMER_REAL, 0.05)  # a deferred interrupt about to be retried
    ignore_interrupts()
    _busy_python(0.2)
