"""Shared command-line plumbing: RnnoptError -> one line on stderr, exit code 2."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence

from rnnopt.errors import RnnoptError

EXIT_USAGE = 2


def run_cli(
    main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None
) -> int:
    """Run ``main(argv)``; turn user errors and Ctrl-C into a one-line message and an exit code."""
    try:
        code = main(argv)
    except RnnoptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
