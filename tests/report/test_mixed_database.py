"""An architecture-search run and compare/search studies in one database: the report, the SQL
views and the dashboard notes read the compare/search studies only, by mode; a search run
stored before evolve had its own attribute key reads the same."""

from __future__ import annotations

import json

import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import TrialState, create_trial
from report_known_db import fill

from rnnopt import dashboard, db, report, schema
from rnnopt.storage import normalize_url


def _evolve_study(url: str, name: str, old: bool) -> None:
    """An architecture-search study as evolve writes it (``old``: as it did before
    ``rnnopt.evolve.tasks``, with ``rnnopt.task`` holding the task list)."""
    study = optuna.create_study(storage=url, study_name=name, direction="maximize")
    study.set_user_attr(schema.EVOLVE, json.dumps({"tasks": ["memorize", "arith", "xml"]}))
    study.set_user_attr(schema.MODE, schema.EVOLVE_MODE)
    study.set_user_attr(schema.TASK if old else schema.EVOLVE_TASKS, "memorize,arith,xml")
    study.set_user_attr(schema.METRIC, "accuracy")
    study.set_user_attr(schema.DIRECTION, "maximize")
    study.add_trial(create_trial(value=1.7, state=TrialState.COMPLETE,
                                 user_attrs={"genome": "x", "cell": "gru", "task": "arith",
                                             "setting": 0}))


def _mixed(url: str) -> str:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fill(url)
    _evolve_study(url, "evolve/old/genomes", old=True)
    _evolve_study(url, "evolve/old/evaluations", old=True)
    _evolve_study(url, "evolve/new/genomes", old=False)
    return url


@pytest.fixture
def mixed(storage_url: str) -> str:
    return _mixed(storage_url)


def test_report_views_and_notes_skip_search_runs(mixed: str) -> None:
    groups = report.load_groups(mixed)
    assert {task for task, _ in groups} == {"xml", "ptb", "arith"}
    assert all(1.7 not in [t.value for t in g.trials] for g in groups.values())

    db.install_views(mixed)
    engine = sa.create_engine(normalize_url(mixed), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            names = {r[0] for r in conn.execute(sa.text("SELECT study_name FROM rnnopt_studies"))}
            boards = {r[0] for r in conn.execute(sa.text("SELECT task FROM rnnopt_leaderboard"))}
    finally:
        engine.dispose()
    assert names == {"xml/lstm", "xml/gru", "xml/lstm-b", "ptb/lstm", "arith/search"}
    assert "memorize,arith,xml" not in boards

    assert dashboard.write_notes(mixed) == 5
    from optuna_dashboard import get_note

    for name in ("evolve/old/genomes", "evolve/new/genomes"):
        assert not get_note(optuna.load_study(study_name=name, storage=mixed))


def test_evolve_report_reads_old_and_new_task_keys(sqlite_url: str) -> None:
    from rnnopt.evolve.report import scores

    mixed = _mixed(sqlite_url)
    optuna.create_study(storage=mixed, study_name="evolve/new/evaluations",
                        direction="maximize")
    assert scores(mixed, "old")[0] == ["memorize", "arith", "xml"]
    assert scores(mixed, "new")[0] == ["memorize", "arith", "xml"]
