"""The search's results read back from the database: best genomes beside the known cells."""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from rnnopt import schema
from rnnopt import storage as st
from rnnopt.attrs import json_value
from rnnopt.errors import StorageError
from rnnopt.evolve.genome import parse
from rnnopt.evolve.known import (
    KNOWN_TEXTS,
    head_to_head,
    known,
    mean_ratio_interval,
    oriented,
    paired_score,
    shared_pairs,
)
from rnnopt.evolve.scoring import collect_results

__all__ = ["GenomeScore", "find_runs", "format_report", "load_run", "scores"]


@dataclass
class GenomeScore:
    genome: str
    label: str  # lstm, gru, mut1-3 or "found"
    best: dict[str, float]  # task -> best accuracy (or lowest value of a minimized metric)
    evaluations: int
    score: float | None  # min over tasks of best / GRU best, over the settings both had
    ratio: dict[str, float]  # task -> best / GRU best over the settings both had
    # task -> (settings won against the GRU, settings shared, mean accuracy / GRU mean accuracy)
    per_setting: dict[str, tuple[int, int, float]]
    # task -> (genome accuracy, GRU accuracy) on each shared setting, in setting order (turned
    # round, GRU first, for a minimized metric: ``known.oriented``)
    pairs: dict[str, list[tuple[float, float]]]


def _reader(storage: str | optuna.storages.BaseStorage) -> optuna.storages.BaseStorage:
    """An existing storage for reading (a URL is opened without creating anything)."""
    return st.open_existing(storage) if isinstance(storage, str) else storage


def find_runs(storage: str | optuna.storages.BaseStorage) -> list[str]:
    storage = _reader(storage)
    try:
        summaries = optuna.get_all_study_names(storage=storage)
    except Exception as exc:
        reason = st.scrub(str(exc))[:300]
        raise StorageError(f"cannot read the storage: {type(exc).__name__}: {reason}") from None
    return sorted(
        n.split("/")[1] for n in summaries if n.startswith("evolve/") and n.endswith("/genomes")
    )


def load_run(
    storage: str | optuna.storages.BaseStorage, run: str
) -> tuple[optuna.Study, optuna.Study]:
    """(genomes study, evaluations study) of an existing search run."""
    storage = _reader(storage)
    try:
        steps = optuna.load_study(study_name=f"evolve/{run}/genomes", storage=storage)
        evals = optuna.load_study(study_name=f"evolve/{run}/evaluations", storage=storage)
    except KeyError:
        raise StorageError(
            f"no search run {run!r} in this storage; runs: {find_runs(storage)}"
        ) from None
    return steps, evals


def task_metrics(study: optuna.Study) -> dict[str, tuple[str, str]]:
    """task -> (metric, direction) its evaluations are scored by (a run stored before
    ``rnnopt.evolve.metrics``: accuracy, maximize)."""
    stored = json_value(study.user_attrs.get(schema.EVOLVE_METRICS)) or {}
    tasks = str(
        study.user_attrs.get(schema.EVOLVE_TASKS) or study.user_attrs.get(schema.TASK, "")
    ).split(",")
    out = {t: ("accuracy", "maximize") for t in tasks}
    out |= {t: (m["metric"], m["direction"]) for t, m in stored.items()}
    return out


def scores(
    storage: str | optuna.storages.BaseStorage, run: str
) -> tuple[list[str], list[GenomeScore]]:
    """(tasks, one GenomeScore per evaluated genome), best score first; from the database only."""
    steps, evals = load_run(storage, run)
    attrs = steps.user_attrs  # runs stored before evolve had its own key used rnnopt.task
    tasks = str(attrs.get(schema.EVOLVE_TASKS) or attrs.get(schema.TASK, "")).split(",")
    minimize = {t for t, (_, d) in task_metrics(steps).items() if d == "minimize"}
    results = collect_results(evals.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    labels = {known(k).text: k for k in KNOWN_TEXTS}
    members = {
        t.user_attrs["genome"]
        for t in steps.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.user_attrs.get("status") in ("member", "evaluated")
    }
    gru = results.get(known("gru").text, {})
    out = []
    for g in members | (set(labels) & set(results)):
        mine = results.get(g, {})
        best = {
            task: (min if task in minimize else max)(values.values())
            for task, values in mine.items()
            if values
        }
        count = sum(len(accs) for accs in mine.values())
        ratio = {t: r for t in tasks if (r := paired_score(mine, gru, [t], minimize)) is not None}
        score = paired_score(mine, gru, tasks, minimize)
        h2h = {
            t: v for t in tasks if (v := head_to_head(mine, gru, t, t in minimize)) is not None
        }
        pairs = {t: oriented(shared_pairs(mine, gru, t), t in minimize) for t in h2h}
        out.append(GenomeScore(g, labels.get(g, "found"), best, count, score, ratio, h2h, pairs))
    out.sort(key=lambda r: (r.score is None, -(r.score or 0.0), r.genome))
    return tasks, out


def _task_cell(x: GenomeScore, task: str) -> str:
    if task not in x.best:
        return "-"
    ratio = f" ({x.ratio[task]:.3f})" if task in x.ratio else ""
    return f"{x.best[task]:.4f}{ratio}"


def _head_to_head_cell(x: GenomeScore, task: str) -> str:
    if task not in x.per_setting:
        return "-"
    won, shared, mean = x.per_setting[task]
    cell = f"{won}/{shared} won, mean {mean:.3f}"
    interval = mean_ratio_interval(x.pairs[task])
    return cell if interval is None else f"{cell} [{interval[0]:.3f}, {interval[1]:.3f}]"


def _per_setting_table(shown: list[GenomeScore], names: list[str], tasks: list[str]) -> list[str]:
    """Each cell against the GRU setting by setting: settings won of those shared, and the
    mean accuracy over them relative to the GRU's."""
    lines = [
        "| cell vs GRU per setting | " + " | ".join(tasks) + " |",
        "|" + "---|" * (1 + len(tasks)),
    ]
    for x, name in zip(shown, names, strict=True):
        if x.label == "gru":
            continue
        cells = [_head_to_head_cell(x, t) for t in tasks]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "won = settings (hyperparameters and training seed) where the cell's accuracy is at "
        "least the GRU's; mean = the cell's mean accuracy over the shared settings / the GRU's; "
        "[low, high] = its 95% bootstrap interval (the shared settings resampled as pairs)"
    )
    return lines


def format_report(storage: str, run: str | None = None, top: int = 5) -> str:
    """Text report: a score table (known cells and the best found genomes) and their equations."""
    url = storage
    storage = st.open_existing(url)
    runs = [run] if run else find_runs(storage)
    if not runs:
        raise StorageError(f"no architecture search runs in {st.mask_url(url)}")
    lines: list[str] = []
    for r in runs:
        tasks, rows = scores(storage, r)
        metrics = task_metrics(load_run(storage, r)[0])
        other = [t for t in tasks if metrics.get(t, ("accuracy",))[0] != "accuracy"]
        found = [x for x in rows if x.label == "found"][:top]
        shown = [x for x in rows if x.label != "found"] + found
        shown.sort(key=lambda x: (x.score is None, -(x.score or 0.0)))
        lines.append(f"# architecture search run {r!r}: tasks {', '.join(tasks)}")
        lines.append("")
        header = [
            "cell", "score", *(f"{t} ({metrics[t][0]})" if t in other else t for t in tasks),
            "evals",
        ]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        ids = {
            x.genome: f"found-{i + 1}" for i, x in enumerate(y for y in shown if y.label == "found")
        }
        names = [ids.get(x.genome, x.label) for x in shown]
        for x, name in zip(shown, names, strict=True):
            cells = [
                name,
                f"{x.score:.3f}" if x.score is not None else "-",
                *(_task_cell(x, t) for t in tasks),
                str(x.evaluations),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines.append(
            "score = min over tasks of (best accuracy / GRU's best accuracy), both over the "
            "settings the cell and the GRU shared (the ratio in brackets); the accuracy is the "
            "best over all the cell's settings"
        )
        if other:
            lines.append("")
            lines.append(
                "tasks scored by another metric than accuracy use the best value of that metric "
                "(the lowest where lower is better) in place of the best accuracy, and where "
                "lower is better the ratio is turned round (GRU's best / the cell's best), so "
                "above 1 is better on every task: "
                + ", ".join(f"{t}: {metrics[t][0]} ({metrics[t][1]})" for t in other)
            )
        lines.append("")
        lines.extend(_per_setting_table(shown, names, tasks))
        for g, name in ids.items():
            lines.append("")
            lines.append(f"## {name}")
            lines.append(f"genome: {g}")
            lines.append(parse(g).equations())
        lines.append("")
    return "\n".join(lines)
