"""Confirmation trials in the SQL views: listed in rnnopt_trials, kept out of the leaderboard."""

from __future__ import annotations

import optuna
import pytest
import sqlalchemy as sa
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial

from rnnopt import db
from rnnopt.storage import normalize_url

pytestmark = pytest.mark.storage


def test_leaderboard_reads_the_search_and_trials_show_confirm_of(storage_url: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="xml/gru", storage=storage_url, direction="maximize")
    for key, value in {"rnnopt.task": "xml", "rnnopt.cell": "gru", "rnnopt.mode": "compare",
                       "rnnopt.metric": "accuracy", "rnnopt.direction": "maximize"}.items():
        study.set_user_attr(key, value)  # fmt: skip
    dist = {"lr": FloatDistribution(0.001, 1.0)}
    study.add_trial(create_trial(value=0.40, params={"lr": 0.1}, distributions=dist,
                                 user_attrs={"steps": 100}))  # fmt: skip
    for seed, value in ((1_000_000, 0.55), (1_000_001, 0.35)):  # a lucky and an unlucky seed
        study.add_trial(create_trial(
            value=value, params={"lr": 0.1}, distributions=dist,
            user_attrs={"steps": 100, "confirm_of": 0, "confirm_seed": seed},
        ))  # fmt: skip
    db.install_views(storage_url)
    engine = sa.create_engine(normalize_url(storage_url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            board = [dict(r._mapping) for r in conn.execute(sa.text(
                "SELECT * FROM rnnopt_leaderboard"))]  # fmt: skip
            trials = [dict(r._mapping) for r in conn.execute(sa.text(
                "SELECT trial_number, confirm_of FROM rnnopt_trials ORDER BY trial_number"))]
    finally:
        engine.dispose()
    (row,) = board
    assert int(row["n_trials"]) == 1 and float(row["best_value"]) == pytest.approx(0.40)
    assert float(row["median_top10"]) == pytest.approx(0.40) and int(row["steps"]) == 100
    assert [(t["trial_number"], t["confirm_of"]) for t in trials] == [(0, None), (1, 0), (2, 0)]
