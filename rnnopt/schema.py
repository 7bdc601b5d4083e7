"""What rnnopt writes into an Optuna database, named once: study attribute keys, study modes,
trial stop reasons, and which studies each reader reads.

Writers (hpo/ for compare/search studies, evolve/ for architecture-search studies) and
readers (report, the SQL views in ``sql/``, dashboard notes, evolve's report) use these names;
the SQL files spell the same keys and modes (``tests/storage/test_schema.py`` checks that).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "CELL_STUDY_MODES",
    "MODES",
    "STOP_REASONS",
    "is_cell_study",
    "is_evolve_study",
]

# Study user attributes.
TASK = "rnnopt.task"  # a compare/search study's task
CELL = "rnnopt.cell"  # its cell, or "*" in search mode
MODE = "rnnopt.mode"
SPACE = "rnnopt.space"  # JSON of the search space
BUDGET = "rnnopt.budget"  # JSON: {"n_trials": .., "max_steps": ..}
VERSION = "rnnopt.version"
METRIC = "rnnopt.metric"
DIRECTION = "rnnopt.direction"
COMMAND = "rnnopt.command"  # the command line, passwords masked
TRAIN = "rnnopt.train"  # JSON of the fixed training settings
EVOLVE = "rnnopt.evolve"  # JSON identity of an architecture-search run
EVOLVE_TASKS = "rnnopt.evolve.tasks"  # its tasks, comma-separated
# JSON {task: {"metric": .., "direction": ..}}: what each task's evaluations are scored by
# (a run stored before it: accuracy, maximize)
EVOLVE_METRICS = "rnnopt.evolve.metrics"
# JSON identity of the user's data files (rnnopt.userdata): a compare/search study's task's;
# in an architecture-search run's studies {task: identity} for each task that reads files
DATA = "rnnopt.data"
# JSON {"seed": s, "trials": n}: a compare study's paired start-up (rnnopt/hpo/paired.py)
PAIRED_STARTUP = "rnnopt.paired_startup"
# JSON {"gates": [step, ...], "decisions": [{"gate", "step", "kept", "scores"}, ...]}: a compare
# study under the staged filter across cells (rnnopt/hpo/staged.py), the same in each cell's
STAGED = "rnnopt.staged"

# Study modes: one study per (task, cell), one per task searching over cells, and the two
# studies of an architecture-search run (their values are genome scores, not accuracies).
COMPARE, SEARCH, EVOLVE_MODE = "compare", "search", "evolve"
CELL_STUDY_MODES = (COMPARE, SEARCH)
MODES = (*CELL_STUDY_MODES, EVOLVE_MODE)

# Trial user attribute ``stop_reason``.
STOP_REASONS = ("finished", "pruned", "diverged", "time_limit", "failed")


def is_cell_study(user_attrs: Mapping[str, Any]) -> bool:
    """A compare or search study: what the report, the views and the dashboard notes read.
    (A study stored before modes existed counts when it has a task.)"""
    mode = user_attrs.get(MODE)
    if mode is None:
        return TASK in user_attrs
    return mode in CELL_STUDY_MODES


def is_evolve_study(user_attrs: Mapping[str, Any]) -> bool:
    return user_attrs.get(MODE) == EVOLVE_MODE or EVOLVE in user_attrs
