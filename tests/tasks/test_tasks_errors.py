"""Bad input: missing data, corrupt files; every one an rnnopt error naming file and position."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rnnopt import tasks
from rnnopt.errors import DataError

GOOD_PTB = " the cat sat\n on the mat\n the end\n"


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNOPT_CACHE", str(tmp_path / "cache"))


def ptb_dir(root: Path, train: bytes) -> Path:
    (root / "ptb").mkdir(parents=True)
    (root / "ptb" / "ptb.train.txt").write_bytes(train)
    (root / "ptb" / "ptb.valid.txt").write_text(" the cat\n")
    (root / "ptb" / "ptb.test.txt").write_text(" the mat\n")
    return root


def music_dir(root: Path, content: str, name: str = "jsb_chorales.json") -> Path:
    (root / "music").mkdir(parents=True)
    (root / "music" / name).write_text(content)
    return root


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("name", ["ptb", "jsb", "nottingham", "piano-midi", "musedata"])
def test_missing_data_directory(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                ) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError) as exc:
        tasks.get(name, data_dir=missing)
    message = one_line(exc)
    assert str(missing) in message and "--data-dir" in message and "RNNOPT_DATA" in message
    monkeypatch.setenv("RNNOPT_DATA", str(missing))
    with pytest.raises(DataError, match="from RNNOPT_DATA"):
        tasks.get(name)


def test_missing_file(tmp_path: Path, data_dir: Path) -> None:
    shutil.copytree(data_dir / "ptb", tmp_path / "ptb")
    (tmp_path / "ptb" / "ptb.test.txt").unlink()
    with pytest.raises(DataError) as exc:
        tasks.get("ptb", data_dir=tmp_path)
    message = one_line(exc)
    assert str(tmp_path / "ptb" / "ptb.test.txt") in message and "RNNOPT_DATA" in message
    with pytest.raises(DataError, match=r"music/musedata\.json"):
        tasks.get("musedata", data_dir=tmp_path)


@pytest.mark.parametrize(
    ("content", "where"),
    [
        (b" good line\n bad \xff\xfe bytes\n", "line 2, column 6: not UTF-8 text (byte 0xff)"),
        (b" ok\n ok\n\x00\x01\x02 junk\n", "line 3, column 1: binary junk"),
        (GOOD_PTB.encode("utf-16"), "line 1"),
        (b" fine\n" * 5 + b"tab\tok\x7fdel\n", "line 6, column 7"),
    ],
)
def test_corrupt_ptb(tmp_path: Path, content: bytes, where: str) -> None:
    root = ptb_dir(tmp_path, content)
    with pytest.raises(DataError) as exc:
        tasks.get("ptb", data_dir=root)
    message = one_line(exc)
    assert str(root / "ptb" / "ptb.train.txt") in message and where in message


def test_corrupt_real_ptb_copy(tmp_path: Path, data_dir: Path) -> None:
    """Binary junk in the middle of a real file: the line number is exact."""
    shutil.copytree(data_dir / "ptb", tmp_path / "ptb")
    path = tmp_path / "ptb" / "ptb.valid.txt"
    path.chmod(0o644)
    lines = path.read_bytes().split(b"\n")
    lines[1233] = lines[1233][:10] + b"\x00\x00PNG" + lines[1233][10:]
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DataError, match=r"ptb\.valid\.txt: line 1234, column 11: binary junk"):
        tasks.get("ptb", data_dir=tmp_path)
    lines[1233] = lines[1233].replace(b"\x00\x00PNG", b"caf\xe9")  # Latin-1, not UTF-8
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DataError, match=r"ptb\.valid\.txt: line 1234, column 14: not UTF-8"):
        tasks.get("ptb", data_dir=tmp_path)


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ('{"train": [[[60]]], "valid": [[[60]]], "test": [[[60]]', "line 1, column 55: invalid"),
        ('{"train": [[[60]]],\n "valid": [[[60]],,\n', "line 2, column 19: invalid JSON"),
        ("", "line 1, column 1: invalid JSON"),
        ('{"train": [[[60]]], "valid": [[[60]]]}', "keys train, valid, test"),
        ('{"train": [[[60], [20]]], "valid": [[[60]]], "test": [[[60]]]}',
         "train piece 0 step 1: note 20 outside the piano range 21-108"),
        ('{"train": [[[60]]], "valid": [[[60]], [[61], [62, 109]]], "test": [[[60]]]}',
         "valid piece 1 step 1: note 109 outside"),
        ('{"train": [[[60]]], "valid": [[[60]]], "test": [[[60.5]]]}',
         "test piece 0 step 0: note 60.5"),
        ('{"train": [[[60]]], "valid": [[[60]]], "test": [[61]]}',
         "test piece 0 step 0: expected a list"),
        ('{"train": [[[60]]], "valid": [[[60]]], "test": [[["x"]]]}', "note 'x'"),
        ('{"train": [[[60]]], "valid": [], "test": [[[60]]]}', "valid: expected a non-empty"),
    ],
)
def test_corrupt_music(tmp_path: Path, content: str, where: str) -> None:
    root = music_dir(tmp_path, content)
    with pytest.raises(DataError) as exc:
        tasks.get("jsb", data_dir=root)
    message = one_line(exc)
    assert str(root / "music" / "jsb_chorales.json") in message and where in message


def test_truncated_real_music_file(tmp_path: Path, data_dir: Path) -> None:
    text = (data_dir / "music" / "nottingham.json").read_text()
    root = music_dir(tmp_path, text[: len(text) // 2], "nottingham.json")
    with pytest.raises(DataError, match=r"nottingham\.json: line 1, column \d+: invalid JSON"):
        tasks.get("nottingham", data_dir=root)
    doc = json.loads(text)
    doc["test"][3][17] = [60, 7]
    (root / "music" / "nottingham.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match="test piece 3 step 17: note 7 outside"):
        tasks.get("nottingham", data_dir=root)
