"""Recurrent cells by name: the paper's cells, their ablations, Greff et al.'s variants,
torch's fused modules, and cells users register themselves.

    >>> import rnnopt.cells
    >>> cell = rnnopt.cells.build("lstm-b", input_size=10, hidden_size=20)
    >>> outputs, state = cell(torch.randn(35, 4, 10))        # [T, B, I] -> [T, B, H]

Register a custom cell with ``@rnnopt.cells.register("name")`` on a :class:`RecurrentCell`
subclass or factory, or from another package through the ``rnnopt.cells`` entry-point group
(see docs/cells.md).
"""

from rnnopt.cells import gru, lstm, simple  # noqa: F401 - importing registers the built-ins
from rnnopt.cells._base import RecurrentCell
from rnnopt.cells._kernels import LSTMFlags
from rnnopt.cells._registry import (
    ENTRY_POINT_GROUP,
    CellOption,
    CellSpec,
    build,
    names,
    register,
    reload_plugins,
    spec,
    unregister,
)
from rnnopt.cells.gru import GRUFamilyCell
from rnnopt.cells.lstm import LSTMCell
from rnnopt.cells.simple import NNGRUCell, NNLSTMCell, TanhCell
from rnnopt.cells.stack import MAX_LAYERS, StackedRNN

__all__ = [
    "ENTRY_POINT_GROUP",
    "MAX_LAYERS",
    "CellOption",
    "CellSpec",
    "GRUFamilyCell",
    "LSTMCell",
    "LSTMFlags",
    "NNGRUCell",
    "NNLSTMCell",
    "RecurrentCell",
    "StackedRNN",
    "TanhCell",
    "build",
    "names",
    "register",
    "reload_plugins",
    "spec",
    "unregister",
]
