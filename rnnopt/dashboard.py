"""optuna-dashboard for rnnopt studies: markdown notes per study and a local server.

``python -m rnnopt.dashboard --storage URL|--storage-env VAR [--artifacts DIR] [--port 8080]``
writes a note to every rnnopt study that has none yet and serves optuna-dashboard on 127.0.0.1.

The study layer calls :func:`write_study_note` when it creates a study, so the note (task, cell,
space, budget, the command that reproduces it) is there from the first trial on.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from typing import Any

import optuna

from rnnopt import schema
from rnnopt.attrs import json_value
from rnnopt.errors import ConfigError
from rnnopt.storage import (
    add_storage_arguments,
    default_artifact_dir,
    existing_artifact_store,
    existing_storage,
    open_existing,
    storage_url,
)

__all__ = ["main", "note_markdown", "write_notes", "write_study_note"]

# Named, not __name__: run as `python -m` this module is __main__ (__mp_main__ in workers).
logger = logging.getLogger("rnnopt.dashboard")


def _pretty_json(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, indent=2, sort_keys=True)


def note_markdown(study_name: str, user_attrs: dict[str, Any]) -> str:
    """The markdown note of an rnnopt study, from its ``rnnopt.*`` user attributes."""
    a = user_attrs
    lines = [
        f"# {study_name}",
        "",
        "| | |",
        "|---|---|",
        f"| task | `{a.get('rnnopt.task', '?')}` |",
        f"| cell | `{a.get('rnnopt.cell', '?')}` |",
        f"| mode | {a.get('rnnopt.mode', '?')} |",
        f"| objective | validation {a.get('rnnopt.metric', '?')} "
        f"({a.get('rnnopt.direction', '?')}) |",
        f"| rnnopt version | {a.get('rnnopt.version', '?')} |",
        "",
    ]
    if "rnnopt.budget" in a:
        lines += ["## Budget", "", "```json", _pretty_json(a["rnnopt.budget"]), "```", ""]
    if schema.PAIRED_STARTUP in a:
        paired = json_value(a[schema.PAIRED_STARTUP])
        lines += ["## Paired start-up", "", f"Trials 0 to {paired['trials'] - 1} train the "
                  f"same settings in every cell's study (pairing seed {paired['seed']}): the "
                  "report's shared-settings table compares the cells on them.", ""]
    lines += _staged_lines(a)
    if "rnnopt.space" in a:
        lines += ["## Search space", "", "```json", _pretty_json(a["rnnopt.space"]), "```", ""]
    if "rnnopt.data" in a:  # the user's files (SHA-256) and the options that shaped them
        from rnnopt.userdata import data_label

        label = data_label(str(a.get(schema.TASK, "?")), a[schema.DATA], a.get(schema.TRAIN))
        lines += ["## Data", "", f"`{label}` in the report; the views' `data` column holds:", "",
                  "```json", _pretty_json(a["rnnopt.data"]), "```", ""]
    if a.get("rnnopt.command"):
        lines += ["## Reproduce", "", "```sh", str(a["rnnopt.command"]), "```", ""]
    lines += [
        "Trial user attributes: `n_params`, `hidden_size`, `tokens_per_s`, `device`, "
        "`stop_reason`, `steps`, `test_metric`, `valid_metric`, `reason`. Intermediate values "
        "are the validation metric keyed by training step.",
    ]
    return "\n".join(lines)


def _staged_lines(a: dict[str, Any]) -> list[str]:
    """The staged filter across cells (rnnopt/hpo/staged.py): its schedule, and each gate's
    decision once taken."""
    schedule = (json_value(a.get("rnnopt.budget")) or {}).get("staged")
    if not schedule:
        return []
    lines = ["## Staged filter", "", f"Schedule `{schedule}` (fraction of the steps: cells "
             "kept). Every cell's trials wait at each gate until all have reached it; the "
             "best cells' trials go on, the others end pruned with the gate in their `reason`.",
             ""]  # fmt: skip
    decisions = (json_value(a.get(schema.STAGED)) or {}).get("decisions", [])
    if decisions:
        lines += ["| gate | step | kept | value of each cell there |", "|---|---|---|---|"]
        for d in decisions:
            values = ", ".join(
                f"{cell} {'none' if v is None else f'{v:.4g}'}" for cell, v in d["scores"].items()
            )
            lines.append(f"| {d['gate'] + 1} | {d['step']} | {', '.join(d['kept'])} | {values} |")
        lines.append("")
    return lines


def set_metric_name(study: optuna.Study, metric: str) -> None:
    """Name the objective (``accuracy``, ``perplexity``, ``nll``) so that optuna-dashboard's
    axes read it instead of "Objective 0"."""
    from rnnopt.storage.compat import quiet_experimental

    if study.metric_names != [metric]:
        with quiet_experimental():
            study.set_metric_names([metric])


def write_study_note(study: optuna.Study) -> None:
    """Save the rnnopt markdown note on ``study`` (shown on its optuna-dashboard page)."""
    from optuna_dashboard import save_note

    save_note(study, note_markdown(study.study_name, study.user_attrs))


def write_notes(storage: str | optuna.storages.BaseStorage, *, overwrite: bool = False) -> int:
    """Write notes to every compare/search study that has none (or all, with ``overwrite``);
    the count."""
    from optuna_dashboard import get_note

    written = 0
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if not schema.is_cell_study(summary.user_attrs):  # not evolve's: no task, no cell
            continue
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        metric = summary.user_attrs.get("rnnopt.metric")
        if isinstance(metric, str) and summary.user_attrs.get("rnnopt.mode") != "evolve":
            set_metric_name(study, metric)  # studies written before rnnopt named it
        if overwrite or not get_note(study):
            write_study_note(study)
            written += 1
    return written


def main(argv: Sequence[str] | None = None) -> int:
    from rnnopt._cli import add_plugin_option, setup_logging

    parser = argparse.ArgumentParser(
        prog="python -m rnnopt.dashboard", description="Serve optuna-dashboard on 127.0.0.1."
    )
    add_storage_arguments(parser)
    parser.add_argument(
        "--artifacts",
        help="checkpoint directory (default as study: next to the SQLite file, else "
        "./rnnopt-artifacts)",
    )
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--no-notes", action="store_true",
                        help="do not write notes to rnnopt studies that lack one")
    args = add_plugin_option(parser).parse_args(argv)
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port {args.port} is not a TCP port (1-65535)")
    url = storage_url(args)
    setup_logging()
    url = existing_storage(url)
    # Check everything before touching the database: a bad --artifacts leaves it as it was.
    from pathlib import Path

    path = Path(args.artifacts) if args.artifacts else default_artifact_dir(url)
    artifact_store = existing_artifact_store(path) if args.artifacts or path.is_dir() else None
    storage = open_existing(url)
    if not args.no_notes:
        count = write_notes(storage)
        if count:
            logger.info("wrote notes to %d rnnopt studies", count)
    from optuna_dashboard import run_server

    logger.info("optuna-dashboard on http://127.0.0.1:%d/dashboard/", args.port)
    run_server(storage, host="127.0.0.1", port=args.port, artifact_store=artifact_store)
    return 0


if __name__ == "__main__":
    import sys

    from rnnopt._cli import run_cli

    sys.exit(run_cli(main))
