"""The trainer: any registered cell on any registered task, on CPU or CUDA.

It knows cells, tasks and torch, never Optuna: results go to an ``on_eval`` callback, whose
True answer stops the run (this is how a pruner plugs in), and checkpoints go to
``on_checkpoint`` as bytes.
"""

from rnnopt.train._config import OPTIMIZERS, TrainConfig
from rnnopt.train._loop import TrainResult, model_cell_options, resolve_device, train

__all__ = [
    "OPTIMIZERS",
    "TrainConfig",
    "TrainResult",
    "model_cell_options",
    "resolve_device",
    "train",
]
