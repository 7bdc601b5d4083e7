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

Modules: ``load`` (read and group the trials), ``analysis`` (importance, ablations, warnings),
``render`` (markdown, HTML, CSV), ``plots`` (PNG), ``__main__`` (the command line).
"""

from __future__ import annotations

from rnnopt.report.analysis import Report, build_report
from rnnopt.report.load import Group, load_groups
from rnnopt.report.render import markdown_table, table1_rows, write_report

__all__ = [
    "Group",
    "Report",
    "build_report",
    "load_groups",
    "markdown_table",
    "table1_rows",
    "write_report",
]
