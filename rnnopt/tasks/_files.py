"""The user's own data files: locating them, reading text in blocks, and the data's identity.

A task built on user files (``text``, ``series``) names them in task options (``data``, and
optionally ``valid`` and ``test``); a relative name is taken from the current directory. Each
file must exist and be non-empty. ``identity`` (the files' SHA-256 and the options that shape
the encoded data, not the file names) is what a study stores so that resuming it with other
data is refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rnnopt.errors import DataError
from rnnopt.tasks._data import file_digest

BLOCK_BYTES = 1 << 22  # text is read, checked and encoded 4 MiB at a time
# Control characters other than tab and newline are binary junk; a CR only before LF or at the
# end of the file (Windows line ends).
_JUNK = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n|\Z)")


def user_file(task: str, option: str, value: str) -> Path:
    """The file named by task option ``option``; DataError if it is missing or empty."""
    path = Path(value).expanduser()
    if not path.is_file():
        raise DataError(f"{task}: data file {path} (option {option}) not found"
                        + ("" if path.parent.is_dir() else f"; no directory {path.parent}"))
    if path.stat().st_size == 0:
        raise DataError(f"{task}: data file {path} (option {option}) is empty")
    return path


def identity(files: dict[str, Path], options: dict[str, Any]) -> dict[str, Any]:
    """What makes two data sets the same: the files' contents by role, and ``options``."""
    return {
        "files": {role: file_digest(path) for role, path in files.items()},
        "options": options,
    }


def identity_json(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _decode(path: Path, raw: bytes, first_line: int, expected: str) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = first_line + raw.count(b"\n", 0, exc.start)
        column = exc.start - raw.rfind(b"\n", 0, exc.start)
        raise DataError(
            f"{path}: line {line}, column {column}: not UTF-8 text (byte "
            f"0x{raw[exc.start]:02x}); expected {expected}"
        ) from None
    junk = _JUNK.search(text)
    if junk:
        line = first_line + text.count("\n", 0, junk.start())
        column = junk.start() - text.rfind("\n", 0, junk.start())
        raise DataError(f"{path}: line {line}, column {column}: binary junk (control "
                        f"character {junk.group()!r}); expected plain text")
    return text


def line_blocks(path: Path, expected: str) -> Iterator[tuple[int, list[str]]]:
    """``(number of the first line, lines)`` blocks of the UTF-8 text file ``path``, about
    4 MiB each, line ends (LF or CRLF) removed; a final line end does not start a new line.

    DataError naming the line and column on bytes that are not UTF-8 or on control characters.
    """
    number = 1
    rest = b""
    with path.open("rb") as fh:
        while True:
            block = fh.read(BLOCK_BYTES)
            data = rest + block
            if not block:
                if data:
                    yield number, [_decode(path, data, number, expected).removesuffix("\r")]
                return
            cut = data.rfind(b"\n")
            if cut < 0:
                rest = data
                continue
            rest = data[cut + 1 :]
            text = _decode(path, data[: cut + 1], number, expected)
            lines = text.split("\n")
            lines.pop()  # after the last line end
            if "\r" in text:
                lines = [line.removesuffix("\r") for line in lines]
            yield number, lines
            number += len(lines)


def read_lines(path: Path, expected: str) -> list[str]:
    """Every line of ``path`` (see :func:`line_blocks`)."""
    return [line for _, lines in line_blocks(path, expected) for line in lines]


def count_lines(path: Path) -> int:
    """Lines of ``path`` as :func:`line_blocks` counts them, without decoding."""
    n, last = 0, b"\n"
    with path.open("rb") as fh:
        while block := fh.read(BLOCK_BYTES):
            n += block.count(b"\n")
            last = block[-1:]
    return n + (last != b"\n")


def split_counts(n: int, valid_fraction: float = 0.1, test_fraction: float = 0.1) -> tuple[
    int, int, int
]:
    """The documented split rule: (train, valid, test) sizes of ``n`` items in order, valid
    and test ``floor(n * fraction)`` each, the first ``n - valid - test`` for training."""
    valid, test = int(n * valid_fraction), int(n * test_fraction)
    return n - valid - test, valid, test
