"""HPO efficiency: how many training steps TPE + Hyperband needs to reach the best validation
accuracy that the paper's random protocol (random search over its grids, no pruning) reaches
with a budget of N steps; plus a worker's resident memory over 50 consecutive trials.

    python benchmarks/hpo.py [--tasks xml,arith] [--seeds 3] [--trials 12] [--max-steps 150]
                             [--rss-trials 50] [--out benchmarks]

Both searches run in memory (Optuna's InMemoryStorage) through rnnopt's own objective, on a
small LSTM. Steps spent = the sum of the training steps every trial actually ran (pruned and
diverged ones stop early); the ratio divides by the paper protocol's actual steps, not by the
nominal trials x max-steps. Each evaluation reads ``--eval-batches`` validation batches
(default 20; ``all``: the whole split), the values the two protocols are compared on.
Writes ``hpo_curves.png`` and prints Markdown for benchmarks/RESULTS.md ("HPO" section).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import optuna

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rnnopt._cli import run_cli  # noqa: E402
from rnnopt.hpo import space as space_mod  # noqa: E402
from rnnopt.hpo.objective import make_objective  # noqa: E402
from rnnopt.hpo.samplers import make_pruner, make_sampler  # noqa: E402
from rnnopt.hpo.studyfile import load_study_file  # noqa: E402


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class _NoStore:
    """Checkpoints are not needed in memory: drop them."""

    def write(self, *a, **k):  # type: ignore[no-untyped-def]
        pass

    def remove(self, *a, **k):  # type: ignore[no-untyped-def]
        pass


def run_search(
    task: str,
    sampler: str,
    pruner: str,
    seed: int,
    trials: int,
    max_steps: int,
    budget: float = float("inf"),
    *,
    study_file: str | None = None,
    cell: str = "lstm",
    eval_batches: int | None = 20,
):
    """Return [(steps spent so far, best value so far)] after each trial; stop after
    ``trials`` trials or once ``budget`` steps are spent. Without ``study_file``: the paper's
    space on an LSTM of 32 units (layers 1-2); with one: its space and training settings."""
    grid = sampler == "paper"
    train: dict = {}
    if study_file is None:
        sp = space_mod.parse_space({"hidden_size": 32, "layers": [1, 2]})
    else:
        sf = load_study_file(study_file)
        sp = sf.space
        train = {**sf.train, **sf.task_train.get(task, {})}
    resolved = sp.resolved([cell], grid_mode=grid, search=False)
    eval_interval = max(1, max_steps // 10)
    base = {
        "batch_size": 20,
        "unroll": 35,
        "cell_options": {},
        "task_options": {},
        **train,
        # whatever the study file says: this benchmark's budget, on CPU, no checkpoints
        "eval_batches": eval_batches,
        "max_steps": max_steps,
        "eval_interval": eval_interval,
        "device": "cpu",
        "checkpoint_every": 10**6,
    }
    study = optuna.create_study(
        direction="maximize",
        sampler=make_sampler(sampler, seed),
        pruner=make_pruner(pruner, max_steps=max_steps, eval_interval=eval_interval),
    )
    objective = make_objective(
        task=task,
        cell=cell,
        space=resolved,
        base=base,
        metric="accuracy",
        artifact_store=_NoStore(),
        seed=seed,
    )
    curve, spent, best = [], 0, float("-inf")
    for _ in range(trials):
        study.optimize(objective, n_trials=1, catch=(Exception,))
        t = study.trials[-1]
        spent += int(t.user_attrs.get("steps", max(t.intermediate_values, default=0)))
        if t.value is not None:
            best = max(best, t.value)
        curve.append((spent, best))
        if spent >= budget:
            break
    return curve


def steps_to_reach(curve, target: float) -> float:  # type: ignore[no-untyped-def]
    for spent, best in curve:
        if best >= target - 1e-9:
            return spent
    return float("inf")


def compare_one_seed(
    task: str, seed: int, trials: int, max_steps: int, study_file: str | None, cell: str,
    eval_batches: int | None = 20,
):  # type: ignore[no-untyped-def]
    """Both protocols for one seed: (paper curve, TPE+HB curve, TPE+HB steps to reach the paper
    protocol's final best)."""
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("rnnopt").setLevel(logging.WARNING)
    kw = {"study_file": study_file, "cell": cell, "eval_batches": eval_batches}
    paper = run_search(task, "paper", "none", seed, trials, max_steps, **kw)
    n_steps, target = paper[-1]
    # TPE + Hyperband gets the same step budget; count when it first matches.
    tpe = run_search(task, "tpe", "hyperband", seed, trials * 4, max_steps, budget=n_steps, **kw)
    tpe = [(s, b) for s, b in tpe if s <= n_steps] or tpe[:1]
    return paper, tpe, steps_to_reach(tpe, target)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default="xml,arith")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument(
        "--trials", type=int, default=12, help="paper protocol trials (N = trials*steps)"
    )
    p.add_argument("--max-steps", type=int, default=150)
    p.add_argument("--rss-trials", type=int, default=50)
    p.add_argument(
        "--study-file",
        default=None,
        help="take the space and training settings from this study file, e.g. "
        "rnnopt/studies/quick.toml (default: the paper's space, LSTM of 32 units)",
    )
    p.add_argument("--cell", default="lstm")
    p.add_argument(
        "--eval-batches",
        default="20",
        help="validation batches per evaluation, or all (the whole split); default 20",
    )
    p.add_argument("--jobs", type=int, default=1, help="seeds run in parallel processes")
    p.add_argument("--png", default="hpo_curves.png", help="file name of the curves")
    p.add_argument("--out", default=str(REPO / "benchmarks"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import torch

    torch.set_num_threads(1)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = [
        "| task | N (paper protocol's actual steps, median) | paper best (median) "
        "| TPE+HB steps to reach it (median) | ratio (median per seed) | per seed |",
        "|---|---|---|---|---|---|",
    ]
    tasks = [t for t in args.tasks.split(",") if t]
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        targets, needed, spent = [], [], []
        eval_batches = None if args.eval_batches == "all" else int(args.eval_batches)
        jobs = [(task, seed, args.trials, args.max_steps, args.study_file, args.cell,
                 eval_batches) for seed in range(args.seeds)]  # fmt: skip
        if args.jobs > 1:
            import multiprocessing

            with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
                results = pool.starmap(compare_one_seed, jobs)
        else:
            results = [compare_one_seed(*job) for job in jobs]
        for seed, (paper, tpe, need) in enumerate(results):
            n_steps, target = paper[-1]
            targets.append(target)
            needed.append(need)
            spent.append(n_steps)
            ax.step(
                *zip(*paper, strict=True),
                where="post",
                color="C0",
                alpha=0.6,
                label="paper random" if seed == 0 else None,
            )
            ax.step(
                *zip(*tpe, strict=True),
                where="post",
                color="C1",
                alpha=0.6,
                label="TPE + Hyperband" if seed == 0 else None,
            )
            print(
                f"{task} seed {seed}: paper best {target:.4f} at {n_steps} steps; "
                f"TPE+HB needs {need}",
                flush=True,
            )
        # The denominator: the steps the paper protocol actually ran (diverged trials stop
        # early), per seed; the median of the per-seed ratios.
        ratios = [need / n for need, n in zip(needed, spent, strict=True)]
        lines.append(
            f"| {task} | {statistics.median(spent):.0f} | {statistics.median(targets):.4f} | "
            f"{statistics.median(needed)} | {statistics.median(ratios):.2f} | "
            f"{', '.join(f'{x} of {n}' for x, n in zip(needed, spent, strict=True))} |"
        )
        ax.set_title(f"{task}: best valid accuracy vs training steps")
        ax.set_xlabel("training steps spent")
        ax.set_ylabel("best valid accuracy")
        ax.legend()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out / args.png, dpi=100)

    # Resident memory of one worker over consecutive trials.
    rss = []
    t0 = time.time()
    for i in range(args.rss_trials if args.rss_trials else 0):
        run_search("xml", "tpe", "none", 1000 + i, 1, 20)
        gc.collect()
        rss.append(_rss_mb())
    growth = max(rss[1:]) - rss[0] if len(rss) > 1 else 0.0
    lines.append("")
    if rss:
        lines.append(
            f"Worker RSS over {args.rss_trials} consecutive trials: after trial 1 "
            f"{rss[0]:.0f} MB, max later {max(rss):.0f} MB, growth {growth:.1f} MB "
            f"(target < 50 MB); {time.time() - t0:.0f} s; pid {os.getpid()}."
        )
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(run_cli(main))
