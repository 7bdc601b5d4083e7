"""How much of a cell ordering survives independent runs: several databases of one study, each an
independent run (its own ``--seed``) with confirmation seeds (``--confirm K``), read together.

    python benchmarks/findings.py --task xml sqlite:///xml-s1.db sqlite:///xml-s2.db ...
    python benchmarks/findings.py --task xml --out findings.md RUN_URL ...

Per run: each cell's best search value (what the paper's Table 1 reports) and the mean of its
confirmation seeds, and the Spearman rank correlation of each with Table 1 (the paper's column
is "higher is better"; a minimised metric such as perplexity is negated first) and, for PTB, with
the paper's dropout table (test perplexity at 20M parameters with dropout). Then the
spread of the per-run correlations, and the paper's qualitative claims, each decided on the
confirmation values pooled over the runs (every run's best setting of a cell, retrained with
new seeds: what a user of the study gets for that cell) by the 95% Welch interval of the mean
difference: ``holds`` when it excludes zero in the claimed direction, ``reversed`` when it
excludes zero the other way, ``within noise`` otherwise. A claim that a cell is "at least" as
good as another is ``not contradicted`` when the interval holds zero. Beside each verdict, the
number of runs whose best-of values agree with the claim, and the same claim decided on the
search trials that both cells trained with one setting (``rnnopt.report.load.shared_settings``,
pooled over the runs; 95% Student-t interval of the mean paired difference).

Reads only; prints markdown (or writes it to ``--out``).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rnnopt import paper  # noqa: E402
from rnnopt import stats as rnnopt_stats  # noqa: E402
from rnnopt._cli import run_cli  # noqa: E402
from rnnopt.report.load import Group, load_groups, shared_settings  # noqa: E402
from rnnopt.storage import mask_url  # noqa: E402

# (claim, cell a, relation, cell b): "a < b" reads "a is worse than b", "a >= b" "a at least b".
CLAIMS: tuple[tuple[str, str, str, str], ...] = (
    ("LSTM-f below LSTM", "lstm-f", "<", "lstm"),
    ("LSTM-f below GRU", "lstm-f", "<", "gru"),
    ("LSTM-b at least LSTM", "lstm-b", ">=", "lstm"),
    ("GRU at least LSTM", "gru", ">=", "lstm"),
    ("MUT1 at least LSTM", "mut1", ">=", "lstm"),
    ("MUT2 at least LSTM", "mut2", ">=", "lstm"),
    ("MUT3 at least LSTM", "mut3", ">=", "lstm"),
)


@dataclass
class Run:
    url: str
    best: dict[str, float]  # cell -> best search value, "higher is better" sign
    confirm: dict[str, list[float]]  # cell -> confirmation values, same sign
    raw_best: dict[str, float]
    raw_confirm: dict[str, list[float]]
    groups: dict[str, Group] = field(default_factory=dict)

    def shared(self, a: str, b: str) -> list[float]:
        """a - b ("higher is better") on each setting both cells trained in this run."""
        if a not in self.groups or b not in self.groups:
            return []
        sign = 1.0 if self.groups[a].direction == "maximize" else -1.0
        return [sign * (va - vb) for vb, va in shared_settings(self.groups[b], self.groups[a])]


def _finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def load_run(url: str, task: str) -> Run:
    groups: dict[str, Group] = {
        cell: g for (t, cell), g in load_groups(url, [task]).items() if t == task
    }
    run = Run(url, {}, {}, {}, {}, groups)
    for cell, g in groups.items():
        sign = 1.0 if g.direction == "maximize" else -1.0
        best = g.best
        if best is not None and best.value is not None:
            run.raw_best[cell] = float(best.value)
            run.best[cell] = sign * float(best.value)
        values = _finite([t.value for t in g.confirmations])
        run.raw_confirm[cell] = values
        run.confirm[cell] = [sign * v for v in values]
    return run


def references(task: str) -> list[tuple[str, dict[str, float]]]:
    """The paper's orderings for ``task``, each as cell -> value with "higher is better"."""
    table1 = {c: v for c in paper.TABLE1 if (v := paper.paper_value(c, task)) is not None}
    refs = [("Table 1", table1)] if table1 else []
    if task == "ptb":  # 20M parameters with dropout: an ordering to set beside, not a target
        refs.append(("the PTB dropout table",
                     {c: -v for c, v in paper.PTB_DROPOUT_TEST_PERPLEXITY.items()}))
    return refs


def spearman(ours: dict[str, float], reference: dict[str, float]) -> tuple[float, int] | None:
    from scipy import stats

    cells = [c for c in ours if c in reference]
    if len(cells) < 3:
        return None
    rho = stats.spearmanr([ours[c] for c in cells], [reference[c] for c in cells])
    return float(rho.statistic), len(cells)


def verdict(relation: str, interval: tuple[float, float] | None) -> str:
    """Decide a claim on the interval of mean(a) - mean(b) (higher is better)."""
    if interval is None:
        return "too few values"
    low, high = interval
    if relation == "<":
        return "holds" if high < 0 else ("reversed" if low > 0 else "within noise")
    if low > 0:
        return "holds (better)"
    return "reversed" if high < 0 else "not contradicted (within noise)"


def _agrees(relation: str, a: float, b: float) -> bool:
    return a < b if relation == "<" else a >= b


def fmt(value: float | None, digits: int = 4) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def render(task: str, runs: list[Run]) -> str:
    cells = [c for c in paper.CELL_ORDER if any(c in r.best for r in runs)]
    cells += sorted({c for r in runs for c in r.best} - set(cells))
    out = [f"### {task}: {len(runs)} independent runs", ""]
    header = ["cell", "paper"]
    for i in range(len(runs)):
        header += [f"run {i + 1} best", f"run {i + 1} confirm mean [95%]"]
    out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for cell in cells:
        row = [cell, fmt(paper.paper_value(cell, task), 3)]
        for r in runs:
            mean, low, high = rnnopt_stats.mean_interval(r.raw_confirm.get(cell, []))
            k = len(r.raw_confirm.get(cell, []))
            row += [
                fmt(r.raw_best.get(cell)),
                f"{fmt(mean)} [{fmt(low)}, {fmt(high)}] (K={k})" if k else "–",
            ]
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    confirm_means = [{c: statistics.fmean(v) for c, v in r.confirm.items() if v} for r in runs]
    for name, reference in references(task):
        rhos_best = [spearman(r.best, reference) for r in runs]
        rhos_conf = [spearman(means, reference) for means in confirm_means]
        for label, rhos in (("best-of", rhos_best), ("confirmation mean", rhos_conf)):
            values = [x[0] for x in rhos if x is not None]
            per_run = ", ".join(fmt(x[0], 2) if x else "–" for x in rhos)
            spread = "none"
            if values:
                spread = (
                    f"mean {statistics.fmean(values):.2f}, range {min(values):.2f} to "
                    f"{max(values):.2f}"
                )
            cells = max((x[1] for x in rhos if x is not None), default=0)
            out.append(
                f"- Spearman to {name} ({label}, {cells} cells), per run: {per_run}; {spread}"
            )
    out += ["", "| claim | pooled confirmation: mean difference [95%] | verdict | runs agreeing "
            "(best-of) | shared settings, pooled: mean difference [95%] | verdict |",
            "|---|---|---|---|---|---|"]  # fmt: skip
    for claim, a, relation, b in CLAIMS:
        pa = [v for r in runs for v in r.confirm.get(a, [])]
        pb = [v for r in runs for v in r.confirm.get(b, [])]
        interval = rnnopt_stats.mean_difference_interval(pb, pa)  # mean(a) - mean(b)
        diff = statistics.fmean(pa) - statistics.fmean(pb) if pa and pb else None
        shown = "–"
        if interval is not None:
            shown = f"{fmt(diff, 3)} [{fmt(interval[0], 3)}, {fmt(interval[1], 3)}]"
        agree = [
            _agrees(relation, r.best[a], r.best[b]) for r in runs if a in r.best and b in r.best
        ]
        diffs = [d for r in runs for d in r.shared(a, b)]
        mean, low, high = rnnopt_stats.mean_interval(diffs)
        paired = "–" if not diffs else f"{fmt(mean, 3)} [{fmt(low, 3)}, {fmt(high, 3)}]"
        paired_interval = None if len(diffs) < 2 else (low, high)
        out.append(
            f"| {claim} | {shown} (n={len(pa)}, {len(pb)}) | {verdict(relation, interval)} | "
            f"{sum(agree)} of {len(agree)} | {paired} ({len(diffs)} pairs) | "
            f"{verdict(relation, paired_interval)} |"
        )
    out += ["", "Runs: " + ", ".join(mask_url(r.url) for r in runs), ""]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="storage URLs, one per independent run")
    p.add_argument("--task", required=True)
    p.add_argument("--out", help="write the markdown here instead of printing it")
    args = p.parse_args(argv)
    text = render(args.task, [load_run(url, args.task) for url in args.runs])
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
