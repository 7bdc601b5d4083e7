"""The report as files: Table 1, the confirmation, the shared settings, ordering, leaderboard,
importance, ablation, warnings and plots sections in markdown (report.md), HTML (index.html)
or CSV."""

from __future__ import annotations

import csv
import html
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rnnopt import paper
from rnnopt import stats as rnnopt_stats
from rnnopt.errors import ConfigError
from rnnopt.hpo import confirm as confirm_mod
from rnnopt.hpo.staged import filtered_text
from rnnopt.report.analysis import PAIRED_COLUMNS, Report
from rnnopt.report.load import float_attr
from rnnopt.report.plots import write_plots

__all__ = ["FORMATS", "fmt", "markdown_table", "paired_lines", "table1_rows", "write_report"]

FORMATS = ("md", "html", "csv")


def fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


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


def paired_lines(rows: Sequence[dict[str, Any]], hint: str = "") -> list[str]:
    """The shared-settings table (``analysis.paired_rows``) in short, one line per task and
    cell, for a terminal; ``hint`` ends the heading line."""
    if not rows:
        return []
    width = max(len(f"{r['task']} {r['cell']}") for r in rows)
    out = [f"against {confirm_mod.REFERENCE_CELL} on the settings both trained (mean "
           f"difference, + is better, 95% t interval over the pairs{hint}):"]
    for r in rows:
        interval = f" {r['interval']}" if r["interval"] else ""
        out.append(f"  {r['task'] + ' ' + r['cell']:<{width}}  {r['difference']:+.4g}"
                   f"{interval} {r['effect']} ({r['pairs']} pair{'s' * (r['pairs'] != 1)})")
    return out


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
            text = fmt(ours)
            if ours is None and g is not None and g.filtered is not None:
                text = filtered_text(*g.filtered)
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
        against = (f"; the last column holds each cell against the {confirm_mod.REFERENCE_CELL},"
                   " as the paper states its findings, + meaning better"
                   if confirm_mod.AGAINST_HEADER in confirmed[0] else "")
        sections.append(("Confirmation: each cell's best setting retrained with new seeds (mean "
                         "and 95% interval; a difference is real only when the 95% Welch "
                         f"interval of the difference of means excludes zero{against}). "
                         f"{confirm_mod.SCOPE}", confirmed))
    if report.paired:
        cols = list(PAIRED_COLUMNS)
        sections.append((f"Shared settings: each cell against the {confirm_mod.REFERENCE_CELL} on "
                         "the search trials both trained with one setting and training seed "
                         "(--paired-startup makes the start-up trials so; without it, some "
                         "pair by accident). difference: the mean over those pairs, + meaning "
                         "better, with its 95% t interval over the pairs; cell_ahead: pairs "
                         "the cell won",
                         (cols, [[fmt(r[c]) for c in cols] for r in report.paired])))
    lines = [r for t in report.tasks if (r := _rank_agreement(report, t))]
    ptb = report.groups
    ptb_rows = []
    for cell in report.cells:
        g = ptb.get(("ptb", cell))
        if g is None or g.best is None:
            continue
        ptb_rows.append([cell, fmt(float_attr(g.best, "test_metric")),
                         fmt(paper.PTB_DROPOUT_TEST_PERPLEXITY.get(cell))])
    if lines:
        sections.append(("Ordering against the paper", {"lines": lines}))
    if ptb_rows:
        sections.append(("PTB test perplexity of the best trial (paper: with dropout, ~20M "
                         "parameters)", (["cell", "ours", "paper"], ptb_rows)))
    lb = report.leaderboard()
    cols = ["task", "cell", "direction", "metric", "n_trials", "n_complete", "n_pruned",
            "n_failed", "best_value", "median_top10", "best_test", "steps"]
    sections.append(("Leaderboard", (cols, [[fmt(r[c]) for c in cols] for r in lb])))
    if report.importance:
        names = sorted({p for v in report.importance.values() for p in v})
        rows = [[f"{t}/{c}", *[fmt(v.get(p)) for p in names]]
                for (t, c), v in sorted(report.importance.items())]
        sections.append((f"Hyperparameter importance ({report.importance_method})",
                         (["task/cell", *names], rows)))
    if report.ablation:
        cols = ["task", "cell", "factor", "level_a", "best_a", "level_b", "best_b", "delta",
                "interval", "effect"]
        sections.append(("Ablations (b against a: better or worse only when the 95% bootstrap "
                         "interval of the difference of best values excludes zero; too few "
                         "trials where even a complete separation would be chance one time "
                         "in 20 or more: read the confirmation table instead)",
                         (cols, [[fmt(r[c]) for c in cols] for r in report.ablation])))
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
        if report.paired:
            files.append(_write_csv(out / "paired.csv", report.paired, PAIRED_COLUMNS))
        header, rows = confirm_mod.report_rows(report.groups, report.tasks, report.cells)
        if rows:
            files.append(_write_csv(out / "confirmation.csv",
                                    [dict(zip(header, r, strict=True)) for r in rows], header))
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
