"""Checkpoints as bytes: everything a run needs to continue exactly where it stopped."""

from __future__ import annotations

import io
import random
from typing import Any

import torch

from rnnopt.errors import ConfigError

FORMAT = "rnnopt-train-checkpoint"
VERSION = 1


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_as_python_state(state["python"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def _as_python_state(state: Any) -> tuple:
    # torch.load gives back lists where random.getstate() had tuples.
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


def dumps(payload: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **payload}, buf)
    return buf.getvalue()


def loads(blob: bytes) -> dict[str, Any]:
    """Read a checkpoint written by :func:`dumps`; tensors land on the CPU."""
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise ConfigError(f"resume must be checkpoint bytes, got {type(blob).__name__}")
    try:
        payload = torch.load(io.BytesIO(bytes(blob)), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises a variety of unpickling errors
        raise ConfigError(f"resume blob is not a readable rnnopt checkpoint ({exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ConfigError("resume blob is not an rnnopt training checkpoint")
    if payload.get("version") != VERSION:
        raise ConfigError(
            f"checkpoint version {payload.get('version')!r} is not supported; allowed: {VERSION}"
        )
    return payload
