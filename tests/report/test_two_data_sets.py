"""Two data sets of one task in one database stay apart: the report names each by its data
(``text (a.txt, <sha256 of a.txt>)``) and the leaderboard view groups by the data identity, on
SQLite, PostgreSQL and MariaDB; a table without paper values does not promise them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa
from user_data import write_corpus

from rnnopt import dashboard, report, userdata
from rnnopt._cli import run_cli
from rnnopt.report.__main__ import main as report_main
from rnnopt.report.render import fmt
from rnnopt.storage.views import install_views
from rnnopt.study import main as study_main

TINY = """
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


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNOPT_CACHE", str(tmp_path / "cache"))


def test_the_label_names_the_file_its_hash_and_options_off_their_defaults() -> None:
    ident = {"files": {"train": "3fa2b1c9" + "0" * 56},
             "options": {"level": "word", "max_vocab": 0, "min_count": 1, "unk": "<unk>"}}
    train = {"task_options": {"data": "some/dir/corpus.txt", "level": "word"}}
    assert userdata.data_label("text", ident, train) == "text (corpus.txt, 3fa2b1c9, level=word)"
    split = {"files": {"train": "a" * 64, "valid": "b" * 64, "test": "c" * 64}, "options": {}}
    assert userdata.data_label("text", split) == (
        "text (aaaaaaaa, valid bbbbbbbb, test cccccccc)"
    )
    assert userdata.data_label("xml", None, {"task_options": {}}) == "xml"
    note = dashboard.note_markdown("text/gru", {"rnnopt.task": "text", "rnnopt.data": ident,
                                                "rnnopt.train": train})
    assert "`text (corpus.txt, 3fa2b1c9, level=word)` in the report" in note


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mysql"])
def test_two_corpora_of_one_task_are_two_rows(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    url = request.getfixturevalue({"postgresql": "postgres_url"}.get(backend, f"{backend}_url"))
    monkeypatch.chdir(tmp_path)
    study = tmp_path / "tiny.toml"
    study.write_text(TINY)
    digests = {}
    for name, seed in (("a.txt", 0), ("b.txt", 1)):
        write_corpus(tmp_path / name, lines=200, seed=seed)
        digests[name] = hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()[:8]
        code = run_cli(study_main, [
            "--study-file", str(study), "--cells", "gru", "--workers", "1", "--storage", url,
            "--task", "text", "--data", name, "--study-name", f"{name}/",
        ])  # fmt: skip
        assert code == 0
    values = {
        name: optuna.load_study(study_name=f"{name}/text/gru", storage=url).best_value
        for name in digests
    }
    labels = {name: f"text ({name}, {digests[name]})" for name in digests}

    out = tmp_path / "rep"
    assert run_cli(report_main, ["--storage", url, "--out", str(out), "--format", "md",
                                 "--no-plots"]) == 0  # fmt: skip
    text = (out / "report.md").read_text()
    for label in labels.values():
        assert f"| {label} | gru | minimize | bpc | 1 | 1 |" in text
    table1 = f"| cell | {labels['a.txt']} | {labels['b.txt']} |"
    assert table1 in text
    assert f"| gru | {fmt(values['a.txt'])} | {fmt(values['b.txt'])} |" in text
    assert "| text | gru |" not in text  # never pooled under the bare task name
    heading = next(line for line in text.splitlines() if "Table 1" in line)
    assert "paper" not in heading
    # --task selects a task by its own name, every data set of it
    groups = report.load_groups(url, ["text"])
    assert sorted(groups) == sorted((label, "gru") for label in labels.values())

    install_views(url)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT task, data, cell, n_trials, best_value FROM rnnopt_leaderboard"
            )).all()  # fmt: skip
            per_trial = conn.execute(sa.text(
                "SELECT DISTINCT study_name, data FROM rnnopt_trials"
            )).all()  # fmt: skip
    finally:
        engine.dispose()
    assert len(rows) == 2 and all(r.task == "text" and int(r.n_trials) == 1 for r in rows)
    assert len({r.data for r in rows}) == 2
    by_file = {name: next(r for r in rows if digests[name] in r.data) for name in digests}
    for name, row in by_file.items():
        assert float(row.best_value) == pytest.approx(values[name])
    assert {s.split("/")[0] for s, _ in per_trial} == set(digests)
