"""Data files that break the reader in unusual ways still give one line naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnopt._cli import run_cli
from rnnopt.tasks.__main__ import main


def test_deeply_nested_music_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RNNOPT_CACHE", str(tmp_path / "cache"))
    (tmp_path / "music").mkdir()
    path = tmp_path / "music" / "jsb_chorales.json"
    path.write_text('{"train": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert run_cli(main, ["info", "--task", "jsb", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err[-500:]
    assert str(path) in err and "nested too deeply" in err and "allowed" in err
