"""Every registered cell: shapes, state, gradients and its equations (plain-op references and the
project's reference vectors, tests/cells/cell_vectors.json). Loops over the registry, so a new
cell is tested once registered."""

from __future__ import annotations

import json
from pathlib import Path

import _vectors
import pytest
import torch
from _reference import reference_forward

import rnnopt.cells as cells
from rnnopt.cells import _kernels

VECTORS = _vectors.FILE
# Vectors computed independently (numpy) outside this repository; a cross-check where present.
SHARED_VECTORS = Path(__file__).resolve().parents[3] / "shared" / "reference" / "cell_vectors.json"
ALL = cells.names()
PAPER_CELLS = {
    "tanh", "lstm", "lstm-i", "lstm-o", "lstm-f", "lstm-b", "gru", "mut1", "mut2", "mut3",
    "lstm-peep", "nig", "nfg", "nog", "niaf", "noaf", "np", "cifg", "fgr", "nn-lstm", "nn-gru",
}  # fmt: skip


def _make(name: str, hidden: int = 5, input_size: int | None = None, dtype=torch.float64):
    s = cells.spec(name)
    i = hidden if s.raw_input else (input_size or 4)
    torch.manual_seed(hash(name) % 1000)
    return cells.build(name, i, hidden).to(dtype), i


def _rand_state(cell, batch: int, dtype=torch.float64, device="cpu"):
    return tuple(
        0.5 * torch.randn(batch, cell.hidden_size, dtype=dtype, device=device)
        for _ in range(cell.state_size)
    )


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


@pytest.fixture(params=["dispatch", "reference"])
def scan(request, monkeypatch):
    """Run each equation test through the dispatched scans and through the reference scans."""
    if request.param == "reference":
        monkeypatch.setattr(_kernels, "lstm_scan", _kernels.lstm_scan_reference)
        monkeypatch.setattr(_kernels, "gru_scan", _kernels.gru_scan_reference)
    return request.param


def test_registry_has_every_cell_of_the_paper_and_greff():
    assert PAPER_CELLS <= set(ALL)
    assert ALL == sorted(ALL)
    assert cells.spec("mut1").raw_input and cells.spec("mut2").raw_input
    assert not cells.spec("mut3").raw_input and not cells.spec("gru").raw_input
    assert cells.spec("lstm").gates == ("input_gate", "output_gate", "forget_gate")
    assert cells.spec("gru").gates == ()
    assert cells.spec("lstm-b").defaults["forget_bias"] == 1.0
    assert cells.spec("lstm").has_forget_bias and not cells.spec("lstm-f").has_forget_bias
    assert not cells.spec("cifg").has_forget_bias and not cells.spec("gru").has_forget_bias


@pytest.mark.parametrize("name", ALL)
def test_shapes_and_state_carried_across_calls(name):
    cell, i = _make(name)
    x = torch.randn(7, 3, i, dtype=torch.float64)
    out, state = cell(x)
    assert out.shape == (7, 3, 5)
    assert len(state) == cell.state_size and all(s.shape == (3, 5) for s in state)
    torch.testing.assert_close(out[-1], state[0], rtol=0, atol=0)
    s0 = _rand_state(cell, 3)
    full, full_state = cell(x, s0)
    a, mid = cell(x[:3], s0)
    b, end = cell(x[3:], mid)
    torch.testing.assert_close(torch.cat([a, b]), full, rtol=1e-12, atol=1e-12)
    for u, v in zip(end, full_state, strict=True):
        torch.testing.assert_close(u, v, rtol=1e-12, atol=1e-12)
    # None means zeros
    zeros = tuple(torch.zeros_like(s) for s in s0)
    torch.testing.assert_close(cell(x, zeros)[0], out, rtol=0, atol=0)


@pytest.mark.parametrize("name", ALL)
def test_float32_default_and_batch_of_one(name):
    s = cells.spec(name)
    cell = cells.build(name, 6 if s.raw_input else 3, 6)
    out, _ = cell(torch.randn(4, 1, cell.input_size))
    assert out.dtype == torch.float32 and out.shape == (4, 1, 6) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALL)
def test_gradients_reach_every_parameter(name):
    cell, i = _make(name)
    x = torch.randn(6, 2, i, dtype=torch.float64, requires_grad=True)
    out, state = cell(x, _rand_state(cell, 2))
    (out.pow(2).sum() + sum(s.sum() for s in state)).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for pname, p in cell.named_parameters():
        assert p.grad is not None, f"{name}: no gradient for {pname}"
        assert p.grad.abs().sum() > 0, f"{name}: zero gradient for {pname}"
        assert torch.isfinite(p.grad).all()


def _equation_grads(cell) -> dict[str, torch.Tensor]:
    """The gradients under the equations' names: swap grads into the parameters, take views."""
    params = list(cell.parameters())
    saved = [p.data for p in params]
    try:
        for p in params:
            p.data = p.grad
        return {k: v.detach().clone() for k, v in cell.equation_parameters().items()}
    finally:
        for p, d in zip(params, saved, strict=True):
            p.data = d


@pytest.mark.parametrize("name", ALL)
def test_equation_parameters_are_views_covering_every_parameter(name):
    cell, _ = _make(name)
    eq = cell.equation_parameters()
    assert sum(v.numel() for v in eq.values()) == sum(p.numel() for p in cell.parameters())
    for k, v in eq.items():
        assert v.dim() in (1, 2), k
        if v.dim() == 2:
            assert v.shape[0] == cell.hidden_size, k
        else:
            assert v.shape == (cell.hidden_size,), k
    k, v = next(iter(eq.items()))
    with torch.no_grad():
        v.fill_(0.123)
    assert (cell.equation_parameters()[k] == 0.123).all(), "writing a view must change the cell"


@pytest.mark.parametrize("name", ALL)
def test_equations_match_plain_reference(name, scan):
    """Outputs and gradients w.r.t. x, initial state and every parameter, float64, rel < 1e-6."""
    cell, i = _make(name)
    cell.train()
    with torch.no_grad():  # larger weights than the default init so every gate saturates some
        for p in cell.parameters():
            p.mul_(3.0)
    x = torch.randn(6, 3, i, dtype=torch.float64, requires_grad=True)
    s0 = tuple(s.requires_grad_() for s in _rand_state(cell, 3))
    out, state = cell(x, s0)
    w_out = torch.randn_like(out)
    w_st = [torch.randn_like(s) for s in state]
    loss = (out * w_out).sum() + sum((s * w).sum() for s, w in zip(state, w_st, strict=True))
    loss.backward()
    got_eq = _equation_grads(cell)

    p_ref = {k: v.detach().clone().requires_grad_() for k, v in cell.equation_parameters().items()}
    x_ref = x.detach().clone().requires_grad_()
    s_ref = tuple(s.detach().clone().requires_grad_() for s in s0)
    ref_out, ref_state = reference_forward(cell, x_ref, s_ref, p_ref)
    ref_loss = (ref_out * w_out).sum() + sum(
        (s * w).sum() for s, w in zip(ref_state, w_st, strict=True)
    )
    ref_loss.backward()

    assert _rel(out.detach(), ref_out.detach()) < 1e-6
    for u, v in zip(state, ref_state, strict=True):
        assert _rel(u.detach(), v.detach()) < 1e-6
    assert _rel(x.grad, x_ref.grad) < 1e-6
    for u, v in zip(s0, s_ref, strict=True):
        assert _rel(u.grad, v.grad) < 1e-6
    assert set(got_eq) == set(p_ref)
    for k in p_ref:
        assert _rel(got_eq[k], p_ref[k].grad) < 1e-6, f"{name}: gradient of {k}"


def _vector_cases():
    data = json.loads(VECTORS.read_text())
    return [pytest.param(c, id=c["case"]) for c in data["cases"]]


def _initial_state(case, state_size: int) -> tuple[torch.Tensor, ...]:
    init = case["initial_state"]
    state = [torch.tensor(init["h"], dtype=torch.float64)]
    if "c" in init:
        state.append(torch.tensor(init["c"], dtype=torch.float64))
    state += [torch.zeros_like(state[0]) for _ in range(state_size - len(state))]
    return tuple(state)


@pytest.mark.parametrize("case", _vector_cases())
def test_reference_vectors(case, scan):
    """The project's vectors (plain equations, tests/cells/_vectors.py): |error| < 1e-9."""
    name = case["cell"]
    x = torch.tensor(case["x"], dtype=torch.float64)
    H = len(case["outputs"][0][0])
    cell = cells.build(name, x.shape[2], H, **case["options"]).to(torch.float64)
    eq = cell.equation_parameters()
    assert set(eq) == set(case["weights"]), f"{case['case']}: cell and equations disagree"
    with torch.no_grad():
        for k, w in case["weights"].items():
            eq[k].copy_(torch.tensor(w, dtype=torch.float64))
    out, _ = cell(x, _initial_state(case, cell.state_size))
    expected = torch.tensor(case["outputs"], dtype=torch.float64)
    assert (out.detach() - expected).abs().max().item() < 1e-9


def test_reference_vectors_cover_the_paper_and_are_current():
    """Every paper/Greff cell has a case, and the file is what the generator writes today."""
    data = json.loads(VECTORS.read_text())
    assert PAPER_CELLS <= {c["cell"] for c in data["cases"]}
    fresh = _vectors.generate()
    assert [c["case"] for c in fresh["cases"]] == [c["case"] for c in data["cases"]]
    for new, old in zip(fresh["cases"], data["cases"], strict=True):
        assert new["weights"].keys() == old["weights"].keys()
        diff = (torch.tensor(new["outputs"]) - torch.tensor(old["outputs"])).abs().max()
        assert diff.item() < 1e-12, f"{new['case']}: rerun python tests/cells/_vectors.py"


@pytest.mark.skipif(not SHARED_VECTORS.is_file(), reason=f"{SHARED_VECTORS} not present")
def test_own_equations_reproduce_the_shared_vectors():
    """The plain equations the project's vectors come from agree with numpy vectors computed
    outside the repository (../shared/reference) on every case there."""
    data = json.loads(SHARED_VECTORS.read_text())
    for case in data["cases"]:
        equations = _vectors.CASES[case["cell"]][1]
        state_size = 2 if "c" in case["initial_state"] else 1
        if case["cell"] == "fgr":
            state_size = 5
        weights = {k: torch.tensor(w, dtype=torch.float64) for k, w in case["weights"].items()}
        x = torch.tensor(case["x"], dtype=torch.float64)
        out, _ = equations(weights, x, _initial_state(case, state_size))
        expected = torch.tensor(case["outputs"], dtype=torch.float64)
        assert (out - expected).abs().max().item() < 1e-9, case["cell"]


def test_lstm_is_exactly_torch_lstm():
    torch.manual_seed(0)
    cell = cells.build("lstm-b", 4, 6).double()
    ref = torch.nn.LSTM(4, 6).double()
    with torch.no_grad():
        ref.weight_ih_l0.copy_(cell.weight_ih)
        ref.weight_hh_l0.copy_(cell.weight_hh)
        ref.bias_ih_l0.copy_(cell.bias)
        ref.bias_hh_l0.zero_()
    x = torch.randn(9, 3, 4, dtype=torch.float64)
    s = _rand_state(cell, 3)
    out, (_, c) = cell(x, s)
    r_out, (_, r_c) = ref(x, (s[0][None], s[1][None]))
    torch.testing.assert_close(out, r_out, rtol=0, atol=1e-14)
    torch.testing.assert_close(c, r_c[0], rtol=0, atol=1e-14)
    assert sum(p.numel() for p in cell.parameters()) == 4 * 6 * (4 + 6 + 1)


def test_tanh_is_exactly_torch_rnn():
    torch.manual_seed(0)
    cell = cells.build("tanh", 4, 6).double()
    ref = torch.nn.RNN(4, 6).double()
    with torch.no_grad():
        ref.weight_ih_l0.copy_(cell.weight_ih)
        ref.weight_hh_l0.copy_(cell.weight_hh)
        ref.bias_ih_l0.copy_(cell.bias)
        ref.bias_hh_l0.zero_()
    x = torch.randn(9, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(cell(x)[0], ref(x)[0], rtol=0, atol=1e-14)
    assert sum(p.numel() for p in cell.parameters()) == 6 * (4 + 6 + 1)


def test_nn_gru_is_not_the_paper_gru():
    torch.manual_seed(0)
    paper, torch_gru = cells.build("gru", 4, 4).double(), cells.build("nn-gru", 4, 4).double()
    eq_p, eq_t = paper.equation_parameters(), torch_gru.equation_parameters()
    with torch.no_grad():  # same weights, torch's second biases zero: only r's placement differs
        for g, n in (("r", "r"), ("z", "z"), ("h", "n")):
            eq_t[f"W_i{n}"].copy_(eq_p[f"W_x{g}"])
            eq_t[f"W_h{n}"].copy_(eq_p[f"W_h{g}"])
            eq_t[f"b_i{n}"].copy_(eq_p[f"b_{g}"])
            eq_t[f"b_h{n}"].zero_()
    x = torch.randn(5, 2, 4, dtype=torch.float64)
    h0 = (torch.randn(2, 4, dtype=torch.float64),)
    assert (paper(x, h0)[0] - torch_gru(x, h0)[0]).abs().max() > 1e-3
    assert "not the paper" in cells.NNGRUCell.__doc__.lower()


@pytest.mark.cuda
@pytest.mark.parametrize("name", ALL)
def test_cuda_matches_cpu(name):
    cell, i = _make(name, hidden=8)
    gpu = cells.build(cell_name := name, cell.input_size, 8).to("cuda", torch.float64)
    gpu.load_state_dict(cell.state_dict())
    x = torch.randn(5, 3, i, dtype=torch.float64)
    s = _rand_state(cell, 3)
    out, _ = cell(x, s)
    g_out, _ = gpu(x.cuda(), tuple(t.cuda() for t in s))
    assert g_out.device.type == "cuda", cell_name
    assert _rel(g_out.cpu(), out.detach()) < 1e-6
    g_out.sum().backward()
    assert all(p.grad is not None for p in gpu.parameters())
