"""TrainConfig validation: every bad value is a ConfigError that names it."""

from __future__ import annotations

import pytest
import torch

from rnnopt.errors import ConfigError
from rnnopt.train import TrainConfig, train


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("layers", 0),
        ("layers", 5),
        ("layers", 1.5),
        ("dropout", 1.0),
        ("dropout", -0.1),
        ("init_scale", 0.0),
        ("optimizer", "rmsprop"),
        ("lr", -1.0),
        ("lr", float("nan")),
        ("clip_norm", 0),
        ("batch_size", 0),
        ("unroll", "35"),
        ("max_steps", 0),
        ("eval_interval", True),
        ("eval_batches", 0),
        ("lr_decay", 1.5),
        ("patience", 0),
        ("seed", -1),
        ("device", "gpu"),
        ("device", "cuda:x"),
        ("bf16", "yes"),
        ("time_limit", -5.0),
        ("checkpoint_every", 0),
        ("forget_bias", float("inf")),
        ("hidden_size", 0),
        ("cell_options", ["forget_gate"]),
    ],
)
def test_bad_value_names_key_and_value(key: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict({"task": "xml", "hidden_size": 32, key: value})
    message = str(info.value)
    assert key in message and repr(value) in message
    assert "\n" not in message


def test_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(ConfigError, match=r"'learning_rate'.*valid keys:.*\blr\b"):
        TrainConfig.from_dict({"task": "xml", "hidden_size": 8, "learning_rate": 1.0})


@pytest.mark.parametrize("sizes", [{}, {"hidden_size": 64, "param_budget": 10_000}])
def test_exactly_one_of_hidden_size_and_budget(sizes: dict[str, int]) -> None:
    with pytest.raises(ConfigError, match="exactly one of hidden_size and param_budget"):
        TrainConfig(task="xml", **sizes)


def test_bf16_on_cpu_is_rejected() -> None:
    with pytest.raises(ConfigError, match="bf16=True"):
        TrainConfig(task="xml", hidden_size=8, device="cpu", bf16=True)


def test_round_trip_through_dict() -> None:
    config = TrainConfig(task="ptb", param_budget=1_000_000, cell="gru", dropout=0.2)
    assert TrainConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"cell": "lstm9"}, "'lstm9'"),
        ({"task": "nosuchtask"}, "'nosuchtask'"),
        ({"cell": "gru", "forget_bias": 1.0}, "forget_bias=1.0"),
        ({"cell_options": {"wings": True}}, "'wings'"),
        ({"task_options": {"max_digits": -3}}, "max_digits=-3"),
    ],
)
def test_bad_names_and_options_fail_before_training(overrides: dict, needle: str) -> None:
    config = TrainConfig.from_dict({"task": "arith", "hidden_size": 8, **overrides})
    with pytest.raises(ConfigError) as info:
        train(config)
    assert needle in str(info.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_unavailable_cuda_device_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'cuda:1' is not available"):
        train(TrainConfig(task="arith", hidden_size=8, device="cuda:1"))


def test_resume_rejects_garbage_bytes() -> None:
    with pytest.raises(ConfigError, match="not a readable rnnopt checkpoint"):
        train(TrainConfig(task="arith", hidden_size=8), resume=b"not a checkpoint")
