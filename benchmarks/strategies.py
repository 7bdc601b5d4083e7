"""Which search strategy names the exhaustive comparison's best cell, and for how much compute.

    python benchmarks/strategies.py [--task xml] [--cells tanh,lstm,...] [--seeds 4]
        [--trials 3] [--max-steps 7000] [--study-file rnnopt/studies/quick.toml]
        [--strategies exhaustive,tpe,search,halving] [--eval-batches 20] [--jobs 2]
        [--staged 0.1:4,0.3:1 ...] [--out run.json] [--replay run.json]

Strategies, each run in memory through rnnopt's own objective (one thread per process):

- ``exhaustive``: the paper's protocol, the reference: compare mode (one study per cell),
  random search over the study file's grids (the ``paper`` sampler), no pruning, cells x trials.
- ``tpe``: compare mode with TPE (start-up sized to the study) and the median pruner, the
  quick study's default, cells x trials.
- ``search``: search mode (the cell is a searched parameter of one study), TPE and the median
  pruner, cells x trials trials.
- ``halving``: search mode under successive halving across cells (studies/cells_halving.toml:
  rungs at max-steps / 10 x 3^k, the best third continues), cells x trials trials.
- ``staged SCHEDULE`` (``--staged 0.1:4,0.3:1``, repeatable): the paper's staged filter across
  cells, replayed on the exhaustive run's own curves without training: every cell's trials to
  10% of max-steps, the best 4 cells' trials on to 30%, the best one's to the end. It is exact
  (rnnopt's trainer does not depend on where a trial will stop), so any number of schedules
  cost nothing beyond the exhaustive run; ``--replay FILE --staged ...`` tries more later.

Compute is the training steps the trials actually ran (pruned and diverged trials stop early).
Compare-mode strategies run their cells round-robin (trial 1 of every cell, then trial 2, ...).
After every trial a strategy names the cell of its best trial so far; "steps to name" is the
compute after which it names the exhaustive run's best cell (same seed) and keeps naming it to
its end (``inf``: never or not at its end); it is optimistic, since a strategy cannot know
when it has found the cell, so the table also gives each strategy's whole compute over the
exhaustive run's (actual steps both). Where the top cells are within noise of each other, naming
"the" best cell is partly luck, so the table also gives the gap: how far below the exhaustive
run's best the cell a strategy names at its end scored in the exhaustive run (0 when it is the
same cell), and how far the best value the strategy itself found falls short of the exhaustive
run's best (negative: it found a better setting). ``--out FILE`` keeps every curve;
``--replay FILE`` prints the table again from it without training. Medians over seeds; the
target: the reference cell named with at most a quarter of the exhaustive compute.

This is not a test: it trains cells x trials x strategies x seeds models. At the quick study's
budget (10 cells, 3 trials, 7,000 steps) one seed of all four strategies is about 2 hours of one
CPU core; see benchmarks/README.md for the recorded commands.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rnnopt import tasks as task_registry  # noqa: E402
from rnnopt._cli import run_cli  # noqa: E402
from rnnopt.hpo import space as space_mod  # noqa: E402
from rnnopt.hpo import staged as staged_mod  # noqa: E402
from rnnopt.hpo.objective import make_objective  # noqa: E402
from rnnopt.hpo.samplers import make_pruner, make_sampler  # noqa: E402
from rnnopt.hpo.staged import trial_score  # noqa: E402
from rnnopt.hpo.studyfile import load_study_file  # noqa: E402

STRATEGIES = ("exhaustive", "tpe", "search", "halving")
# strategy -> (mode, sampler, pruner, pruner options given max_steps and eval_interval)
SETUPS: dict[str, tuple[str, str, str]] = {
    "exhaustive": ("compare", "paper", "none"),
    "tpe": ("compare", "tpe", "median"),
    "search": ("search", "tpe", "median"),
    "halving": ("search", "tpe", "successive-halving"),
}

Curve = list[tuple[int, str | None, float | None]]  # (steps spent, named cell, its best value)
Run = dict[str, Any]  # {"curve": Curve, "best": {cell: its best value}}


def run_strategy(
    strategy: str,
    task: str,
    cells: list[str],
    seed: int,
    trials: int,
    max_steps: int,
    study_file: str,
    eval_batches: int | None,
) -> Run:
    """Run one strategy; return the curve after each trial and each cell's best value."""
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("rnnopt").setLevel(logging.WARNING)
    mode, sampler, pruner = SETUPS[strategy]
    sf = load_study_file(study_file)
    per_task = dict(sf.task_train.get(task, {}))
    size = {k: per_task.pop(k) for k in ("hidden_size", "param_budget") if k in per_task}
    task_options = {**sf.train.get("task_options", {}), **per_task.pop("task_options", {})}
    eval_interval = max(1, max_steps // 10)
    base = {
        **sf.train, **per_task, "task_options": task_options, "eval_batches": eval_batches,
        "max_steps": max_steps, "eval_interval": eval_interval, "device": "cpu",
        "checkpoint_every": 10**6,  # no checkpoints: nothing is resumed here
    }  # fmt: skip
    info = task_registry.get(task, **task_options)
    direction, metric = info.direction, info.metric
    pick = max if direction == "maximize" else min
    pruner_options = {"min_resource": eval_interval} if pruner == "successive-halving" else {}
    grid = sampler == "paper"

    def study_for(group: list[str], n: int, offset: int) -> tuple[Any, Any]:
        resolved = sf.space.resolved(group, grid_mode=grid, search=mode == "search", size=size)
        study = optuna.create_study(
            direction=direction,
            sampler=make_sampler(sampler, seed * 1000 + offset, n_trials=n),
            pruner=make_pruner(
                pruner, max_steps=max_steps, eval_interval=eval_interval, options=pruner_options
            ),
        )
        objective = make_objective(
            task=task, cell=group[0] if mode == "compare" else None, space=resolved,
            base=base, metric=metric, artifact_store=None, seed=seed * 1000 + offset,
        )  # fmt: skip
        return study, objective

    if mode == "compare":
        runs = [study_for([c], trials, i) for i, c in enumerate(cells)]
        order = [runs[i] for _ in range(trials) for i in range(len(cells))]
    else:
        run = study_for(cells, trials * len(cells), 0)
        order = [run] * (trials * len(cells))
    curve: Curve = []
    spent = 0
    best: dict[str, float] = {}
    trials: list[dict[str, Any]] = []
    for study, objective in order:
        study.optimize(objective, n_trials=1, catch=(Exception,))
        t = study.trials[-1]
        steps = int(t.user_attrs.get("steps", max(t.intermediate_values, default=0)))
        spent += steps
        cell = t.user_attrs.get("cell")
        if t.value is not None and math.isfinite(t.value) and cell:
            best[cell] = pick(best.get(cell, t.value), t.value)
        named = pick(best, key=lambda c: best[c]) if best else None
        curve.append((spent, named, best.get(named) if named else None))
        values = sorted(t.intermediate_values.items())
        trials.append({"cell": cell, "steps": steps, "values": values, "value": t.value})
    return {"curve": curve, "best": best, "trials": trials}


def parse_schedule(text: str) -> list[tuple[float, int]]:
    """``"0.1:4,0.3:1"`` -> [(0.1, 4), (0.3, 1)] (rnnopt.hpo.staged's, named for this flag)."""
    return staged_mod.parse_schedule(text, label="--staged")


def staged(trials: list[dict[str, Any]], schedule: list[tuple[float, int]], max_steps: int,
           maximize: bool) -> Run:  # fmt: skip
    """Replay the paper's staged filter across cells on an exhaustive run's curves (no training).

    Every cell's trials train to the first stage's steps; the cells whose best value so far is
    best (as many as the stage keeps) go on to the next stage, and the last ones to max-steps.
    A trial's value at a stage is the best it reported up to that step (at its end, its own
    value, which the trainer may take on more validation data): the rule of the study mode
    ``pruner = "staged"`` (rnnopt.hpo.staged.trial_score). So this is exact where
    training does not depend on where it will stop (rnnopt's trainer has no schedule tied to
    max-steps); each stage falls on the evaluation nearest its fraction (evaluations every
    tenth of max-steps), as in the study mode. Compute is the steps the survivors' trials ran
    (a trial that stopped early, diverged or pruned, counts the steps it ran).
    """
    sign = 1 if maximize else -1
    by_cell: dict[str, list[dict[str, Any]]] = {}
    for t in trials:
        if t["cell"]:
            by_cell.setdefault(t["cell"], []).append(t)

    def value(cell: str, upto: int) -> float:
        return max(
            (trial_score(t["steps"], t["values"], t.get("value"), upto, sign)
             for t in by_cell[cell]), default=-math.inf,
        )  # fmt: skip

    alive, spent, reached = list(by_cell), 0, 0
    best: dict[str, float] = {}
    gates = staged_mod.gate_steps(schedule, max_steps, max(1, max_steps // 10))
    for upto, (_, keep) in zip([*gates, max_steps], [*schedule, (1.0, 1)], strict=True):
        spent += sum(min(t["steps"], upto) - min(t["steps"], reached)
                     for c in alive for t in by_cell[c])  # fmt: skip
        reached = upto
        scores = {c: value(c, upto) for c in alive}
        best |= {c: sign * v for c, v in scores.items()}
        alive = sorted(alive, key=scores.__getitem__, reverse=True)[:keep]
    named = alive[0] if alive and math.isfinite(best[alive[0]]) else None
    finite = {c: v for c, v in best.items() if math.isfinite(v)}
    return {"curve": [(spent, named, best.get(named) if named else None)], "best": finite}


def steps_to_name(curve: Curve, cell: str | None) -> float:
    """Compute after which the curve names ``cell`` and keeps naming it (inf: not at its end)."""
    if cell is None or not curve or curve[-1][1] != cell:
        return math.inf
    first = len(curve) - 1
    while first > 0 and curve[first - 1][1] == cell:
        first -= 1
    return curve[first][0]


def gap(reference: dict[str, float], cell: str | None) -> float:
    """How far the exhaustive run's best of ``cell`` is below its best cell's (0: the same).

    ``reference`` holds values where larger is better (negate a minimised metric first).
    """
    if cell is None or cell not in reference:
        return math.inf
    return max(reference.values()) - reference[cell]


def one_seed(args: tuple[Any, ...]) -> dict[str, Run]:
    strategies, task, cells, seed, trials, max_steps, study_file, eval_batches = args
    return {
        s: run_strategy(s, task, cells, seed, trials, max_steps, study_file, eval_batches)
        for s in strategies
    }


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="xml")
    p.add_argument("--cells", default=",".join(space_mod.PAPER_CELLS))
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--trials", type=int, default=3, help="trials per cell (search: x cells)")
    p.add_argument("--max-steps", type=int, default=7000)
    p.add_argument("--study-file", default=str(REPO / "rnnopt" / "studies" / "quick.toml"))
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--eval-batches", default="20", help="per evaluation, or all (whole split)")
    p.add_argument("--jobs", type=int, default=1, help="seeds run in parallel processes")
    p.add_argument("--out", help="also write every curve and cell's best as JSON here")
    p.add_argument("--replay", help="print the table of an earlier run's --out file; train nothing")
    p.add_argument("--staged", action="append", default=[], metavar="SCHEDULE",
                   help="also replay the staged filter across cells on the exhaustive run's "
                        "curves (no training), e.g. 0.1:4,0.3:1: at 10%% of max-steps keep 4 "
                        "cells, at 30%% keep 1; repeatable")  # fmt: skip
    args = p.parse_args(argv)
    try:
        schedules = {text: parse_schedule(text) for text in args.staged}
    except ValueError as exc:
        p.error(str(exc))
    if args.replay:
        try:
            record = json.loads(Path(args.replay).read_text())
        except (OSError, ValueError) as exc:
            p.error(f"--replay {args.replay}: {exc}")
        if schedules and "trials" not in record["seeds"][0]["exhaustive"]:
            p.error(f"--staged: {args.replay} has no per-trial curves (recorded before they were "
                    "kept); rerun with --out")  # fmt: skip
        report(argparse.Namespace(**record["args"]), record["seeds"], record["wall_s"], schedules)
        return
    strategies = [s for s in args.strategies.split(",") if s]
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown or "exhaustive" not in strategies:
        p.error(f"--strategies: {unknown or 'exhaustive missing'}; allowed {STRATEGIES}, "
                "exhaustive included (the reference)")  # fmt: skip
    cells = [c for c in args.cells.split(",") if c]
    eval_batches = None if args.eval_batches == "all" else int(args.eval_batches)
    jobs = [(strategies, args.task, cells, seed, args.trials, args.max_steps, args.study_file,
             eval_batches) for seed in range(args.seeds)]  # fmt: skip
    t0 = time.time()
    if args.jobs > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            results = pool.map(one_seed, jobs)
    else:
        results = [one_seed(job) for job in jobs]
    wall = time.time() - t0
    if args.out:
        record = {"args": vars(args), "wall_s": wall, "seeds": results}
        Path(args.out).write_text(json.dumps(record))
    report(args, results, wall, schedules)


def report(args: argparse.Namespace, results: list[dict[str, Run]], wall: float,
           schedules: dict[str, list[tuple[float, int]]] | None = None) -> None:  # fmt: skip
    """Print the run's table: compute, naming, and how good the named cell and value are."""
    strategies = [s for s in args.strategies.split(",") if s]
    maximize = task_registry.get(args.task).direction == "maximize"
    sign = 1 if maximize else -1
    for text, schedule in (schedules or {}).items():
        strategies.append(f"staged {text}")
        for res in results:
            res[strategies[-1]] = staged(
                res["exhaustive"]["trials"], schedule, args.max_steps, maximize
            )
    print(
        f"{args.task}, cells {args.cells}, {args.trials} trials per cell, "
        f"{args.max_steps} steps, study file {args.study_file}, {args.seeds} seeds, "
        f"{wall:.0f} s wall\n"
    )
    print(
        "| strategy | steps (median) | total / exhaustive (median) | named the reference cell "
        "| steps to name it (median) | that / exhaustive (median) "
        "| gap of the named cell (median, max) | best value short of exhaustive's (median, max) "
        "| per seed: named cell, steps to name / total |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for s in strategies:
        totals, needed, ratios, total_ratios, gaps, shorts, per_seed = [], [], [], [], [], [], []
        for res in results:
            ref_curve = res["exhaustive"]["curve"]
            ref_best = {c: sign * v for c, v in res["exhaustive"]["best"].items()}
            curve = res[s]["curve"]
            total = curve[-1][0]
            need = steps_to_name(curve, ref_curve[-1][1])
            totals.append(total)
            needed.append(need)
            ratios.append(need / ref_curve[-1][0])
            total_ratios.append(total / ref_curve[-1][0])
            gaps.append(gap(ref_best, curve[-1][1]))
            found = curve[-1][2]
            shorts.append(max(ref_best.values()) - sign * found if found is not None else math.inf)
            per_seed.append(f"{curve[-1][1]} {need:g}/{total}")
        hits = sum(math.isfinite(n) for n in needed)
        print(
            f"| {s} | {statistics.median(totals):.0f} | {statistics.median(total_ratios):.2f} | "
            f"{hits}/{len(results)} | "
            f"{statistics.median(needed):g} | {statistics.median(ratios):.2f} | "
            f"{statistics.median(gaps):.3g}, {max(gaps):.3g} | "
            f"{statistics.median(shorts):.3g}, {max(shorts):.3g} | "
            f"{'; '.join(per_seed)} |"
        )


if __name__ == "__main__":
    sys.exit(run_cli(main))
