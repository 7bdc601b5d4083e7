"""Locating data files and caching what was parsed from them.

Location: the ``data_dir`` argument (CLI ``--data-dir``) > the ``RNNOPT_DATA`` environment
variable > ``./data``. Parsed data is cached in memory per process (keyed by path, size and
modification time) and on disk under ``$RNNOPT_CACHE`` (default ``~/.cache/rnnopt``), keyed by
the SHA-256 of the files' bytes, so a study's trials do not re-parse PTB each time. A broken or
unwritable disk cache is only logged; the data are then parsed again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from rnnopt.errors import DataError

log = logging.getLogger(__name__)

CACHE_FORMAT = 1  # bump when a parser's output changes
_memory: dict[tuple[Any, ...], Any] = {}
_digests: dict[tuple[Any, ...], str] = {}


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The data directory: ``data_dir`` > ``$RNNOPT_DATA`` > ``./data``."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get("RNNOPT_DATA")
    if env:
        return Path(env).expanduser()
    return Path("data")


def _source(data_dir: str | Path | None) -> str:
    if data_dir is not None and str(data_dir) != "":
        return "given by --data-dir / data_dir"
    if os.environ.get("RNNOPT_DATA"):
        return "from RNNOPT_DATA"
    return "the default ./data"


def require_file(data_dir: str | Path | None, relative: str) -> Path:
    """``<data dir>/<relative>``, or DataError naming the path and how to set the directory."""
    root = resolve_data_dir(data_dir)
    hint = "set it with --data-dir or the RNNOPT_DATA environment variable"
    if not root.is_dir():
        raise DataError(f"data directory {root} ({_source(data_dir)}) does not exist; {hint}")
    path = root / relative
    if not path.is_file():
        raise DataError(f"data file {path} not found in data directory {root} "
                        f"({_source(data_dir)}); {hint}")
    return path


def cache_dir() -> Path:
    env = os.environ.get("RNNOPT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rnnopt"


def cached(kind: str, paths: Sequence[Path], parse: Callable[[], Any]) -> Any:
    """``parse()``'s result for the files ``paths``, from memory, disk, or parsed now.

    ``parse`` must return something ``torch.save`` can store and ``torch.load(weights_only=True)``
    can read back (tensors, lists, dicts, strings, numbers).
    """
    stamps = tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
    mem_key = (kind, CACHE_FORMAT, stamps)
    if mem_key in _memory:
        return _memory[mem_key]
    digest = hashlib.sha256(f"{kind}|{CACHE_FORMAT}".encode())
    for p in paths:
        digest.update(bytes.fromhex(file_digest(p)))
    file = cache_dir() / f"{kind}-{digest.hexdigest()[:24]}.pt"
    value = _load(file)
    if value is None:
        value = parse()
        _store(file, value)
    _memory[mem_key] = value
    return value


def file_digest(path: Path) -> str:
    """SHA-256 (hex) of the bytes of ``path``, read in blocks (memoised per size and mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _digests:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            while block := fh.read(1 << 22):
                h.update(block)
        _digests[key] = h.hexdigest()
    return _digests[key]


def _load(file: Path) -> Any:
    if not file.is_file():
        return None
    try:
        value = torch.load(file, weights_only=True)
    except Exception as exc:  # a truncated or foreign cache file: parse again
        log.warning("ignoring unreadable cache file %s: %s", file, exc)
        return None
    log.debug("loaded %s from cache", file)
    return value


def _store(file: Path, value: Any) -> None:
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        # write then rename, so concurrent trials never read a half-written file
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=file.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            torch.save(value, fh)
        os.replace(tmp, file)
    except OSError as exc:
        log.warning("could not write cache file %s: %s", file, exc)
