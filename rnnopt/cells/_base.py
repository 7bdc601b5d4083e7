"""The interface every cell implements, and the option checks cells share."""

from __future__ import annotations

import abc
import math
from numbers import Real

import torch
from torch import Tensor, nn

from rnnopt.errors import ConfigError

__all__ = ["RecurrentCell", "State", "check_flag", "check_forget_bias", "check_size"]

State = tuple[Tensor, ...]


def check_size(what: str, value: object) -> int:
    """``value`` as a positive int, else ConfigError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{what} must be a positive integer, got {value!r}")
    return value


def check_forget_bias(value: object) -> float:
    """``value`` as a finite float (ints accepted), else ConfigError naming it."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ConfigError(f"forget_bias must be a finite float, got {value!r}")
    return float(value)


def check_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be True or False, got {value!r}")
    return value


class RecurrentCell(nn.Module, abc.ABC):
    """A recurrent cell run over a whole sequence.

    Subclasses set ``input_size``, ``hidden_size`` and ``state_size`` (number of state tensors)
    and implement :meth:`forward` and :meth:`equation_parameters`. The default
    :meth:`reset_parameters` draws every parameter from uniform(-s, s), s = init_scale /
    sqrt(hidden_size), then calls :meth:`apply_forget_bias`.

    Shapes: x ``[T, B, I]`` -> outputs ``[T, B, H]``; state a tuple of ``state_size`` tensors
    ``[B, H]`` (``None`` means zeros).
    """

    input_size: int
    hidden_size: int
    state_size: int = 1

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size = check_size("input_size", input_size)
        self.hidden_size = check_size("hidden_size", hidden_size)

    @abc.abstractmethod
    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Run the cell over ``x [T, B, I]``; return outputs ``[T, B, H]`` and the final state."""

    @abc.abstractmethod
    def equation_parameters(self) -> dict[str, Tensor]:
        """Views of the parameters under the equations' names (``[out, in]``, ``[H]``)."""

    def initial_state(self, batch_size: int, like: Tensor) -> State:
        """Zero state for ``batch_size`` sequences, on ``like``'s device and dtype."""
        zeros = like.new_zeros(batch_size, self.hidden_size)
        return tuple(zeros for _ in range(self.state_size))

    def check_input(self, x: Tensor, state: State | None) -> State:
        if x.dim() != 3 or x.shape[2] != self.input_size:
            raise ConfigError(
                f"cell input must have shape [T, B, {self.input_size}], got {list(x.shape)}"
            )
        if state is None:
            return self.initial_state(x.shape[1], x)
        state = tuple(state)
        if len(state) != self.state_size:
            raise ConfigError(
                f"state must be {self.state_size} tensor(s) of shape [B, {self.hidden_size}], "
                f"got {len(state)}"
            )
        return state

    @torch.no_grad()
    def reset_parameters(self, init_scale: float = 1.0) -> None:
        """Every parameter uniform(-s, s), s = init_scale / sqrt(H); then the forget bias."""
        if isinstance(init_scale, bool) or not isinstance(init_scale, Real) or init_scale <= 0:
            raise ConfigError(f"init_scale must be a positive number, got {init_scale!r}")
        s = float(init_scale) / math.sqrt(self.hidden_size)
        for p in self.parameters():
            p.uniform_(-s, s)
        self.apply_forget_bias()

    def apply_forget_bias(self) -> None:
        """Write the cell's forget bias onto its forget-gate bias (cells with one override)."""

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"
