"""The cross-architecture report: Table 1 beside the paper, importance, ablations, plots.

``python -m rnnopt.report --storage URL|--storage-env VAR [--task T ...] [--format md|html|csv]
[--out DIR]``

Reads rnnopt's compare and search studies (``rnnopt.schema.is_cell_study``) through Optuna's API,
groups their trials by (task, cell) (in search mode the cell is the trial's ``cell`` parameter)
and writes:

- Table 1 (cells x tasks): our best validation value beside the published one (rnnopt.paper);
- per cell and task, hyperparameter importance (fANOVA by default, as in Greff et al.);
- an ablation summary: LSTM against LSTM-i/-o/-f/-b, gate parameters True vs False, forget bias;
- PNG plots: validation curves, best value vs compute (training steps), importance bars;
- warnings: a best value whose parameter sits at the edge of its range; too few completed trials.
"""

from __future__ import annotations

import argparse
import csv
import html
import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from rnnopt import confirm as confirm_mod
from rnnopt import paper, schema, userdata
from rnnopt import stats as rnnopt_stats
from rnnopt.errors import ConfigError, StorageError
from rnnopt.space import GATE_NAMES
from rnnopt.storage import (
    DEFAULT_URL,
    add_storage_arguments,
    existing_storage,
    mask_url,
    open_existing,
    storage_url,
)

__all__ = [
    "Group",
    "Report",
    "build_report",
    "load_groups",
    "main",
    "markdown_table",
    "write_report",
]

# Named, not __name__: run as `python -m` this module is __main__ (__mp_main__ in workers).
logger = logging.getLogger("rnnopt.report")

FORMATS = ("md", "html", "csv")
IMPORTANCE_METHODS = ("fanova", "ped-anova", "mdi")
GATE_PARAMS = GATE_NAMES
LSTM_ABLATIONS = ("lstm-i", "lstm-o", "lstm-f", "lstm-b")
ALL_CELLS = "all cells"  # the importance row of a task's trials pooled, the cell a parameter
# A best value within this fraction of its range (log-scaled for log ranges) is "at the edge".
EDGE_FRACTION = 0.02


@dataclass
class Group:
    """All trials of one (task, cell) pair, across every study that holds them."""

    task: str
    cell: str
    direction: str  # "maximize" | "minimize"
    metric: str
    studies: list[str] = field(default_factory=list)
    trials: list[FrozenTrial] = field(default_factory=list)
    # Retrained best settings (rnnopt/confirm.py); never part of the search's trials above.
    confirmations: list[FrozenTrial] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.task}/{self.cell}"

    @property
    def complete(self) -> list[FrozenTrial]:
        return [
            t for t in self.trials
            if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)
        ]

    def count(self, state: TrialState) -> int:
        return sum(1 for t in self.trials if t.state == state)

    @property
    def best(self) -> FrozenTrial | None:
        done = self.complete
        if not done:
            return None
        pick = max if self.direction == "maximize" else min
        return pick(done, key=lambda t: t.value)

    @property
    def steps(self) -> int:
        return sum(_int_attr(t, "steps") for t in self.trials)

    def median_top10(self) -> float | None:
        values = sorted((t.value for t in self.complete), reverse=self.direction == "maximize")
        if not values:
            return None
        return median(values[: math.ceil(len(values) / 10)])

    def better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "maximize" else a < b


@dataclass
class Report:
    """Everything the report shows, as data (rendered by :func:`write_report`)."""

    storage: str
    groups: dict[tuple[str, str], Group]
    tasks: list[str]
    cells: list[str]
    importance: dict[tuple[str, str], dict[str, float]]
    importance_method: str
    ablation: list[dict[str, Any]]
    warnings: list[str]
    notes: list[str]
    min_trials: int
    # The in-memory studies the importance was computed on (for Optuna's importance plot).
    importance_studies: dict[tuple[str, str], optuna.Study] = field(default_factory=dict)

    def leaderboard(self) -> list[dict[str, Any]]:
        rows = []
        for (task, cell), g in sorted(self.groups.items()):
            best = g.best
            rows.append({
                "task": task, "cell": cell, "direction": g.direction, "metric": g.metric,
                "n_trials": len(g.trials), "n_complete": len(g.complete),
                "n_pruned": g.count(TrialState.PRUNED), "n_failed": g.count(TrialState.FAIL),
                "best_value": None if best is None else best.value,
                "median_top10": g.median_top10(),
                "best_test": None if best is None else _float_attr(best, "test_metric"),
                "steps": g.steps,
            })
        return rows

    def table1(self) -> list[dict[str, Any]]:
        """One row per (cell, task): our best value and the paper's, for the Table 1 layout."""
        rows = []
        for cell in self.cells:
            for task in self.tasks:
                g = self.groups.get((task, cell))
                best = None if g is None else g.best
                rows.append({
                    "cell": cell, "task": task,
                    "ours": None if best is None else best.value,
                    "metric": None if g is None else g.metric,
                    "n_complete": 0 if g is None else len(g.complete),
                    "paper": paper.paper_value(cell, task),
                })
        return rows


def _int_attr(trial: FrozenTrial, key: str) -> int:
    value = trial.user_attrs.get(key)
    return int(value) if isinstance(value, int | float) and math.isfinite(value) else 0


def _float_attr(trial: FrozenTrial, key: str) -> float | None:
    value = trial.user_attrs.get(key)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def load_groups(
    storage_url: str | None, tasks: Sequence[str] | None = None
) -> dict[tuple[str, str], Group]:
    """Group every trial of every rnnopt study at ``storage_url`` by (task, cell).

    A task studied on the user's files is named with its data (``userdata.data_label``, e.g.
    ``text (corpus.txt, 3fa2b1c9)``), so two data sets of one task stay apart; ``tasks``
    selects by the task's own name (``text`` selects every data set of it)."""
    storage = open_existing(storage_url)
    summaries = [
        s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
        if schema.is_cell_study(s.user_attrs)
    ]
    if not summaries:
        raise StorageError(
            f"no rnnopt studies in {mask_url(storage_url or DEFAULT_URL)!r} "
            "(no compare or search study)"
        )
    available = sorted({str(s.user_attrs["rnnopt.task"]) for s in summaries})
    if tasks:
        unknown = [t for t in tasks if t not in available]
        if unknown:
            raise ConfigError(
                f"unknown task {unknown[0]!r}: this storage has studies for {', '.join(available)}"
            )
    groups: dict[tuple[str, str], Group] = {}
    for summary in summaries:
        attrs = summary.user_attrs
        if tasks and str(attrs[schema.TASK]) not in tasks:
            continue
        task = userdata.data_label(str(attrs[schema.TASK]), attrs.get(schema.DATA),
                                   attrs.get(schema.TRAIN))
        direction = str(attrs.get("rnnopt.direction") or summary.direction.name.lower())
        metric = str(attrs.get("rnnopt.metric") or "value")
        study_cell = str(attrs.get("rnnopt.cell") or "*")
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        for trial in study.get_trials(deepcopy=False):
            cell = study_cell
            if cell == "*":
                cell = str(trial.params.get("cell") or trial.user_attrs.get("cell") or "?")
            group = groups.setdefault(
                (task, cell), Group(task=task, cell=cell, direction=direction, metric=metric)
            )
            if summary.study_name not in group.studies:
                group.studies.append(summary.study_name)
            if confirm_mod.is_confirmation(trial):
                group.confirmations.append(trial)
            else:
                group.trials.append(trial)
    return groups


def _evaluator(method: str) -> optuna.importance.BaseImportanceEvaluator:
    if method == "fanova":
        return optuna.importance.FanovaImportanceEvaluator(seed=0)
    if method == "ped-anova":
        return optuna.importance.PedAnovaImportanceEvaluator()
    if method == "mdi":
        return optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=0)
    raise ConfigError(
        f"unknown importance method {method!r}; allowed: {', '.join(IMPORTANCE_METHODS)}"
    )


def _trial_study(
    pairs: Sequence[tuple[str, FrozenTrial]], direction: str, *, with_cell: bool
) -> optuna.Study:
    """An in-memory study of completed trials (for Optuna's importance and plots); with
    ``with_cell`` the cell becomes a categorical parameter, so that trials of several cells
    (one task's compare studies) are one study."""
    cells = sorted({c for c, _ in pairs})
    study = optuna.create_study(direction=direction)
    for cell, t in pairs:
        params = {k: v for k, v in t.params.items() if k != "cell"}
        dists = {k: t.distributions[k] for k in params}
        if with_cell:
            params["cell"], dists["cell"] = cell, CategoricalDistribution(cells)
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists,
                                                  value=t.value))
    return study


def _importance(study: optuna.Study, method: str) -> dict[str, float]:
    """Normalised hyperparameter importance over ``study``'s completed trials."""
    importances = optuna.importance.get_param_importances(
        study, evaluator=_evaluator(method), normalize=True
    )
    return {k: float(v) for k, v in importances.items()}


def _edge_warning(name: str, value: Any, dist: BaseDistribution) -> str | None:
    if isinstance(dist, FloatDistribution | IntDistribution):
        low, high = float(dist.low), float(dist.high)
        if high <= low:
            return None
        if dist.log:
            pos = (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
        else:
            pos = (value - low) / (high - low)
        if pos <= EDGE_FRACTION or pos >= 1 - EDGE_FRACTION:
            side = "lower" if pos <= EDGE_FRACTION else "upper"
            return f"{name}={value:g} sits at the {side} edge of [{low:g}, {high:g}]"
        return None
    if isinstance(dist, CategoricalDistribution):
        choices = dist.choices
        numeric = all(isinstance(c, int | float) and not isinstance(c, bool) for c in choices)
        if numeric and len(choices) >= 3 and value in (min(choices), max(choices)):
            side = "lower" if value == min(choices) else "upper"
            return (f"{name}={value:g} sits at the {side} edge of the grid "
                    f"{{{', '.join(f'{c:g}' for c in sorted(choices))}}}")
    return None


def _warnings(groups: dict[tuple[str, str], Group], min_trials: int) -> list[str]:
    out = []
    for (task, cell), g in sorted(groups.items()):
        n = len(g.complete)
        if n < min_trials:
            out.append(
                f"{task}/{cell}: only {n} completed trial{'s' if n != 1 else ''} "
                f"(< {min_trials}): too few to compare"
            )
        best = g.best
        if best is None or n < 2:
            continue
        for name, value in sorted(best.params.items()):
            dist = best.distributions.get(name)
            msg = None if dist is None else _edge_warning(name, value, dist)
            if msg:
                out.append(f"{task}/{cell}: best trial #{best.number}: {msg}; widen the range")
    return out


def _ablation_row(
    g: Group, factor: str, cell: str, level_a: str, a: list[float], level_b: str, b: list[float]
) -> dict[str, Any]:
    best_a, best_b = _best(a, g.direction), _best(b, g.direction)
    verdict, interval = rnnopt_stats.effect(a, b, g.direction)
    return {
        "task": g.task, "cell": cell, "factor": factor,
        "level_a": f"{level_a} (n={len(a)})", "best_a": best_a,
        "level_b": f"{level_b} (n={len(b)})", "best_b": best_b,
        "delta": best_b - best_a, "interval": interval, "effect": verdict,
    }


def _ablation(groups: dict[tuple[str, str], Group]) -> list[dict[str, Any]]:
    """b against a per factor; ``effect`` is better/worse only when the 95% bootstrap interval
    of the difference of best values (trials resampled) excludes zero (rnnopt.stats)."""
    rows: list[dict[str, Any]] = []
    tasks = sorted({task for task, _ in groups})
    for task in tasks:
        base = groups.get((task, "lstm"))
        if base is None or not base.complete:
            continue
        base_values = [t.value for t in base.complete]
        for variant in LSTM_ABLATIONS:
            g = groups.get((task, variant))
            if g is None or not g.complete:
                continue
            rows.append(_ablation_row(g, "cell vs lstm", variant, "lstm", base_values, variant,
                                      [t.value for t in g.complete]))
    for (_, cell), g in sorted(groups.items()):
        done = g.complete
        for gate in GATE_PARAMS:
            on = [t.value for t in done if t.params.get(gate) is True]
            off = [t.value for t in done if t.params.get(gate) is False]
            if on and off:
                rows.append(_ablation_row(g, gate, cell, "True", on, "False", off))
        fb = [(t.params["forget_bias"], t.value) for t in done
              if isinstance(t.params.get("forget_bias"), int | float)]
        if len({v for v, _ in fb}) >= 2:
            cut = median(v for v, _ in fb)
            low = [val for v, val in fb if v <= cut]
            high = [val for v, val in fb if v > cut]
            if low and high:
                rows.append(_ablation_row(g, "forget_bias", cell, f"<= {cut:g}", low,
                                          f"> {cut:g}", high))
    return rows


def _best(values: Iterable[float], direction: str) -> float:
    return max(values) if direction == "maximize" else min(values)


def _cell_order(cells: Iterable[str]) -> list[str]:
    cells = set(cells)
    known = [c for c in paper.CELL_ORDER if c in cells]
    return known + sorted(cells - set(known))


def build_report(
    storage_url: str | None,
    *,
    tasks: Sequence[str] | None = None,
    min_trials: int = 10,
    importance: str = "fanova",
) -> Report:
    """Read the rnnopt studies at ``storage_url`` and compute every table of the report."""
    if importance not in IMPORTANCE_METHODS:
        raise ConfigError(
            f"unknown importance method {importance!r}; allowed: {', '.join(IMPORTANCE_METHODS)}"
        )
    if min_trials < 2:
        raise ConfigError(f"min_trials must be at least 2, got {min_trials}")
    groups = load_groups(storage_url, tasks)
    notes: list[str] = []
    imp: dict[tuple[str, str], dict[str, float]] = {}
    imp_studies: dict[tuple[str, str], optuna.Study] = {}
    candidates = {key: ([(g.cell, t) for t in g.complete], g) for key, g in groups.items()}
    # Across the cells of a task (the cell a parameter): the default study's 3 trials per
    # cell are too few per cell, but its ten cells together are not.
    for task in sorted({t for t, _ in groups}):
        mine = [g for (t, _), g in sorted(groups.items()) if t == task]
        if len(mine) > 1:
            pairs = [(g.cell, t) for g in mine for t in g.complete]
            candidates[(task, ALL_CELLS)] = (pairs, mine[0])
    for key, (pairs, g) in sorted(candidates.items()):
        name = f"{key[0]}/{key[1]}"
        if len(pairs) < min_trials:
            notes.append(
                f"{name}: importance not computed ({len(pairs)} completed trials, "
                f"need {min_trials})"
            )
            continue
        try:
            study = _trial_study(pairs, g.direction, with_cell=key[1] == ALL_CELLS)
            values = _importance(study, importance)
        except (ValueError, RuntimeError) as exc:
            notes.append(f"{name}: importance not computed ({exc})")
            continue
        if values:
            imp[key], imp_studies[key] = values, study
        else:
            notes.append(f"{name}: importance not computed (no parameter varies)")
    all_tasks = sorted({t for t, _ in groups})
    ordered_tasks = [t for t in paper.TABLE1_TASKS if t in all_tasks]
    ordered_tasks += [t for t in all_tasks if t not in ordered_tasks]
    if "ptb" in ordered_tasks:
        notes.append(
            "ptb: our value is validation perplexity (lower is better); the paper's PTB column "
            "has an unclear unit (higher is better): compare orderings, not values"
        )
    return Report(
        storage=mask_url(existing_storage(storage_url)), groups=groups, tasks=ordered_tasks,
        cells=_cell_order(c for _, c in groups), importance=imp, importance_method=importance,
        importance_studies=imp_studies,
        ablation=_ablation(groups), warnings=_warnings(groups, min_trials), notes=notes,
        min_trials=min_trials,
    )


# --- rendering ---------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _rank_agreement(report: Report, task: str) -> str | None:
    """Kendall's tau between our cell ordering and the paper's on one task, with its 95%
    bootstrap interval over each cell's trials; a line saying why when it cannot have one."""
    samples, theirs, cells = [], [], []
    for cell in report.cells:
        g = report.groups.get((task, cell))
        value = paper.paper_value(cell, task)
        if g is not None and g.complete and value is not None:
            samples.append([t.value for t in g.complete])
            theirs.append(value)  # the paper's Table 1 is "higher is better" throughout
            cells.append(cell)
            direction = g.direction
    if len(samples) < 3:
        return None
    result = rnnopt_stats.rank_correlation_interval(samples, theirs, direction)
    if result is None:
        few = [c for c, s in zip(cells, samples, strict=True) if len(s) < 2]
        why = f"cells with one completed trial ({', '.join(few)})" if few else "no spread"
        return f"{task}: rank correlation with the paper not given: {why} leave no interval"
    tau, low, high = result
    return (f"{task}: Kendall tau of our ordering vs the paper's over {len(samples)} cells = "
            f"{tau:.2f} (95% interval {low:.2f} to {high:.2f}, bootstrap over trials)")


def table1_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    """Header and rows of Table 1 (cells x tasks), each cell 'ours (paper P)'."""
    header = ["cell", *[paper.TABLE1_TASKS.get(t, t) for t in report.tasks]]
    rows = []
    for cell in report.cells:
        row = [cell]
        for task in report.tasks:
            g = report.groups.get((task, cell))
            ours = None if g is None or g.best is None else g.best.value
            theirs = paper.paper_value(cell, task)
            text = _fmt(ours)
            if theirs is not None:
                text += f" (paper {theirs:g})"
            row.append(text)
        rows.append(row)
    return header, rows


def _sections(report: Report, plots: dict[str, list[Path]], out: Path) -> list[tuple[str, Any]]:
    """The report as (title, content) with content a table (header, rows), lines, or images."""
    sections: list[tuple[str, Any]] = []
    with_paper = any(paper.paper_value(c, t) is not None
                     for c in report.cells for t in report.tasks)
    sections.append(("Table 1: best validation value per cell and task"
                     + (" (paper in brackets)" if with_paper else ""), table1_rows(report)))
    confirmed = confirm_mod.report_rows(report.groups, report.tasks, report.cells)
    if confirmed[1]:
        sections.append(("Confirmation: each cell's best setting retrained with new seeds (mean "
                         "and 95% interval; a difference from the best cell is real only when "
                         "its interval excludes zero)", confirmed))
    lines = [r for t in report.tasks if (r := _rank_agreement(report, t))]
    ptb = report.groups
    ptb_rows = []
    for cell in report.cells:
        g = ptb.get(("ptb", cell))
        if g is None or g.best is None:
            continue
        ptb_rows.append([cell, _fmt(_float_attr(g.best, "test_metric")),
                         _fmt(paper.PTB_DROPOUT_TEST_PERPLEXITY.get(cell))])
    if lines:
        sections.append(("Ordering against the paper", {"lines": lines}))
    if ptb_rows:
        sections.append(("PTB test perplexity of the best trial (paper: with dropout, ~20M "
                         "parameters)", (["cell", "ours", "paper"], ptb_rows)))
    lb = report.leaderboard()
    cols = ["task", "cell", "direction", "metric", "n_trials", "n_complete", "n_pruned",
            "n_failed", "best_value", "median_top10", "best_test", "steps"]
    sections.append(("Leaderboard", (cols, [[_fmt(r[c]) for c in cols] for r in lb])))
    if report.importance:
        names = sorted({p for v in report.importance.values() for p in v})
        rows = [[f"{t}/{c}", *[_fmt(v.get(p)) for p in names]]
                for (t, c), v in sorted(report.importance.items())]
        sections.append((f"Hyperparameter importance ({report.importance_method})",
                         (["task/cell", *names], rows)))
    if report.ablation:
        cols = ["task", "cell", "factor", "level_a", "best_a", "level_b", "best_b", "delta",
                "interval", "effect"]
        sections.append(("Ablations (b against a: better or worse only when the 95% bootstrap "
                         "interval of the difference of best values excludes zero)",
                         (cols, [[_fmt(r[c]) for c in cols] for r in report.ablation])))
    sections.append(("Warnings", {"lines": report.warnings or ["none"]}))
    if report.notes:
        sections.append(("Notes", {"lines": report.notes}))
    for kind, paths in plots.items():
        if paths:
            sections.append((kind, {"images": [p.relative_to(out).as_posix() for p in paths]}))
    return sections


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table (with its ``|---|`` row); ``|`` in cells escaped."""

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *map(line, rows)])


def _to_markdown(sections: list[tuple[str, Any]], storage: str) -> str:
    out = ["# rnnopt report", "", f"Storage: `{storage}`", ""]
    for title, content in sections:
        out += [f"## {title}", ""]
        if isinstance(content, tuple):
            out.append(markdown_table(*content))
        elif "lines" in content:
            out += [f"- {line}" for line in content["lines"]]
        else:
            out += [f"![{Path(p).stem}]({p})" for p in content["images"]]
        out.append("")
    return "\n".join(out)


def _to_html(sections: list[tuple[str, Any]], storage: str) -> str:
    e = html.escape
    out = ["<!doctype html>", "<html><head><meta charset='utf-8'><title>rnnopt report</title>",
           "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
           "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
           "td:first-child{text-align:left}img{max-width:100%;margin:4px}</style></head><body>",
           "<h1>rnnopt report</h1>", f"<p>Storage: <code>{e(storage)}</code></p>"]
    for title, content in sections:
        out.append(f"<h2>{e(title)}</h2>")
        if isinstance(content, tuple):
            header, rows = content
            out.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows]
            out.append("</table>")
        elif "lines" in content:
            out.append("<ul>" + "".join(f"<li>{e(x)}</li>" for x in content["lines"]) + "</ul>")
        else:
            out += [f"<img src='{e(p)}' alt='{e(Path(p).stem)}'>" for p in content["images"]]
    out.append("</body></html>")
    return "\n".join(out)


def _write_csv(path: Path, rows: list[dict[str, Any]], columns: Sequence[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow({c: "" if row.get(c) is None else row.get(c) for c in columns})
    return path


PLOT_SIZE = (10.0, 6.0)  # inches at PLOT_DPI: 1000 x 600 pixels
PLOT_DPI = 100


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
        study = _trial_study([(cell, t) for t in sorted(g.complete, key=lambda t: t.number)],
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
            spent += _int_attr(t, "steps")
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
                study, evaluator=_evaluator(report.importance_method)
            )
            n_params = len(report.importance[(task, cell)])
            ax.figure.set_size_inches(PLOT_SIZE[0], 1.5 + 0.5 * n_params)
            ax.set_title(f"{task}/{cell}: importance ({report.importance_method})")
            keep("Importance",
                 _save(ax.figure, plot_dir / f"importance_{_safe(task)}_{_safe(cell)}.png"))
    return made


def write_report(
    report: Report, out: str | Path, *, fmt: str = "html", plots: bool = True
) -> list[Path]:
    """Write the report in ``fmt`` (md: report.md, html: index.html, csv: *.csv) plus PNG plots."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown report format {fmt!r}; allowed: {', '.join(FORMATS)}")
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create output directory {str(out)!r}: {exc.strerror}") from exc
    made = write_plots(report, out) if plots else {}
    files = [p for paths in made.values() for p in paths]
    if fmt == "csv":
        files.append(_write_csv(out / "table1.csv", report.table1(),
                                ["cell", "task", "ours", "paper", "metric", "n_complete"]))
        lb = report.leaderboard()
        files.append(_write_csv(out / "leaderboard.csv", lb, list(lb[0]) if lb else ["task"]))
        imp_rows = [{"task": t, "cell": c, "param": p, "importance": v}
                    for (t, c), vals in sorted(report.importance.items()) for p, v in vals.items()]
        files.append(_write_csv(out / "importance.csv", imp_rows,
                                ["task", "cell", "param", "importance"]))
        files.append(_write_csv(out / "ablation.csv", report.ablation,
                                ["task", "cell", "factor", "level_a", "best_a", "level_b",
                                 "best_b", "delta", "interval", "effect"]))
        files.append(_write_csv(out / "warnings.csv", [{"warning": w} for w in report.warnings],
                                ["warning"]))
        return files
    sections = _sections(report, made, out)
    if fmt == "md":
        path = out / "report.md"
        path.write_text(_to_markdown(sections, report.storage), encoding="utf-8")
    else:
        path = out / "index.html"
        path.write_text(_to_html(sections, report.storage), encoding="utf-8")
    files.append(path)
    return files


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
    for warning in report.warnings:
        print(f"warning: {warning}")
    print(f"wrote {len(files)} files to {args.out}")
    return 0


if __name__ == "__main__":
    import sys

    from rnnopt._cli import run_cli

    sys.exit(run_cli(main))
