"""A storage password appears nowhere: every command runs against a real PostgreSQL role with a
password, and its stdout, stderr, every file it wrote and every row of the database are searched
for the password."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[2]
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

pytestmark = [pytest.mark.slow, pytest.mark.storage]

TINY_STUDY = """
[study]
max_steps = 4
n_trials = 1

[train]
batch_size = 4
unroll = 10
eval_interval = 2
eval_batches = 1

[space]
hidden_size = 8
layers = 1
"""
EVOLVE_TINY = [
    "--tasks", "memorize", "--settings", "1", "--max-steps", "3", "--hidden", "4",
    "--eval-batches", "1", "--batch-size", "2", "--unroll", "8", "--references", "none",
    "--seeds", "gru", "--generations", "0", "--heartbeat", "1", "--run", "pw",
]


@pytest.fixture
def role() -> Iterator[tuple[str, str, str]]:
    """(role, password, database): a PostgreSQL login role with a password that owns a fresh
    database; the password holds an unencoded ``@`` and other URL-special characters."""
    tag = uuid.uuid4().hex[:10]
    name, password, db = f"rnnopt_pw_{tag}", f"Pw@{tag}:x/y?z", f"rnnopt_pw_{tag}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'"))
        conn.execute(sa.text(f"CREATE DATABASE {db} OWNER {name}"))
    try:
        yield name, password, db
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            conn.execute(sa.text(f"DROP ROLE IF EXISTS {name}"))
        admin.dispose()


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    env.pop("PGPASSWORD", None)
    return {**env, **(extra or {})}


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, env=env or _env(), capture_output=True,
        text=True, timeout=600,
    )
    return done.returncode, done.stdout + "\n" + done.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _files_text(root: Path) -> Iterator[tuple[Path, bytes]]:
    for path in root.rglob("*"):
        if path.is_file():
            yield path, path.read_bytes()


def _database_text(url: str) -> str:
    """Every row of every table and view of the database, as text."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    out = []
    try:
        inspector = sa.inspect(engine)
        with engine.connect() as conn:
            for table in [*inspector.get_table_names(), *inspector.get_view_names()]:
                for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                    out.append(" ".join(map(str, row)))
    finally:
        engine.dispose()
    return "\n".join(out)


def _forms(password: str) -> list[str]:
    """The password and its encodings, and its tail after the '@' (a mask that split at the
    first '@' would leak that)."""
    return [password, quote(password, safe=""), password.split("@", 1)[1]]


def _assert_clean(text: str | bytes, password: str, where: str) -> None:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    for form in _forms(password):
        assert form not in text, f"password ({form!r}) in {where}"


@pytest.mark.parametrize("form", ["userinfo", "query", "env"])
def test_every_command_keeps_the_password_out(
    role: tuple[str, str, str], form: str, tmp_path: Path
) -> None:
    name, password, db = role
    plain = f"postgresql://{name}@127.0.0.1:5432/{db}"
    if form == "query":
        url = f"{plain}?password={quote(password, safe='')}"
    else:  # the password as typed, its '@' unencoded
        url = f"postgresql://{name}:{password}@127.0.0.1:5432/{db}"
    env = _env({"RNNOPT_TEST_URL": url}) if form == "env" else _env()
    where = ["--storage-env", "RNNOPT_TEST_URL"] if form == "env" else ["--storage", url]
    work = tmp_path / "work"
    work.mkdir()
    (work / "tiny.toml").write_text(TINY_STUDY)
    outputs: list[tuple[str, str]] = []

    def run(label: str, args: list[str], ok: bool = True) -> str:
        code, text = _run(args, work, env)
        outputs.append((label, text))
        if ok:
            assert code == 0, f"{label} failed:\n{text[-3000:]}"
        return text

    run("study", ["rnnopt.study", "--task", "arith", "--cells", "gru", "--study-file",
                  "tiny.toml", "--workers", "1", "--device", "cpu", *where])
    run("report md", ["rnnopt.report", *where, "--out", "rep", "--format", "md",
                      "--min-trials", "2"])
    run("report html", ["rnnopt.report", *where, "--out", "rep-html", "--no-plots"])
    run("views", ["rnnopt.db", "views", *where])
    run("evolve", ["rnnopt.evolve", *EVOLVE_TINY, "--device", "cpu", *where])
    run("evolve report", ["rnnopt.evolve", "report", *where, "--run", "pw"])
    # Errors name the storage too (the servers here trust local logins, so a wrong password
    # would connect: a database that does not exist makes the error).
    missing = url.replace(f"/{db}", f"/{db}_missing")
    for label, bad in (("missing db", missing),):
        bad_env = {**env, "RNNOPT_TEST_URL": bad}
        bad_where = ["--storage-env", "RNNOPT_TEST_URL"] if form == "env" else ["--storage", bad]
        for args in (["rnnopt.report", *bad_where], ["rnnopt.db", "views", *bad_where],
                     ["rnnopt.dashboard", *bad_where, "--no-notes"],
                     ["rnnopt.evolve", "report", *bad_where],
                     ["rnnopt.study", "--task", "arith", "--cells", "gru", "--study-file",
                      "tiny.toml", *bad_where]):
            code, text = _run(args, work, bad_env)
            outputs.append((f"{label}: {args[0]}", text))
            assert code == 2 and "error:" in text, text[-2000:]
    # The dashboard: started (it writes notes), then stopped.
    proc = subprocess.Popen(
        [sys.executable, "-m", "rnnopt.dashboard", *where, "--port", str(_free_port())],
        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.monotonic() + 120
    seen = ""
    assert proc.stdout is not None
    while time.monotonic() < deadline and "optuna-dashboard on" not in seen:
        line = proc.stdout.readline()
        if not line:
            break
        seen += line
    proc.send_signal(signal.SIGINT)
    try:
        rest, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        rest, _ = proc.communicate()
    outputs.append(("dashboard", seen + rest))
    assert "optuna-dashboard on" in seen, seen

    for label, text in outputs:
        _assert_clean(text, password, label)
    files = list(_files_text(tmp_path))
    assert any(p.name == "report.md" for p, _ in files)
    assert any(p.name == "index.html" for p, _ in files)
    for path, data in files:
        _assert_clean(data, password, str(path))
    admin_view = f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
    dump = _database_text(admin_view)
    assert "rnnopt.command" in dump and "evolve/pw/genomes" in dump
    _assert_clean(dump, password, "the database")
