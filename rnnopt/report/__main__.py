"""``python -m rnnopt.report`` (``rnnopt report``): the command line of the report."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import optuna

from rnnopt.hpo import confirm as confirm_mod
from rnnopt.report.analysis import IMPORTANCE_METHODS, build_report
from rnnopt.report.render import (
    FORMATS,
    markdown_table,
    paired_lines,
    table1_rows,
    write_report,
)
from rnnopt.storage import add_storage_arguments, storage_url

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    from rnnopt._cli import add_plugin_option, setup_logging

    parser = argparse.ArgumentParser(
        prog="python -m rnnopt.report",
        description="Table 1 beside the paper, importance, ablations and plots for rnnopt studies.",
    )
    add_storage_arguments(parser)
    parser.add_argument("--task", action="append", help="only this task (repeatable)")
    parser.add_argument("--format", choices=FORMATS, default="html", dest="fmt")
    parser.add_argument("--out", default="report", help="output directory (default: report)")
    parser.add_argument("--min-trials", type=int, default=10,
                        help="completed trials needed to compare a cell / compute importance")
    parser.add_argument("--importance", choices=IMPORTANCE_METHODS, default="fanova")
    parser.add_argument("--no-plots", action="store_true")
    args = add_plugin_option(parser).parse_args(argv)
    setup_logging()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    report = build_report(storage_url(args), tasks=args.task, min_trials=args.min_trials,
                          importance=args.importance)
    files = write_report(report, args.out, fmt=args.fmt, plots=not args.no_plots)
    print(markdown_table(*table1_rows(report)))
    confirmed = confirm_mod.report_rows(report.groups, report.tasks, report.cells)
    if confirmed[1]:
        print("\nconfirmation: each cell's best setting retrained with new seeds (mean, 95% "
              f"interval)\n{markdown_table(*confirmed)}\n{confirm_mod.SCOPE}")
    if lines := paired_lines(report.paired):
        print("\n" + "\n".join(lines))
    for warning in report.warnings:
        print(f"warning: {warning}")
    for note in report.notes:
        print(f"note: {note}")
    print(f"wrote {len(files)} files to {args.out}")
    return 0


if __name__ == "__main__":
    import sys

    from rnnopt._cli import run_cli

    sys.exit(run_cli(main))
