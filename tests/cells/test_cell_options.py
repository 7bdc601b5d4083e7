"""Ablations really remove their gate, the forget bias lands on b_f only, bad options fail."""

from __future__ import annotations

import math

import pytest
import torch

import rnnopt.cells as cells
from rnnopt.errors import ConfigError

H, I = 4, 3
BIG = 40.0  # sigmoid(40) == 1 - 4e-18: a gate saturated to the constant 1 in float64


def _pair(ablated: str, full: str, gate: str, greff: bool):
    """An ablated cell and the full cell with the same weights and that gate pinned to 1."""
    torch.manual_seed(1)
    a = cells.build(ablated, I, H).double()
    f = cells.build(full, I, H).double()
    pa, pf = a.equation_parameters(), f.equation_parameters()
    with torch.no_grad():
        for k, v in pa.items():
            pf[k].copy_(v)
        w, r, b = (f"W_{gate}", f"R_{gate}", f"b_{gate}") if greff else (
            f"W_x{gate}", f"W_h{gate}", f"b_{gate}"
        )
        pf[w].zero_()
        pf[r].zero_()
        pf[b].fill_(BIG)
        if f"p_{gate}" in pf:
            pf[f"p_{gate}"].zero_()
    return a, f


@pytest.mark.parametrize(
    ("ablated", "full", "gate", "greff"),
    [
        ("lstm-i", "lstm", "i", False),
        ("lstm-o", "lstm", "o", False),
        ("lstm-f", "lstm", "f", False),
        ("nig", "lstm-peep", "i", True),
        ("nog", "lstm-peep", "o", True),
        ("nfg", "lstm-peep", "f", True),
    ],
)
def test_ablated_gate_is_the_constant_one(ablated, full, gate, greff):
    a, f = _pair(ablated, full, gate, greff)
    gate_names = (
        {f"W_{gate}", f"R_{gate}", f"b_{gate}", f"p_{gate}"}
        if greff
        else {f"W_x{gate}", f"W_h{gate}", f"b_{gate}"}
    )
    assert not gate_names & set(a.equation_parameters()), "an ablated gate keeps no parameters"
    assert gate_names & set(f.equation_parameters())
    x = torch.randn(8, 2, I, dtype=torch.float64)
    torch.testing.assert_close(a(x)[0], f(x)[0], rtol=0, atol=1e-12)
    # ... and the gate does something when it is not pinned
    with torch.no_grad():
        f.equation_parameters()[f"b_{gate}"].fill_(-1.0)
    assert (a(x)[0] - f(x)[0]).abs().max() > 1e-3


@pytest.mark.parametrize("name", ["lstm-f", "nfg"])
def test_without_forget_gate_the_cell_state_never_decays(name):
    """With zero input and a zero candidate, c stays exactly where it started."""
    torch.manual_seed(2)
    cell = cells.build(name, I, H).double()
    eq = cell.equation_parameters()
    cand = ("W_xg", "W_hg", "b_g") if "W_xg" in eq else ("W_z", "R_z", "b_z")
    with torch.no_grad():
        for k in cand:
            eq[k].zero_()
    c0 = torch.randn(2, H, dtype=torch.float64)
    x = torch.zeros(50, 2, I, dtype=torch.float64)
    _, (_, c) = cell(x, (torch.randn(2, H, dtype=torch.float64), c0))
    torch.testing.assert_close(c, c0, rtol=0, atol=0)
    # the full LSTM with the same candidate and a negative forget bias forgets
    full = cells.build("lstm", I, H, forget_bias=-2.0).double()
    with torch.no_grad():
        for k in ("W_xg", "W_hg", "b_g"):
            full.equation_parameters()[k].zero_()
    _, (_, c_full) = full(x, (torch.zeros(2, H, dtype=torch.float64), c0))
    assert c_full.abs().max() < 0.1 * c0.abs().max()


def test_cifg_forget_gate_is_one_minus_input_gate():
    torch.manual_seed(3)
    cell = cells.build("cifg", I, H).double()
    eq = cell.equation_parameters()
    assert not {"W_f", "R_f", "b_f", "p_f"} & set(eq)
    with torch.no_grad():
        for k in ("W_z", "R_z", "b_z", "W_i", "R_i", "p_i"):
            eq[k].zero_()
        eq["b_i"].fill_(math.log(3.0))  # i = 0.75 -> f = 0.25, candidate 0
    c0 = torch.randn(2, H, dtype=torch.float64)
    _, (_, c) = cell(torch.zeros(3, 2, I, dtype=torch.float64), (torch.zeros_like(c0), c0))
    torch.testing.assert_close(c, c0 * 0.25**3, rtol=1e-12, atol=1e-15)


def test_noaf_and_niaf_drop_their_tanh():
    torch.manual_seed(4)
    noaf = cells.build("noaf", I, H).double()
    eq = noaf.equation_parameters()
    with torch.no_grad():
        for k in ("W_o", "R_o", "p_o"):
            eq[k].zero_()
        eq["b_o"].fill_(BIG)
    x = torch.randn(4, 2, I, dtype=torch.float64)
    _, (h, c) = noaf(x)
    torch.testing.assert_close(h, c, rtol=0, atol=1e-12)  # h = o * c with o = 1
    niaf = cells.build("niaf", I, H).double()
    eq = niaf.equation_parameters()
    with torch.no_grad():  # candidate = 10 far outside tanh's range; i = 1, f = 0 isolates it
        for k in ("W_z", "R_z", "W_i", "R_i", "p_i", "W_f", "R_f", "p_f"):
            eq[k].zero_()
        eq["b_z"].fill_(10.0)
        eq["b_i"].fill_(BIG)
        eq["b_f"].fill_(-BIG)
    _, (_, c) = niaf(x)
    torch.testing.assert_close(c, torch.full_like(c, 10.0), rtol=0, atol=1e-12)


def test_fgr_previous_gates_feed_the_gates():
    torch.manual_seed(5)
    cell = cells.build("fgr", I, H).double()
    eq = cell.equation_parameters()
    assert {f"R_{a}{b}" for a in "ifo" for b in "ifo"} <= set(eq)
    assert cell.state_size == 5
    x = torch.randn(6, 2, I, dtype=torch.float64)
    out, state = cell(x)
    with torch.no_grad():
        for a in "ifo":
            for b in "ifo":
                eq[f"R_{a}{b}"].zero_()
    assert (cell(x)[0] - out).abs().max() > 1e-4
    assert all(((s > 0) & (s < 1)).all() for s in state[2:]), "gate activations lie in (0, 1)"


@pytest.mark.parametrize("init_scale", [0.3, 2.0])
@pytest.mark.parametrize(("name", "bias"), [("lstm", 0.0), ("lstm-b", 1.0), ("lstm-peep", 0.0)])
def test_forget_bias_lands_on_the_forget_gate_bias_only(name, bias, init_scale):
    torch.manual_seed(6)
    cell = cells.build(name, I, H)
    cell.reset_parameters(init_scale)
    eq = cell.equation_parameters()
    s = init_scale / math.sqrt(H)
    assert (eq["b_f"] == bias).all()
    for k, v in eq.items():
        if k != "b_f":
            assert v.abs().max() <= s and v.abs().max() > 0.2 * s, k
            assert not (v == bias).all(), k


@pytest.mark.parametrize("name", ["lstm", "lstm-i", "lstm-o", "nig", "np", "fgr", "nn-lstm"])
def test_forget_bias_option_overrides_the_preset(name):
    cell = cells.build(name, I, H, forget_bias=2.5)
    eq = cell.equation_parameters()
    if name == "nn-lstm":
        assert (eq["b_if"] == 2.5).all() and (eq["b_hf"] == 0.0).all()
        assert not (eq["b_ii"] == 2.5).any()
    else:
        assert (eq["b_f"] == 2.5).all()
        others = [v for k, v in eq.items() if k.startswith("b_") and k != "b_f"]
        assert others and not any((v == 2.5).any() for v in others)
    assert (cells.build("lstm-b", I, H, forget_bias=0.5).equation_parameters()["b_f"] == 0.5).all()


def test_presets_are_defaults_the_caller_overrides():
    cell = cells.build("lstm-i", I, H, input_gate=True)
    assert "W_xi" in cell.equation_parameters()
    assert cell.fused  # all gates again: torch's fused kernel
    assert not cells.build("lstm-i", I, H).fused


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda: cells.build("lsmt", 3, 4), "'lsmt'"),
        (lambda: cells.build("lstm", 0, 4), "0"),
        (lambda: cells.build("lstm", 3, -2), "-2"),
        (lambda: cells.build("gru", 3, 4.5), "4.5"),
        (lambda: cells.build("gru", 3, 4, forget_bias=1.0), "'forget_bias'"),
        (lambda: cells.build("lstm", 3, 4, peephole=True), "'peephole'"),
        (lambda: cells.build("lstm", 3, 4, forget_bias="1"), "'1'"),
        (lambda: cells.build("lstm", 3, 4, forget_bias=float("nan")), "nan"),
        (lambda: cells.build("lstm", 3, 4, forget_bias=True), "True"),
        (lambda: cells.build("lstm-f", 3, 4, forget_bias=1.0), "forget_gate=False"),
        (lambda: cells.build("cifg", 3, 4, forget_bias=1.0), "coupled_gates=True"),
        (lambda: cells.build("lstm", 3, 4, coupled_gates=True, input_gate=False), "input_gate"),
        (lambda: cells.build("lstm", 3, 4, coupled_gates=True, forget_gate=False), "forget_gate"),
        (lambda: cells.build("lstm", 3, 4, input_gate="no"), "'no'"),
        (lambda: cells.build("lstm", 3, 4, notation="latex"), "'latex'"),
        (
            lambda: cells.build(
                "fgr", 3, 4, input_gate=False, forget_gate=False, output_gate=False
            ),
            "full_gate_recurrence",
        ),
        (lambda: cells.build("mut1", 3, 4), "input_size (3)"),
        (lambda: cells.build("tanh", 3, 4).reset_parameters(0.0), "0.0"),
        (lambda: cells.build("tanh", 3, 4)(torch.randn(2, 1, 5)), "[2, 1, 5]"),
        (lambda: cells.build("lstm", 3, 4)(torch.randn(2, 1, 3), (torch.zeros(1, 4),)), "1"),
    ],
)
def test_bad_input_raises_config_error_naming_the_value(call, named):
    with pytest.raises(ConfigError) as err:
        call()
    msg = str(err.value)
    assert named in msg and "\n" not in msg


def test_unknown_cell_and_option_list_what_is_allowed():
    with pytest.raises(ConfigError, match=r"valid cells: .*gru.*lstm.*mut1"):
        cells.spec("lstm2")
    with pytest.raises(ConfigError, match=r"allowed: .*coupled_gates.*forget_bias.*input_gate"):
        cells.build("lstm-b", 3, 4, gates=3)
    with pytest.raises(ConfigError, match="allowed: none"):
        cells.build("mut3", 3, 4, variant="gru")
