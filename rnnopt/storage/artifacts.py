"""The file-system artifact store that holds trial checkpoints."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from optuna.artifacts import FileSystemArtifactStore

from rnnopt.errors import StorageError
from rnnopt.storage.urls import sqlite_path

__all__ = [
    "artifact_store",
    "check_artifact_dir",
    "default_artifact_dir",
    "existing_artifact_store",
]


def default_artifact_dir(url: str) -> Path:
    """Next to the SQLite file (``<stem>-artifacts``), else ``./rnnopt-artifacts``."""
    path = sqlite_path(url)
    if path is not None:
        return path.with_name(path.stem + "-artifacts")
    return Path("rnnopt-artifacts").resolve()


def check_artifact_dir(path: Path) -> None:
    """Raise StorageError unless ``path`` is (or can be made) a writable directory."""
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise StorageError(f"artifact directory {path} cannot be created or written")


class _ReplacingArtifactStore(FileSystemArtifactStore):
    """A file-system artifact store whose writes replace a file atomically (a temporary file
    renamed into place), so a checkpoint overwritten under its stable id is never half a file,
    even when the worker dies mid-write."""

    def __init__(self, base_path: str) -> None:
        super().__init__(base_path)
        self._dir = Path(base_path)

    def write(self, artifact_id: str, content_body: Any) -> None:
        target = self._dir / artifact_id
        tmp = target.with_name(f".{artifact_id}.partial")
        with open(tmp, "wb") as fh:
            shutil.copyfileobj(content_body, fh)
        os.replace(tmp, target)


def artifact_store(path: Path) -> FileSystemArtifactStore:
    """The store at ``path``, creating the directory (for writers)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create artifact directory {path}: {exc.strerror}") from None
    return _ReplacingArtifactStore(str(path))


def existing_artifact_store(path: Path) -> FileSystemArtifactStore:
    """The store at an existing directory (for readers: creates nothing)."""
    if not path.is_dir():
        raise StorageError(f"artifact directory {path} does not exist or is not a directory")
    return FileSystemArtifactStore(str(path))
