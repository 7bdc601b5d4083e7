"""Published numbers of Jozefowicz, Zaremba & Sutskever (2015), as data for side-by-side reports.

Values are restated from ../shared/PAPER.md (secondary sources). The PTB column of Table 1 has an
unclear unit: compare orderings there, not values. Keys are rnnopt cell names.
"""

from __future__ import annotations

__all__ = [
    "CELL_ORDER",
    "GRIDS",
    "PTB_DROPOUT_TEST_PERPLEXITY",
    "REFERENCE_PTB_TEST_PERPLEXITY",
    "TABLE1",
    "TABLE1_TASKS",
    "paper_value",
]

# Row order of Table 1.
CELL_ORDER = (
    "tanh", "lstm", "lstm-f", "lstm-i", "lstm-o", "lstm-b", "gru", "mut1", "mut2", "mut3",
)

# The hyperparameter grids of the paper's search (PAPER.md; unconfirmed, see docs/studies.md):
# the study's `paper` sampler and the architecture search draw from them.
GRIDS: dict[str, tuple[float, ...]] = {
    "lr": (0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0),
    "clip_norm": (1.0, 2.5, 5.0, 10.0, 20.0),
    "init_scale": (0.3, 0.7, 1.0, 1.4, 2.0, 2.8),
    "layers": (1, 2, 3, 4),
}

# Column: rnnopt task name -> the paper's column title.
TABLE1_TASKS = {"arith": "Arith", "xml": "XML", "ptb": "PTB"}

# Best next-step accuracy (higher is better) per cell and task.
TABLE1: dict[str, dict[str, float]] = {
    "tanh": {"arith": 0.295, "xml": 0.321, "ptb": 0.0878},
    "lstm": {"arith": 0.892, "xml": 0.425, "ptb": 0.0891},
    "lstm-f": {"arith": 0.293, "xml": 0.234, "ptb": 0.0881},
    "lstm-i": {"arith": 0.751, "xml": 0.414, "ptb": 0.0866},
    "lstm-o": {"arith": 0.867, "xml": 0.421, "ptb": 0.0893},
    "lstm-b": {"arith": 0.902, "xml": 0.444, "ptb": 0.0895},
    "gru": {"arith": 0.896, "xml": 0.460, "ptb": 0.0907},
    "mut1": {"arith": 0.921, "xml": 0.475, "ptb": 0.0897},
    "mut2": {"arith": 0.897, "xml": 0.473, "ptb": 0.0904},
    "mut3": {"arith": 0.907, "xml": 0.465, "ptb": 0.0916},
}

# PTB with dropout, about 20M parameters: test perplexity (lower is better). LSTM-i, MUT1 and
# MUT2 are unconfirmed and left out.
PTB_DROPOUT_TEST_PERPLEXITY: dict[str, float] = {
    "lstm-b": 79.8, "lstm": 81.4, "lstm-o": 82.3, "mut3": 89.5, "gru": 91.7, "tanh": 97.7,
    "lstm-f": 100.8,
}

# Later PTB test perplexities a user compares against.
REFERENCE_PTB_TEST_PERPLEXITY: dict[str, float] = {
    "Zaremba et al. 2014, medium LSTM": 82.0,
    "Zaremba et al. 2014, large LSTM": 78.0,
    "Melis et al. 2018, tuned LSTM": 58.3,
}

_ALIASES = {"rnn": "tanh", "rnn_tanh": "tanh", "tanh_rnn": "tanh"}


def paper_value(cell: str, task: str) -> float | None:
    """Table 1's value for a cell and task, or None where the paper has none."""
    name = _ALIASES.get(cell.lower(), cell.lower())
    return TABLE1.get(name, {}).get(task.lower())
