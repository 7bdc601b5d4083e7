"""One way in: `rnnopt COMMAND` and the commands that read a database default to the study's."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from report_known_db import fill

from rnnopt.__main__ import COMMANDS, main


def test_usage_and_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    out = capsys.readouterr().out
    for name in ("study", "report", "dashboard", "db", "tasks", "evolve"):
        assert f"  {name} " in out
    assert main(["train"]) == 2
    assert capsys.readouterr().err == (
        f"error: unknown command 'train'; allowed: {', '.join(COMMANDS)}\n"
    )


def test_each_command_answers_help(capsys: pytest.CaptureFixture[str]) -> None:
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0, name
        assert "usage:" in capsys.readouterr().out


def test_report_and_views_default_to_the_study_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    # Nothing there yet: one line naming the default file, and nothing is created.
    assert main(["report", "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: no SQLite database at {tmp_path / 'rnnopt.db'}")
    assert main(["db", "views"]) == 2
    assert main(["dashboard"]) == 2
    assert capsys.readouterr().err.count("error: no SQLite database at ") == 2
    assert not (tmp_path / "rnnopt.db").exists()

    fill("sqlite:///rnnopt.db")  # what `rnnopt study` writes by default
    assert main(["report", "--format", "md", "--no-plots", "--out", "r"]) == 0
    out = capsys.readouterr().out
    assert "| cell | Arith | XML | PTB |\n|---|---|---|---|\n| lstm | 0.7 (paper 0.892) |" in out
    assert (tmp_path / "r" / "report.md").is_file()
    assert main(["db", "views"]) == 0
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'rnnopt.db'}")
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM rnnopt_leaderboard")).scalar()
    engine.dispose()
    assert n == 6
