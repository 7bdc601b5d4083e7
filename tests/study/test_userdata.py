"""Studies on the user's own files: --data and --task-option, bad data refused before anything
is stored, the data identity that refuses a resume on other data, and the whole path from a
text file or a CSV to the report, the SQL views and the dashboard note on SQLite and
PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa
from study_helpers import cli_env, run, tiny_study, trials
from user_data import write_corpus, write_sensors

from rnnopt import dashboard, userdata
from rnnopt._cli import run_cli
from rnnopt.errors import ConfigError, StorageError
from rnnopt.study import main


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNOPT_CACHE", str(tmp_path / "cache"))


def test_flags_give_each_task_its_options() -> None:
    opts = userdata.task_options(
        ["text=a.txt", "series=b.csv"], ["text.level=word", "series.target=temp", "unk="],
        ["text", "series"],
    )
    assert opts == {"text": {"data": "a.txt", "level": "word", "unk": ""},
                    "series": {"data": "b.csv", "target": "temp", "unk": ""}}
    assert userdata.task_options(["my=odd.txt"], ["max_vocab=50"], ["text"]) == {
        "text": {"data": "my=odd.txt", "max_vocab": 50}}
    with pytest.raises(ConfigError, match=r"several tasks .* --data TASK=FILE"):
        userdata.task_options(["a.txt"], [], ["text", "series"])
    with pytest.raises(ConfigError, match="task 'ptb' is not among the tasks"):
        userdata.task_options([], ["ptb.level=word"], ["text"])


def _bad_files(root: Path) -> dict[str, tuple[list[str], str]]:
    """Case -> (study arguments, what the one-line error must say)."""
    good_csv = "t,v\n" + "".join(f"{i},{math.sin(i / 3):.3f}\n" for i in range(200))
    files = {
        "empty.txt": b"",
        "few.txt": b"one\ntwo\n",
        "latin1.txt": b"fine\n" * 3 + b"na\xefve\n" + b"fine\n" * 20,
        "ragged.csv": (good_csv + "5,6,7\n").encode(),
        "nan.csv": ("t,v\n" + "".join(f"{i},{'nan' if i == 7 else i}\n" for i in range(200))
                    ).encode(),
        "inf.csv": (good_csv + "200,-inf\n").encode(),
        "short.csv": ("t,v\n" + "".join(f"{i},{i}\n" for i in range(60))).encode(),
        "oneclass.csv": ("id,v,k\n" + "".join(f"{i // 10},{i},x\n" for i in range(200))).encode(),
        "words.txt": b"a b c d e f\n" * 20,
        "good.csv": good_csv.encode(),
    }
    for name, content in files.items():
        (root / name).write_bytes(content)
    return {
        "missing": (["--task", "text", "--data", "nope.txt"], "nope.txt (option data) not found"),
        "empty": (["--task", "text", "--data", "empty.txt"], "empty.txt (option data) is empty"),
        "empty-split": (["--task", "text", "--data", "few.txt"], "the valid split is empty"),
        "not-utf8": (["--task", "text", "--data", "latin1.txt"],
                     "latin1.txt: line 4, column 3: not UTF-8"),
        "ragged": (["--task", "series", "--data", "ragged.csv"],
                   "ragged.csv: line 202 has 3 fields"),
        "nan": (["--task", "series", "--data", "nan.csv"], "nan.csv: line 9, column v: nan"),
        "inf": (["--task", "series", "--data", "inf.csv"], "inf.csv: line 202, column v: -inf"),
        "shorter-than-unroll": (["--task", "series", "--data", "short.csv"],
                                "6 steps in the valid split, fewer than unroll + 1 = 21"),
        "unknown-target": (["--task", "series", "--data", "good.csv", "--task-option",
                            "target=temp"], "unknown target column 'temp'"),
        "one-class": (["--task", "series", "--data", "oneclass.csv", "--task-option",
                       "series=id", "--task-option", "label=k"], "label 'k' has one class"),
        "vocab-over-cap": (["--task", "text", "--data", "words.txt", "--task-option",
                            "level=word", "--task-option", "max_vocab=4", "--task-option",
                            "unk="], "over max_vocab=4"),
    }


CASES = ["missing", "empty", "empty-split", "not-utf8", "ragged", "nan", "inf",
         "shorter-than-unroll", "unknown-target", "one-class", "vocab-over-cap"]


@pytest.mark.parametrize("case", CASES)
def test_bad_data_exits_2_with_one_line_and_stores_nothing(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    args, needle = _bad_files(tmp_path)[case]
    code = run_cli(main, ["--study-file", str(tiny_study(tmp_path)), "--cells", "lstm",
                          "--workers", "1", *args])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and needle in err, err
    assert "Traceback" not in out + err
    assert not (tmp_path / "rnnopt.db").exists()
    assert not (tmp_path / "rnnopt-artifacts").exists()


def test_resuming_on_other_data_is_refused_but_moved_files_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path / "corpus.txt")
    url = f"sqlite:///{tmp_path / 'rnnopt.db'}"
    base = ["--study-file", str(tiny_study(tmp_path, max_steps=4, n_trials=1, eval_interval=2)),
            "--cells", "gru", "--workers", "1", "--storage", url, "--task", "text"]
    assert run_cli(main, [*base, "--data", "corpus.txt"]) == 0
    stored = optuna.load_study(study_name="text/gru", storage=url).user_attrs
    identity = stored[userdata.DATA_ATTR]
    assert identity["options"]["level"] == "char" and len(identity["files"]["train"]) == 64
    capsys.readouterr()

    (tmp_path / "corpus.txt").write_text((tmp_path / "corpus.txt").read_text() + "new line\n")
    assert run_cli(main, [*base, "--data", "corpus.txt"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "study 'text/gru' was run on other data (changed: train file)" in err
    assert run_cli(main, [*base, "--data", "corpus.txt", "--task-option", "level=word"]) == 2
    assert "changed: train file, option level" in capsys.readouterr().err
    assert len(trials(url, "text/gru")) == 1
    assert optuna.load_study(study_name="text/gru", storage=url).user_attrs == stored

    write_corpus(tmp_path / "moved.txt")  # the original content under another name
    assert run_cli(main, [*base, "--data", "moved.txt"]) == 0
    assert len(trials(url, "text/gru")) == 1  # nothing left to do, and nothing refused


def _module(name: str, *args: str, cwd: Path) -> None:
    import subprocess

    done = subprocess.run([sys.executable, "-m", name, *args], cwd=cwd, env=cli_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_text_and_series_from_files_to_report_and_views(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "postgres_url")
    write_corpus(tmp_path / "corpus.txt")
    write_sensors(tmp_path / "sensors.csv")
    study = str(tiny_study(tmp_path, max_steps=20, n_trials=1, eval_interval=10))
    common = ["--study-file", study, "--cells", "lstm,gru", "--workers", "1"]
    both = ["--task", "text,series", "--data", "text=corpus.txt", "--data",
            "series=sensors.csv", "--task-option", "series.series=sensor", "--task-option",
            "series.target=temp"]
    done = run([*common, "--storage", url, *both], tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # Word level in a database of its own: the report and the views group by task and cell.
    words = f"sqlite:///{tmp_path / 'words.db'}"
    done = run([*common, "--storage", words, "--task", "text", "--data", "corpus.txt",
                "--task-option", "level=word"], tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for storage, name, metric in [(url, "text/lstm", "bpc"), (url, "text/gru", "bpc"),
                                  (url, "series/lstm", "mse"), (url, "series/gru", "mse"),
                                  (words, "text/gru", "perplexity")]:
        s = optuna.load_study(study_name=name, storage=storage)
        (t,) = s.get_trials()
        assert t.state == optuna.trial.TrialState.COMPLETE and math.isfinite(t.value)
        assert s.user_attrs["rnnopt.metric"] == metric
        assert s.user_attrs[userdata.DATA_ATTR]["files"]["train"]
        assert "## Data" in dashboard.note_markdown(name, s.user_attrs)

    _module("rnnopt.db", "views", "--storage", url, cwd=tmp_path)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        board = {(r.task, r.cell, r.metric) for r in conn.execute(
            sa.text("SELECT task, cell, metric FROM rnnopt_leaderboard"))}
    engine.dispose()
    assert board == {("text", "lstm", "bpc"), ("text", "gru", "bpc"),
                     ("series", "lstm", "mse"), ("series", "gru", "mse")}

    _module("rnnopt.report", "--storage", url, "--out", "rep", "--format", "md", "--no-plots",
            cwd=tmp_path)
    text = (tmp_path / "rep" / "report.md").read_text()
    sha = {n: hashlib.sha256((tmp_path / n).read_bytes()).hexdigest()[:8]
           for n in ("corpus.txt", "sensors.csv")}
    assert f"| series (sensors.csv, {sha['sensors.csv']}, series=sensor, target=temp) | gru " \
        "| minimize | mse |" in text
    assert f"| text (corpus.txt, {sha['corpus.txt']}) | lstm | minimize | bpc |" in text
    table = text.split("## Leaderboard")[0]
    for paper_task in ("arith", "xml", "ptb", "PTB", "XML"):  # no paper column for them
        assert paper_task not in table


def test_identity_check_reads_string_and_value_attributes() -> None:
    current = json.dumps({"files": {"train": "ab"}, "options": {"level": "char"}})
    for stored in (json.loads(current), current, None):
        userdata.check_resume("text/gru", stored, current, "hint")
    with pytest.raises(StorageError, match=r"changed: train file, option level\); .* hint"):
        userdata.check_resume("text/gru", {"files": {"train": "cd"},
                                           "options": {"level": "word"}}, current, "hint")


@pytest.mark.slow
def test_search_mode_on_series_classification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_sensors(tmp_path / "s.csv", series=20, steps=30)
    url = f"sqlite:///{tmp_path / 'rnnopt.db'}"
    code = run_cli(main, [
        "--study-file", str(tiny_study(tmp_path, max_steps=4, n_trials=2, eval_interval=2)),
        "--mode", "search", "--cells", "lstm,gru", "--workers", "1", "--storage", url,
        "--task", "series", "--data", "s.csv", "--task-option", "series=sensor",
        "--task-option", "label=kind", "--sampler", "random",
    ])
    assert code == 0
    s = optuna.load_study(study_name="series/search", storage=url)
    assert s.direction == optuna.study.StudyDirection.MAXIMIZE
    assert s.user_attrs["rnnopt.metric"] == "accuracy"
    done = [t for t in s.get_trials() if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 2 and {t.params["cell"] for t in done} <= {"lstm", "gru"}
    assert all(0.0 <= t.value <= 1.0 for t in done)
    assert s.user_attrs[userdata.DATA_ATTR]["options"]["label"] == "kind"


def test_study_file_options_and_command_line_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rnnopt.hpo.plan import make_plan
    from rnnopt.study import build_parser

    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path / "corpus.txt")
    write_sensors(tmp_path / "s.csv")
    study = tiny_study(tmp_path, extra="", name="base.toml").read_text()
    (tmp_path / "mine.toml").write_text(
        study.replace("[study]", '[study]\ntasks = ["text", "series"]\ncells = ["gru"]')
        + '\n[train.text]\ntask_options = { data = "corpus.txt", level = "word" }\n'
        + '[train.series]\ntask_options = { data = "s.csv", series = "sensor" }\n'
    )
    plan = make_plan(build_parser().parse_args(
        ["--study-file", "mine.toml", "--task-option", "series.target=humid",
         "--storage", f"sqlite:///{tmp_path / 'r.db'}"]))
    by_task = {sd.task: sd for sd in plan.studies}
    assert by_task["text"].base["task_options"] == {"data": "corpus.txt", "level": "word"}
    assert by_task["series"].base["task_options"] == {
        "data": "s.csv", "series": "sensor", "target": "humid"}
    assert json.loads(by_task["series"].data)["options"]["target"] == "humid"
    assert by_task["text"].metric == "perplexity"
    assert not (tmp_path / "r.db").exists()
