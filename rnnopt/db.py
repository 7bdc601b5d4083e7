"""``python -m rnnopt.db views [--storage URL | --storage-env VAR] [--drop] [--force]``:
install (or drop) rnnopt's SQL views over Optuna's tables (see :mod:`rnnopt.storage.views`)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from rnnopt.storage import add_storage_arguments, existing_storage, storage_url
from rnnopt.storage.views import (
    VIEWS,
    dialect_of,
    drop_views,
    install_views,
    sql_path,
    view_statements,
)

__all__ = ["VIEWS", "dialect_of", "drop_views", "install_views", "main", "sql_path",
           "view_statements"]

# Named, not __name__: run as `python -m` this module is __main__ (__mp_main__ in workers).
logger = logging.getLogger("rnnopt.db")


def main(argv: Sequence[str] | None = None) -> int:
    from rnnopt._cli import add_plugin_option, setup_logging

    parser = argparse.ArgumentParser(prog="python -m rnnopt.db", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    views = sub.add_parser("views", help="install (or drop) the rnnopt SQL views")
    add_storage_arguments(views)
    views.add_argument("--drop", action="store_true", help="remove the views instead")
    views.add_argument("--force", action="store_true", help="recreate even if current")
    args = add_plugin_option(parser).parse_args(argv)
    setup_logging()
    url = existing_storage(storage_url(args))
    if args.drop:
        drop_views(url)
        logger.info("dropped rnnopt views")
    else:
        install_views(url, force=args.force)
        logger.info("views: %s", ", ".join(VIEWS))
    return 0


if __name__ == "__main__":
    import sys

    from rnnopt._cli import run_cli

    sys.exit(run_cli(main))
