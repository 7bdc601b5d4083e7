"""``python -m rnnopt.study``: compare recurrent cells (or search over them) as Optuna studies.

Every task/cell pair is one Optuna study (``xml/lstm-b``) in one database; rerunning the same
command continues each study to its total ``--n-trials``; several copies of the command (on one
machine with ``--workers N``, or on several machines against PostgreSQL/MySQL) cooperate.
See docs/studies.md. This is the command-line face: it parses the arguments, calls into
``rnnopt.hpo`` (plan, prepare, run) and prints the summary.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from collections import Counter
from collections.abc import Sequence

from rnnopt import schema, userdata
from rnnopt._cli import add_plugin_option, interrupt_between_storage_calls, run_cli, setup_logging
from rnnopt.hpo import confirm as confirm_mod
from rnnopt.hpo.plan import (
    DEFAULT_HEARTBEAT_S,
    DEFAULT_MAX_RETRY,
    DEFAULT_MAX_STEPS,
    DEFAULT_N_TRIALS,
    DEFAULT_PRUNER,
    DEFAULT_SAMPLER,
    MAX_AUTO_WORKERS,
    Plan,
    make_plan,
)
from rnnopt.hpo.runner import prepare_studies, run_workers
from rnnopt.hpo.samplers import PRUNERS, SAMPLERS, paired_trials, startup_text
from rnnopt.hpo.staged import filtered_cells, filtered_text, finalists

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rnnopt.study",
        description="Compare recurrent cells on the paper's tasks as Optuna studies.",
    )
    # Defaults are None so that a study file's [study] table can fill what the command omits.
    p.add_argument("--task", help="task name(s), comma-separated (e.g. xml or arith,xml,ptb)")
    p.add_argument("--cells", help="cell names, comma-separated (default: the paper's ten)")
    p.add_argument("--mode", choices=None, help="compare (one study per task and cell) | search")
    p.add_argument("--study-file", help="a study file: studies/NAME.toml or a path")
    p.add_argument(
        "--n-trials",
        type=int,
        help="trials per study, total across restarts (default: the study file's, else "
        f"{DEFAULT_N_TRIALS})",
    )
    p.add_argument(
        "--confirm",
        type=int,
        metavar="K",
        help="after the search, retrain each cell's best setting with K new seeds (trials of "
        "their own, not counted in --n-trials; default: the study file's, else 0)",
    )
    p.add_argument("--timeout", type=float, help="stop claiming new trials after SECONDS")
    p.add_argument(
        "--max-steps",
        type=int,
        help=f"training steps per trial (default: the study file's, else {DEFAULT_MAX_STEPS})",
    )
    p.add_argument("--eval-interval", type=int, help="steps between evaluations (default max/10)")
    p.add_argument(
        "--sampler",
        help=f"{' | '.join(SAMPLERS)} (default {DEFAULT_SAMPLER}; "
        "paper: random search over the paper's grids)",
    )
    p.add_argument(
        "--paired-startup",
        action="store_true",
        help="every cell's k-th random start-up trial trains the same setting (as [sampler] "
        "paired_startup = true)",
    )
    p.add_argument("--pruner", help=f"{' | '.join(PRUNERS)} (default {DEFAULT_PRUNER})")
    from rnnopt.storage import add_storage_arguments

    add_storage_arguments(p)
    p.add_argument("--study-name", help="prefix of the study names (e.g. 'v2/')")
    p.add_argument(
        "--workers",
        default="auto",
        help="local worker processes, or auto (default): one per GPU with --device auto/cuda "
        f"and a GPU, else one per CPU core up to {MAX_AUTO_WORKERS}, never more than the trials",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--seed", type=int, help="training seed base; also seeds the sampler")
    p.add_argument("--data-dir", help="data directory (default $RNNOPT_DATA or ./data)")
    p.add_argument(
        "--artifacts",
        help="checkpoint directory (default next to the SQLite file, else ./rnnopt-artifacts)",
    )
    p.add_argument(
        "--heartbeat",
        default=DEFAULT_HEARTBEAT_S,
        help="seconds between trial heartbeats; a trial silent for twice as long is "
        f"retried (default {DEFAULT_HEARTBEAT_S})",
    )
    p.add_argument(
        "--max-retry",
        type=int,
        default=DEFAULT_MAX_RETRY,
        help=f"retries of a trial whose worker died (default {DEFAULT_MAX_RETRY})",
    )
    userdata.add_arguments(p)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return add_plugin_option(p)


# --- the summary ------------------------------------------------------------------------------


def summary_table(plan: Plan) -> str:
    """Best value per cell (rows) and task (columns), with trial counts."""
    import optuna
    from optuna.trial import TrialState

    from rnnopt import storage as st

    storage = st.open_storage(plan.url, heartbeat_interval=plan.heartbeat)
    tasks = list(dict.fromkeys(sd.task for sd in plan.studies))
    cells = list(dict.fromkeys(c for sd in plan.studies for c in sd.cells))
    best: dict[tuple[str, str], tuple[float, int, int]] = {}
    confirmed: dict[str, dict[str, confirm_mod.Confirmation]] = {}
    dropped: dict[str, dict[str, tuple[int, float | None]]] = {}  # by the staged filter
    for sd in plan.studies:
        study = optuna.load_study(study_name=sd.name, storage=storage)
        dropped[sd.task] = filtered_cells(study.user_attrs.get(schema.STAGED))
        trials = study.get_trials(deepcopy=False)
        replaced = st.replaced_numbers(trials)  # a retried trial counts once, as its retry
        trials = [t for t in trials if t.number not in replaced]
        pick = max if sd.direction == "maximize" else min
        tops = confirm_mod.best_search_trials(
            trials, sd.cells, search=sd.mode == "search", direction=sd.direction
        )
        for cell in sd.cells:
            mine = [
                t for t in trials
                if (sd.mode == "compare" or t.params.get("cell") == cell)
                and not confirm_mod.is_confirmation(t)
            ]  # fmt: skip
            values = [
                t.value for t in mine if t.state == TrialState.COMPLETE and t.value is not None
            ]
            done = sum(t.state.is_finished() for t in mine)
            pruned = sum(t.state == TrialState.PRUNED for t in mine)
            best[(cell, sd.task)] = (pick(values) if values else math.nan, done, pruned)
            conf = confirm_mod.confirmation_of(tops[cell], trials) if cell in tops else None
            if conf is not None:
                confirmed.setdefault(sd.task, {})[cell] = conf
    direction = {sd.task: sd.direction for sd in plan.studies}
    verdicts = {t: confirm_mod.compare_cells(c, direction[t]) for t, c in confirmed.items()}
    against = {t: confirm_mod.against_reference(c, direction[t]) for t, c in confirmed.items()}
    metrics = {
        sd.task: f"{sd.metric} ({'max' if sd.direction == 'maximize' else 'min'})"
        for sd in plan.studies
    }
    header = ["cell", *(f"{t} {metrics[t]}" for t in tasks)]
    rows = [header]
    for cell in cells:
        row = [cell]
        for t in tasks:
            if (cell, t) not in best:
                row.append("")
                continue
            v, done, pruned = best[(cell, t)]
            shown = (
                f"{v:.4f}" if not math.isnan(v)
                else filtered_text(*dropped[t][cell]) if cell in dropped.get(t, {})
                else "-"
            )  # fmt: skip
            text = f"{shown}  [{done} trials, {pruned} pruned]"
            conf = confirmed.get(t, {}).get(cell)
            if conf is not None:
                text += "  " + confirm_mod.describe(
                    conf, verdicts[t].get(cell), against[t].get(cell)
                )
            row.append(text)
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if confirmed:
        lines += ["", confirm_mod.SCOPE]
    if paired_trials(plan.sampler, plan.n_trials, plan.sampler_options):
        lines += _shared_settings_lines(plan, cells)
    return "\n".join(lines)


def _shared_settings_lines(plan: Plan, cells: list[str]) -> list[str]:
    """The report's shared-settings table in short, for a study with paired start-up."""
    from rnnopt.report.analysis import paired_rows
    from rnnopt.report.load import load_groups
    from rnnopt.report.render import paired_lines

    tasks = list(dict.fromkeys(sd.task for sd in plan.studies))
    lines = paired_lines(paired_rows(load_groups(plan.url, tasks), cells),
                         hint="; rnnopt report has more")
    return ["", *lines] if lines else []


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    interrupt_between_storage_calls()
    plan = make_plan(args, argv)
    plan.verbose = args.verbose
    prepare_studies(plan)

    print(f"storage:   {plan.masked_url}", flush=True)
    print(f"artifacts: {plan.artifacts}", flush=True)
    print(f"dashboard: optuna-dashboard {shlex.quote(plan.masked_url)}", flush=True)
    print(
        f"studies:   {', '.join(sd.name for sd in plan.studies)} "
        f"({plan.n_trials} trials each, {plan.max_steps} steps per trial, sampler "
        f"{plan.sampler}, pruner {plan.pruner})",
        flush=True,
    )
    print(
        f"sampling:  {startup_text(plan.sampler, plan.n_trials, plan.sampler_options)}",
        flush=True,
    )
    from rnnopt.progress import RunProgress

    confirmed = sum(len(sd.cells) for sd in plan.studies)  # cells whose best is retrained
    if plan.pruner == "staged":
        per_task = Counter(sd.task for sd in plan.studies)
        confirmed = sum(finalists(plan.pruner_options, n) for n in per_task.values())
    total = len(plan.studies) * plan.n_trials + plan.confirm * confirmed
    with RunProgress(plan.url, plan.studies, total, stream=sys.stderr):
        failed = run_workers(plan)
    print(summary_table(plan), flush=True)
    failure = all_failed(plan)
    if failure:
        print(f"error: {failure}", file=sys.stderr, flush=True)
        return 1
    if failed:
        from rnnopt.workers import EXIT_WORKER_FAILED

        print(f"error: {failed}; rerun the command to finish what they left", file=sys.stderr)
        return EXIT_WORKER_FAILED
    return 0


def all_failed(plan: Plan) -> str | None:
    """One line naming the first study whose every trial failed and its first error, or None."""
    import optuna
    from optuna.trial import TrialState

    from rnnopt import storage as st

    storage = st.open_storage(plan.url, heartbeat_interval=plan.heartbeat)
    broken = []
    for sd in plan.studies:
        trials = optuna.load_study(study_name=sd.name, storage=storage).get_trials(deepcopy=False)
        replaced = confirm_mod.replaced_trials(trials)
        good = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        failed = [t for t in trials if t.state == TrialState.FAIL and t.number not in replaced]
        if failed and not good:
            broken.append((sd.name, failed))
    if not broken:
        return None
    name, failed = broken[0]
    first = failed[0].user_attrs.get("reason", "no reason recorded")
    more = f" ({len(broken) - 1} more studies failed entirely)" if len(broken) > 1 else ""
    return f"all {len(failed)} trials of {name} failed{more}; first error: {first}"


if __name__ == "__main__":
    sys.exit(run_cli(main))
