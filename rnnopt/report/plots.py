"""The report's PNG plots (matplotlib, loaded only when plots are written)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import optuna

from rnnopt.report.analysis import Report, evaluator, trial_study
from rnnopt.report.load import int_attr

__all__ = ["PLOT_DPI", "PLOT_SIZE", "write_plots"]

PLOT_SIZE = (10.0, 6.0)  # inches at PLOT_DPI: 1000 x 600 pixels
PLOT_DPI = 100


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=PLOT_DPI)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _curves(report: Report, task: str, path: Path) -> Path | None:
    """Every cell's validation curves in one figure, one panel per cell, shared axes."""
    import matplotlib.pyplot as plt

    cells = [c for c in report.cells if (g := report.groups.get((task, c)))
             and any(t.intermediate_values for t in g.trials)]
    if not cells:
        return None
    ncols = min(5, len(cells))
    nrows = math.ceil(len(cells) / ncols)
    fig, axes = plt.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False,
                             figsize=(max(PLOT_SIZE[0], 3.2 * ncols), 1.0 + 2.8 * nrows))
    metric = "value"
    for ax, cell in zip(axes.flat, cells, strict=False):
        g = report.groups[(task, cell)]
        metric, best = g.metric, g.best
        for t in g.trials:
            steps = sorted(t.intermediate_values)
            is_best = best is not None and t.number == best.number and t in g.complete
            ax.plot(steps, [t.intermediate_values[s] for s in steps],
                    color="tab:red" if is_best else "tab:blue", alpha=1.0 if is_best else 0.35,
                    linewidth=2 if is_best else 1)
        ax.set_title(f"{cell} ({len(g.trials)} trials)", fontsize="medium")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(cells):]:
        ax.set_visible(False)
    fig.supxlabel("training step")
    fig.supylabel(f"validation {metric}")
    fig.suptitle(f"{task}: validation curves per cell (best trial in red)")
    return _save(fig, path)


def _cell_studies(report: Report, task: str) -> list[optuna.Study]:
    """One in-memory study per cell of ``task``, named after the cell (for Optuna's plots)."""
    studies = []
    for cell in report.cells:
        g = report.groups.get((task, cell))
        if g is None or not g.complete:
            continue
        study = trial_study([(cell, t) for t in sorted(g.complete, key=lambda t: t.number)],
                             g.direction, with_cell=False)
        study.study_name = cell  # the legend label of optuna's multi-study plots
        studies.append(study)
    return studies


def _compute(report: Report, task: str, path: Path) -> Path | None:
    """Best value so far against training steps spent, one line per cell."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=PLOT_SIZE)
    metric = "value"
    for i, cell in enumerate(report.cells):
        g = report.groups.get((task, cell))
        if g is None or not g.complete:
            continue
        metric = g.metric
        spent, xs, ys, best = 0, [], [], None
        for t in sorted(g.trials, key=lambda t: (t.datetime_start is None, t.datetime_start,
                                                 t.number)):
            spent += int_attr(t, "steps")
            if t in g.complete and (best is None or g.better(t.value, best)):
                best = t.value
            if best is not None:
                xs.append(spent)
                ys.append(best)
        ax.step(xs, ys, where="post", label=cell, color=plt.get_cmap("tab10")(i % 10))
    if not ax.lines:
        plt.close(fig)
        return None
    ax.set(title=f"{task}: best validation {metric} vs training steps",
           xlabel="training steps spent (all trials)", ylabel=f"best {metric}")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def write_plots(report: Report, out: Path) -> dict[str, list[Path]]:
    """PNG plots under out/plots: per task, every cell's validation curves on shared axes,
    Optuna's optimization history and EDF of all cells on one axis each, best value vs compute;
    Optuna's importance plot per importance row."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    plot_dir = out / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    made: dict[str, list[Path]] = {"Validation curves": [], "Optimization history": [],
                                   "Empirical distribution of the validation value": [],
                                   "Best value vs compute": [], "Importance": []}

    def keep(kind: str, path: Path | None) -> None:
        if path is not None:
            made[kind].append(path)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for task in report.tasks:
            with plt.style.context("default"):  # optuna's plots switch to the ggplot style
                keep("Validation curves",
                     _curves(report, task, plot_dir / f"curves_{_safe(task)}.png"))
            studies = _cell_studies(report, task)
            if studies:
                metric = report.groups[(task, studies[0].study_name)].metric
                for kind, plot, name in (
                    ("Optimization history", optuna_plots.plot_optimization_history, "history"),
                    ("Empirical distribution of the validation value", optuna_plots.plot_edf,
                     "edf"),
                ):
                    ax = plot(studies, target_name=f"validation {metric}")
                    ax.figure.set_size_inches(*PLOT_SIZE)
                    ax.set_title(f"{task}: {ax.get_title()} ({len(studies)} cells)")
                    keep(kind, _save(ax.figure, plot_dir / f"{name}_{_safe(task)}.png"))
            with plt.style.context("default"):
                keep("Best value vs compute",
                     _compute(report, task, plot_dir / f"compute_{_safe(task)}.png"))
        for (task, cell), study in sorted(report.importance_studies.items()):
            ax = optuna_plots.plot_param_importances(
                study, evaluator=evaluator(report.importance_method)
            )
            n_params = len(report.importance[(task, cell)])
            ax.figure.set_size_inches(PLOT_SIZE[0], 1.5 + 0.5 * n_params)
            ax.set_title(f"{task}/{cell}: importance ({report.importance_method})")
            keep("Importance",
                 _save(ax.figure, plot_dir / f"importance_{_safe(task)}_{_safe(cell)}.png"))
    return made
