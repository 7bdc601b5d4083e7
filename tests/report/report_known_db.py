"""Hand-made rnnopt studies with known values, written through Optuna's public API only."""

from __future__ import annotations

import json
import math

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from rnnopt.hpo import confirm
from rnnopt.storage import normalize_url

SPACE = {
    "lr": FloatDistribution(0.1, 5.0, log=True),
    "clip_norm": CategoricalDistribution([1.0, 2.5, 5.0, 10.0, 20.0]),
    "init_scale": FloatDistribution(0.3, 2.8),
    "layers": IntDistribution(1, 4),
    "hidden_size": IntDistribution(8, 64),
}
GATES = {
    "cell": CategoricalDistribution(["lstm", "gru", "mut1"]),
    "input_gate": CategoricalDistribution([True, False]),
}


def _study(url: str, name: str, task: str, cell: str, direction: str, mode: str = "compare"):
    study = optuna.create_study(storage=url, study_name=name, direction=direction)
    attrs = {
        "rnnopt.task": task,
        "rnnopt.cell": cell,
        "rnnopt.mode": mode,
        "rnnopt.space": json.dumps({"lr": [0.1, 5.0]}),
        "rnnopt.budget": json.dumps({"n_trials": 12, "max_steps": 100}),
        "rnnopt.version": "0.1.0",
        "rnnopt.metric": "accuracy" if direction == "maximize" else "perplexity",
        "rnnopt.direction": direction,
        "rnnopt.command": f"python -m rnnopt.study --task {task} --cell {cell}",
    }
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    return study


def _trial(value, params, *, state=TrialState.COMPLETE, steps=100, cell=None, dists=None):
    dists = dists or SPACE
    attrs = {"n_params": 1000 + params.get("hidden_size", 8), "tokens_per_s": 1234.5,
             "device": "cpu", "stop_reason": "finished", "steps": steps,
             "test_metric": None if value is None else value * 0.99,
             "valid_metric": value}
    if cell:
        attrs["cell"] = cell
    if state == TrialState.PRUNED:
        attrs["stop_reason"] = "pruned"
    if state == TrialState.FAIL:
        attrs.update(stop_reason="diverged", test_metric=math.nan, tokens_per_s=math.nan)
    curve = {} if value is None else {s: value * (s / steps) for s in range(10, steps + 1, 10)}
    return create_trial(
        state=state,
        value=value if state == TrialState.COMPLETE else None,
        params=params,
        distributions={k: dists[k] for k in params},
        intermediate_values=curve,
        user_attrs=attrs,
    )


# Known contents: xml/lstm (maximize) 12 complete + 2 pruned + 1 failed; xml/gru 3 complete;
# xml/lstm-b 2 complete; ptb/lstm (minimize) 5 complete; the search study arith/search,
# whose cells come from the categorical `cell` parameter.
XML_LSTM = [0.30 + 0.01 * i for i in range(12)]  # best 0.41; top 10% of 12 -> k=2 -> 0.405
XML_GRU = [0.42, 0.46, 0.44]  # best 0.46, k=1 -> 0.46
XML_LSTM_B = [0.43, 0.45]  # best 0.45: LSTM-b beats LSTM by 0.04
PTB_LSTM = [120.0, 95.0, 101.0, 130.0, 99.0]  # minimize: best 95, k=1 -> 95
ARITH = {"lstm": [0.5, 0.7], "gru": [0.8]}


def fill(url: str) -> None:
    """Write the known studies above into ``url``."""
    url = normalize_url(url)
    s = _study(url, "xml/lstm", "xml", "lstm", "maximize")
    for i, v in enumerate(XML_LSTM):
        s.add_trial(_trial(v, {"lr": 0.1 + 0.4 * i, "clip_norm": [1.0, 5.0, 20.0][i % 3],
                               "init_scale": 0.3 + 0.2 * i, "layers": 1 + i % 4,
                               "hidden_size": 8 + 4 * i}))
    s.add_trial(_trial(0.1, {"lr": 5.0, "clip_norm": 1.0}, state=TrialState.PRUNED, steps=30))
    s.add_trial(_trial(0.2, {"lr": 4.0, "clip_norm": 2.5}, state=TrialState.PRUNED, steps=20))
    s.add_trial(_trial(None, {"lr": 3.0}, state=TrialState.FAIL, steps=7))
    s = _study(url, "xml/gru", "xml", "gru", "maximize")
    for i, v in enumerate(XML_GRU):
        s.add_trial(_trial(v, {"lr": 0.5 * (i + 1), "clip_norm": 5.0}))
    s = _study(url, "xml/lstm-b", "xml", "lstm-b", "maximize")
    for i, v in enumerate(XML_LSTM_B):
        s.add_trial(_trial(v, {"lr": 0.5 * (i + 1), "clip_norm": 5.0}))
    s = _study(url, "ptb/lstm", "ptb", "lstm", "minimize")
    for i, v in enumerate(PTB_LSTM):
        s.add_trial(_trial(v, {"lr": 1.0 + i, "layers": 2}, steps=200))
    s = _study(url, "arith/search", "arith", "*", "maximize", mode="search")
    dists = {**SPACE, **GATES}
    for cell, values in ARITH.items():
        for i, v in enumerate(values):
            s.add_trial(_trial(v, {"cell": cell, "input_gate": i % 2 == 0, "lr": 1.0},
                               cell=cell, dists=dists))


# Confirmed PTB studies (lower is better): search trials per cell, then confirmation seeds of the
# best one (user attributes as rnnopt.hpo.confirm writes them).
CONFIRMED_SEARCH = {
    "lstm": [150.0, 141.0, 160.0], "gru": [133.0, 135.0], "lstm-f": [181.0, 190.0, 185.0]
}
CONFIRMED_SEEDS = {"lstm": [140.0, 142.0, 138.0], "gru": [130.0, 131.0, 132.0],
                   "lstm-f": [180.0, 184.0]}


def fill_confirmed(url: str) -> None:
    """Write the confirmed studies above into ``url``."""
    url = normalize_url(url)
    for cell, values in CONFIRMED_SEARCH.items():
        s = _study(url, f"ptb/{cell}", "ptb", cell, "minimize")
        for i, v in enumerate(values):
            s.add_trial(_trial(v, {"lr": 0.1 * (i + 1)}))
        best = min(range(len(values)), key=values.__getitem__)
        for i, v in enumerate(CONFIRMED_SEEDS[cell]):
            t = _trial(v, {"lr": 0.1 * (best + 1)})
            t.set_user_attr(confirm.CONFIRM_ATTR, best)
            t.set_user_attr(confirm.SEED_ATTR, confirm.CONFIRM_SEED_OFFSET + i)
            s.add_trial(t)
