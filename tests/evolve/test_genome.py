"""Genomes: text round trips, mutations stay valid, known cells match their hand-written twins."""

from __future__ import annotations

import random

import pytest
import torch

import rnnopt.cells
from rnnopt.errors import ConfigError
from rnnopt.evolve.cell import GenomeCell, register_genome
from rnnopt.evolve.genome import parse
from rnnopt.evolve.known import KNOWN_TEXTS, PAPER_NAMES, known
from rnnopt.evolve.mutate import OPERATORS, mutate


@pytest.mark.parametrize("name", sorted(KNOWN_TEXTS))
def test_text_round_trip(name: str) -> None:
    g = known(name)
    again = parse(g.text)
    assert again.text == g.text
    assert again.nodes == g.nodes and again.h_out == g.h_out and again.c_out == g.c_out
    assert g.equations().count("\n") >= 0 and "h' =" in g.equations()


def test_equivalent_texts_dedup() -> None:
    a = parse("z=(sigmoid (lin x h)); h'=(+ (* z h) (tanh (lin h x)))")
    b = parse("h'=(+ (tanh (lin x h)) (* h (sigmoid (lin h x))))")
    c = parse("t=(tanh h); u=(tanh h); h'=(+ (lin x) (* t (id u)))")
    d = parse("h'=(+ (* (tanh h) (tanh h)) (lin x))")
    assert a.text == b.text
    assert c.text == d.text  # merged parameter-free duplicates, identity removed
    # Two linear maps of the same operands are two parameter sets, unlike one shared map.
    shared = parse("l=(lin x h); h'=(* (tanh l) (sigmoid l))")
    separate = parse("h'=(* (tanh (lin x h)) (sigmoid (lin x h)))")
    assert shared.text != separate.text
    # c' that h' never reads is dropped.
    assert parse("h'=(tanh (lin x h)); c'=(lin c)").state_size == 1


@pytest.mark.parametrize(
    "text",
    [
        "",
        "h'=(tanh (lin x h)",
        "h'=(foo x)",
        "h'=(tanh x h)",
        "h'=(+ x)",
        "h'=(tanh (lin h))",  # never reads x
        "h'=(tanh (lin x undefined))",
        "g=(tanh x); g=(tanh h); h'=g",
        "c'=(lin x)",
        "h'=x",
        "h'=(lin:abc x)",
        "h'=(lin:1 x h)",
        "h'=(tanh (lin x c))",  # reads c without c'
    ],
)
def test_bad_text_is_config_error(text: str) -> None:
    with pytest.raises(ConfigError):
        parse(text)


def test_every_operator_yields_valid_genomes() -> None:
    seen_ops: set[str] = set()
    for seed in range(150):
        rng = random.Random(seed)
        g = known(sorted(KNOWN_TEXTS)[seed % len(KNOWN_TEXTS)])
        for _ in range(6):
            child, op = mutate(g, rng)
            seen_ops.add(op)
            assert child.text != g.text
            assert parse(child.text).text == child.text
            cell = GenomeCell(child, 3, 3)
            out, state = cell(torch.randn(2, 2, 3))
            assert out.shape == (2, 2, 3) and len(state) == child.state_size
            g = child
    assert seen_ops == set(OPERATORS)


@pytest.mark.parametrize("name", sorted(KNOWN_TEXTS))
def test_known_genome_matches_hand_written_cell(name: str) -> None:
    torch.manual_seed(0)
    I = H = 5
    ref = rnnopt.cells.build(name, I, H).double()
    ref.reset_parameters(1.3)
    cell = GenomeCell(known(name), I, H).double()
    ours, theirs = cell.equation_parameters(), ref.equation_parameters()
    mapping = PAPER_NAMES[name]
    assert set(mapping) == set(ours) and set(mapping.values()) == set(theirs)
    with torch.no_grad():
        for g_name, p_name in mapping.items():
            ours[g_name].copy_(theirs[p_name])
    x = torch.randn(7, 3, I, dtype=torch.float64)
    state = tuple(torch.randn(3, H, dtype=torch.float64) for _ in range(ref.state_size))
    out_ref, st_ref = ref(x, state)
    out, st = cell(x, state)
    assert cell.state_size == ref.state_size
    torch.testing.assert_close(out, out_ref, atol=1e-9, rtol=0)
    for a, b in zip(st, st_ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=0)


def test_registered_genome_builds_through_the_registry() -> None:
    g = parse("h'=(tanh (+ (lin:1 x) (lin h)))")
    name = register_genome(g)
    assert register_genome(g.text) == name
    spec = rnnopt.cells.spec(name)
    assert spec.raw_input and spec.description == g.text
    cell = rnnopt.cells.build(name, 4, 4)
    cell.reset_parameters(0.5)
    assert max(p.abs().max().item() for p in cell.parameters()) <= 0.25
    with pytest.raises(ConfigError):
        rnnopt.cells.build(name, 3, 4)


def test_relative_score_is_the_papers_min_ratio_and_gru_scores_one() -> None:
    from rnnopt.evolve.known import relative_score

    gru = {"arith": 0.5, "xml": 0.4}
    assert relative_score({"arith": 0.6, "xml": 0.2}, gru, ["arith", "xml"]) == 0.5
    assert relative_score(gru, gru, ["arith", "xml"]) == 1.0
    assert relative_score({"arith": 0.6}, gru, ["arith", "xml"]) is None
    # a task the GRU never learnt (accuracy 0): the GRU still scores 1, others by other tasks
    zero = {"arith": 0.0, "xml": 0.4}
    assert relative_score(zero, zero, ["arith", "xml"]) == 1.0
    assert relative_score({"arith": 0.1, "xml": 0.2}, zero, ["arith", "xml"]) == 0.5


def test_paired_score_compares_over_the_settings_both_genomes_had() -> None:
    from rnnopt.evolve.known import paired_best, paired_score

    # The GRU was lucky on setting 7, which the mutant never trained on.
    gru = {"arith": {0: 0.40, 1: 0.50, 7: 0.90}, "xml": {0: 0.30, 1: 0.35}}
    mutant = {"arith": {0: 0.45, 1: 0.50}, "xml": {0: 0.36, 1: 0.30}}
    assert paired_best(mutant, gru, ["arith", "xml"]) == (
        {"arith": 0.50, "xml": 0.36},
        {"arith": 0.50, "xml": 0.35},
    )
    assert paired_score(mutant, gru, ["arith", "xml"]) == 1.0
    assert paired_score(gru, gru, ["arith", "xml"]) == 1.0
    assert paired_score({"arith": {3: 0.9}, "xml": {0: 0.3}}, gru, ["arith", "xml"]) is None
    assert paired_score({"arith": {0: 0.2}, "xml": {0: 0.15}}, gru, ["arith", "xml"]) == 0.5
