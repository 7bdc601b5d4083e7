"""The SQL views on SQLite, PostgreSQL and MariaDB over hand-made trials with known values."""

from __future__ import annotations

import json
import math

import optuna
import pytest
import sqlalchemy as sa
from report_known_db import ARITH, PTB_LSTM, XML_GRU, XML_LSTM, XML_LSTM_B, fill

from rnnopt import db
from rnnopt._cli import run_cli
from rnnopt.errors import StorageError
from rnnopt.storage import normalize_url

pytestmark = pytest.mark.storage

# (task, cell) -> n_trials, n_complete, n_pruned, n_failed, n_diverged, best, median_top10, steps
EXPECTED = {
    ("xml", "lstm"): (15, 12, 2, 1, 1, 0.41, 0.405, 12 * 100 + 30 + 20 + 7),
    ("xml", "gru"): (3, 3, 0, 0, 0, 0.46, 0.46, 300),
    ("xml", "lstm-b"): (2, 2, 0, 0, 0, 0.45, 0.45, 200),
    ("ptb", "lstm"): (5, 5, 0, 0, 0, 95.0, 95.0, 1000),
    ("arith", "lstm"): (2, 2, 0, 0, 0, 0.7, 0.7, 200),
    ("arith", "gru"): (1, 1, 0, 0, 0, 0.8, 0.8, 100),
}


def _rows(url: str, query: str) -> list[dict]:
    engine = sa.create_engine(normalize_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text(query))]
    finally:
        engine.dispose()


def test_views_give_the_known_leaderboard_and_decoded_params(storage_url: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fill(storage_url)
    db.install_views(storage_url)
    db.install_views(storage_url)  # idempotent: a no-op the second time
    db.install_views(storage_url, force=True)  # and a real drop + create

    rows = _rows(storage_url, "SELECT * FROM rnnopt_leaderboard")
    board = {(r["task"], r["cell"]): r for r in rows}
    assert set(board) == set(EXPECTED)
    for key, (n, done, pruned, failed, diverged, best, top, steps) in EXPECTED.items():
        row = board[key]
        got = (row["n_trials"], row["n_complete"], row["n_pruned"], row["n_failed"],
               row["n_diverged"], row["steps"])
        assert tuple(int(x) for x in got) == (n, done, pruned, failed, diverged, steps), key
        assert float(row["best_value"]) == pytest.approx(best), key
        assert float(row["median_top10"]) == pytest.approx(top), key
        assert row["direction"] == ("minimize" if key[0] == "ptb" else "maximize")

    trials = _rows(storage_url, "SELECT * FROM rnnopt_trials ORDER BY trial_id")
    assert len(trials) == len(XML_LSTM) + 3 + len(XML_GRU) + len(XML_LSTM_B) + len(PTB_LSTM) + 3
    search = [t for t in trials if t["study_name"] == "arith/search"]
    # The search study's cell comes from the categorical `cell` parameter, decoded to its label.
    assert [t["cell"] for t in search] == [c for c, vs in ARITH.items() for _ in vs]
    assert [t["input_gate"] for t in search] == ["true", "false", "true"]
    params = [json.loads(t["params"]) for t in search]
    assert params[0] == {"cell": "lstm", "input_gate": True, "lr": 1.0}
    assert params[1]["input_gate"] is False

    first = trials[0]  # xml/lstm trial 0: clip_norm is a categorical over numbers
    assert json.loads(first["params"]) == {
        "lr": pytest.approx(0.1), "clip_norm": 1.0, "init_scale": pytest.approx(0.3),
        "layers": 1, "hidden_size": 8,
    }
    assert float(first["clip_norm"]) == 1.0 and int(first["layers"]) == 1
    assert (first["n_params"], first["steps"], first["device"]) == (1008, 100, "cpu")
    assert first["tokens_per_s"] == pytest.approx(1234.5)
    assert first["test_metric"] == pytest.approx(0.3 * 0.99)

    failed = next(t for t in trials if t["state"] == "FAIL")
    # NaN user attributes (not valid JSON) read as NULL instead of breaking the view.
    assert failed["value"] is None and failed["test_metric"] is None
    assert failed["tokens_per_s"] is None and failed["stop_reason"] == "diverged"

    long = _rows(storage_url, "SELECT * FROM rnnopt_trial_params WHERE param_name = 'cell'")
    assert sorted(r["param_value"] for r in long) == ["gru", "lstm", "lstm"]
    assert all(r["param_number"] is None for r in long)
    lr = _rows(storage_url, "SELECT param_number FROM rnnopt_trial_params WHERE param_name = 'lr'")
    assert all(math.isfinite(float(r["param_number"])) for r in lr)


def test_install_views_creates_optuna_schema_first(sqlite_url: str) -> None:
    db.install_views(sqlite_url)
    assert _rows(sqlite_url, "SELECT * FROM rnnopt_leaderboard") == []
    assert _rows(sqlite_url, "SELECT count(*) AS n FROM trials") == [{"n": 0}]
    db.drop_views(sqlite_url)
    with pytest.raises(sa.exc.OperationalError):
        _rows(sqlite_url, "SELECT * FROM rnnopt_trials")


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mysql"])
def test_every_dialect_defines_every_view(dialect: str) -> None:
    statements = db.view_statements(dialect)
    for view in db.VIEWS:
        assert any(s.startswith(f"CREATE VIEW {view} AS") for s in statements), view
        assert any(s.startswith(f"DROP VIEW IF EXISTS {view}") for s in statements), view


def test_bad_storage_urls_are_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(StorageError, match="bad storage URL"):
        db.install_views("rnnopt.db")
    with pytest.raises(StorageError, match="'oracle'"):
        db.dialect_of("oracle://x/y")
    assert normalize_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    code = run_cli(db.main, ["views", "--storage", "mysql://root@127.0.0.1:1/nowhere"])
    err = capsys.readouterr().err
    assert code == 2
    # The storage's own check, as for every command: one line naming the (masked) URL.
    assert err.startswith("error: cannot connect to mysql storage "
                          "'mysql+pymysql://root@127.0.0.1:1/nowhere'") and err.count("\n") == 1
