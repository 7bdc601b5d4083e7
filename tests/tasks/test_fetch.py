"""``python -m rnnopt.tasks fetch`` against a real local HTTP server (mirror_server.py in a
subprocess): the real files byte for byte, a corrupted file, a server that dies mid-file, no
server at all."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rnnopt._cli import run_cli
from rnnopt.tasks import _fetch
from rnnopt.tasks.__main__ import main

REPO = Path(__file__).resolve().parents[2]
SERVER = Path(__file__).with_name("mirror_server.py")
Serve = Callable[..., str]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """``serve(cut_after=None) -> base URL`` of mirror_server.py over tmp_path/mirror."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(cut_after: int | None = None) -> str:
        port = tmp_path / "port"
        port.unlink(missing_ok=True)
        extra = [] if cut_after is None else ["--cut-after", str(cut_after)]
        procs.append(subprocess.Popen([sys.executable, str(SERVER), str(tmp_path / "mirror"),
                                       *extra]))
        deadline = time.monotonic() + 60
        while not port.is_file():
            assert time.monotonic() < deadline and procs[-1].poll() is None, "server did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{port.read_text()}"

    yield start
    for p in procs:
        p.kill()
        p.wait()


def _publish(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, bytes]) -> None:
    """Synthetic sources: the given files on the mirror, their checksums in the package table."""
    table = {}
    for key, data in files.items():
        path = f"owner/repo/{'0' * 40}/{key}.txt"
        (tmp_path / "mirror" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "mirror" / path).write_bytes(data)
        table[key] = _fetch.Source(path, len(data), hashlib.sha256(data).hexdigest(),
                                   f"demo/{key}.txt")
    monkeypatch.setattr(_fetch, "SOURCES", table)
    monkeypatch.setitem(_fetch.SETS, "demo", tuple(files))


def _fetch_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run_cli(main, ["fetch", *args])
    out, err = capsys.readouterr()
    return code, out, err.strip()


def _requests(tmp_path: Path) -> list[str]:
    return (tmp_path / "requests.log").read_text().splitlines()


# --- the real files ----------------------------------------------------------------------------


@pytest.mark.slow
def test_ptb_real_files_byte_for_byte(tmp_path: Path, data_dir: Path, serve: Serve) -> None:
    """The subprocess CLI with the package's own checksums; the mirror holds the real files."""
    mirror = tmp_path / "mirror"
    for key in _fetch.SETS["ptb"]:
        source = _fetch.SOURCES[key]
        (mirror / source.path).parent.mkdir(parents=True, exist_ok=True)
        (mirror / source.path).write_bytes((data_dir / source.target).read_bytes())
    base = serve()
    env = {**os.environ, "PYTHONPATH": str(REPO), _fetch.URL_ENV: base}
    target = tmp_path / "data"
    for _ in range(2):
        run = subprocess.run([sys.executable, "-m", "rnnopt.tasks", "fetch", "ptb",
                              "--data-dir", str(target)],
                             env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
    assert "already there, sha256 ok" in run.stdout  # the second run downloads nothing
    assert len(_requests(tmp_path)) == 3
    for split in ("train", "valid", "test"):
        name = f"ptb/ptb.{split}.txt"
        assert (target / name).read_bytes() == (data_dir / name).read_bytes()
    assert sorted(p.name for p in (target / "ptb").iterdir()) == [
        "ptb.test.txt", "ptb.train.txt", "ptb.valid.txt"]


def test_music_mat_is_converted_to_the_shipped_json(
    tmp_path: Path, data_dir: Path, serve: Serve, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A .mat laid out like Zhe Gan's (cells of T x 88 uint8 rolls), made here from the shipped
    JSB JSON: its conversion must reproduce the shipped JSON's checksum exactly."""
    import numpy
    import scipy.io

    doc = json.loads((data_dir / "music" / "jsb_chorales.json").read_bytes())
    variables = {}
    for split in ("train", "valid", "test"):
        cells = numpy.empty((1, len(doc[split])), dtype=object)
        for i, piece in enumerate(doc[split]):
            roll = numpy.zeros((len(piece), 88), dtype=numpy.uint8)
            for t, notes in enumerate(piece):
                roll[t, [n - 21 for n in notes]] = 1
            cells[0, i] = roll
        variables[f"{split}data"] = cells
    real = _fetch.SOURCES["jsb"]
    mat = tmp_path / "mirror" / real.path
    mat.parent.mkdir(parents=True)
    scipy.io.savemat(str(mat), variables)
    data = mat.read_bytes()
    # only the .mat's own checksum is ours; the JSON's is the package's
    monkeypatch.setitem(_fetch.SOURCES, "jsb", _fetch.Source(
        real.path, len(data), hashlib.sha256(data).hexdigest(), real.target, real.target_sha256))
    code, out, err = _fetch_cli(["jsb", "--data-dir", str(tmp_path / "d"),
                                 "--url-base", serve()], capsys)
    assert code == 0, err
    assert "music/jsb_chorales.json: converted from" in out
    assert (tmp_path / "d/music/jsb_chorales.json").read_bytes() == (
        data_dir / "music/jsb_chorales.json").read_bytes()
    assert os.listdir(tmp_path / "d/music") == ["jsb_chorales.json"]  # the .mat is gone


# --- the mechanism, on synthetic files ------------------------------------------------------


def test_a_corrupted_file_is_refused_and_nothing_is_written(
    tmp_path: Path, serve: Serve, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _publish(tmp_path, monkeypatch, {"good": b"fine\n" * 100, "bad": b"x" * 5000})
    served = tmp_path / "mirror" / _fetch.SOURCES["bad"].path
    served.write_bytes(b"x" * 4999 + b"y")  # same size, one byte changed
    target = tmp_path / "d"
    code, out, err = _fetch_cli(["demo", "--data-dir", str(target), "--url-base", serve()],
                                capsys)
    assert code == 2 and "\n" not in err
    assert "sha256" in err and _fetch.SOURCES["bad"].sha256 in err
    assert "nothing was written" in err and "bad.txt" in err
    assert "demo/good.txt: 500 bytes" in out
    assert sorted(os.listdir(target / "demo")) == ["good.txt"]  # no bad.txt, no .part


def test_a_server_that_dies_mid_file_is_resumed(
    tmp_path: Path, serve: Serve, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    payload = os.urandom(300_000)
    _publish(tmp_path, monkeypatch, {"big": payload})
    target = tmp_path / "d"
    code, _, err = _fetch_cli(["demo", "--data-dir", str(target), "--url-base",
                               serve(cut_after=120_000)], capsys)
    assert code == 2 and "\n" not in err
    assert "was cut after 120000 of 300000 bytes" in err and "run the same command again" in err
    assert os.listdir(target / "demo") == ["big.txt.part"]  # no file under its final name
    assert (target / "demo" / "big.txt.part").read_bytes() == payload[:120_000]
    code, _, err = _fetch_cli(["demo", "--data-dir", str(target), "--url-base", serve()],
                                capsys)
    assert code == 0, err
    assert (target / "demo" / "big.txt").read_bytes() == payload
    assert os.listdir(target / "demo") == ["big.txt"]
    paths = [line.split() for line in _requests(tmp_path)]
    assert [p[1] for p in paths] == ["None", "bytes=120000-"]  # resumed, not restarted


def test_a_file_in_the_way_is_not_overwritten(
    tmp_path: Path, serve: Serve, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _publish(tmp_path, monkeypatch, {"one": b"published\n"})
    (tmp_path / "d" / "demo").mkdir(parents=True)
    (tmp_path / "d" / "demo" / "one.txt").write_bytes(b"mine\n")
    code, _, err = _fetch_cli(["demo", "--data-dir", str(tmp_path / "d"), "--url-base",
                               serve()], capsys)
    assert code == 2 and "exists and is not the published file" in err
    assert (tmp_path / "d" / "demo" / "one.txt").read_bytes() == b"mine\n"


def test_no_server_names_the_url_and_the_manual_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(_fetch.URL_ENV, f"http://127.0.0.1:{port}")
    code, _, err = _fetch_cli(["ptb", "--data-dir", str(tmp_path / "d")], capsys)
    assert code == 2 and "\n" not in err
    url = f"http://127.0.0.1:{port}/{_fetch.SOURCES['ptb.train'].path}"
    assert err.startswith(f"error: cannot download {url} (")
    assert f"put ptb.train.txt, ptb.valid.txt, ptb.test.txt in {tmp_path / 'd' / 'ptb'}" in err
    assert not (tmp_path / "d").exists()  # nothing created, not even the folders


@pytest.mark.parametrize(
    ("args", "words"),
    [(["penn"], ["unknown data set 'penn'", "allowed: ptb, music"]),
     (["ptb", "--url-base", "ftp://x"], ["must start with http://"])],
)
def test_bad_arguments(args: list[str], words: list[str], tmp_path: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _fetch_cli([*args, "--data-dir", str(tmp_path / "d")], capsys)
    assert code == 2
    for word in words:
        assert word in err
    assert not (tmp_path / "d").exists()


def test_the_shipped_checksums_are_those_of_sources_md(data_dir: Path) -> None:
    """One table in the package; the data directory's provenance file lists the same."""
    sources_md = (data_dir / "SOURCES.md").read_text()
    for source in _fetch.SOURCES.values():
        assert source.sha256 in sources_md and f"{source.size:,}" in sources_md
        final = source.target_sha256 or source.sha256
        assert hashlib.sha256((data_dir / source.target).read_bytes()).hexdigest() == final
