"""The fast recurrences of ``rnnopt.cells._fast`` compute exactly the reference equations.

Outputs and gradients (w.r.t. gx, recurrent weights, initial state, peepholes) are compared in
float64 on random inputs for every flag combination the registered cells use, plus a few more;
``torch.autograd.gradcheck`` checks the hand-written backward against finite differences.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from rnnopt.cells import _fast, _kernels
from rnnopt.cells._kernels import LSTMFlags, gru_scan_reference, lstm_scan_reference
from rnnopt.errors import ConfigError

F = LSTMFlags
LSTM_FLAGS = {
    "lstm": F(),
    "lstm-i": F(input_gate=False),
    "lstm-o": F(output_gate=False),
    "lstm-f": F(forget_gate=False),
    "lstm-peep": F(peepholes=True),
    "nig": F(peepholes=True, input_gate=False),
    "nfg": F(peepholes=True, forget_gate=False),
    "nog": F(peepholes=True, output_gate=False),
    "niaf": F(peepholes=True, input_activation=False),
    "noaf": F(peepholes=True, output_activation=False),
    "cifg": F(peepholes=True, coupled=True),
    "fgr": F(peepholes=True, fgr=True),
    # beyond the registered presets
    "cifg-nopeep": F(coupled=True),
    "fgr-nopeep": F(fgr=True),
    "fgr-no-o": F(fgr=True, output_gate=False, peepholes=True),
    "fgr-cifg": F(fgr=True, coupled=True),
    "no-gates": F(input_gate=False, forget_gate=False, output_gate=False),
    "no-gates-linear": F(
        input_gate=False,
        forget_gate=False,
        output_gate=False,
        input_activation=False,
        output_activation=False,
    ),
    "only-f-peep": F(input_gate=False, output_gate=False, peepholes=True),
    "cifg-no-o-noaf": F(coupled=True, output_gate=False, output_activation=False),
}
GRU_MODES = [
    ("h", "gru"),  # gru
    ("none", "mut"),  # mut1
    ("h", "mut"),  # mut2
    ("tanh_h", "mut"),  # mut3
    ("tanh_h", "gru"),
    ("none", "gru"),
]


def _lstm_inputs(flags: LSTMFlags, T: int, B: int, H: int, *, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    G = len(flags.blocks)
    K = len(flags.recurrent_gates) if flags.fgr else 0

    def rnd(*shape):
        return (torch.rand(*shape, generator=g, dtype=torch.float64) * 2 - 1).requires_grad_()

    gx = rnd(T, B, G * H)
    w_h = rnd(G * H, H + K * H)
    state = (rnd(B, H), rnd(B, H)) + (
        (rnd(B, K * H).detach().sigmoid().requires_grad_(),) if flags.fgr else ()
    )
    peep = rnd(3, H) if flags.peepholes else None
    return gx, w_h, state, peep


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def _compare(run, leaves, n_out_seed=1):
    """Run both implementations, backprop the same random projection, compare all results."""
    results = []
    for impl in (0, 1):
        for leaf in leaves:
            leaf.grad = None
        outs = run(impl)
        g = torch.Generator().manual_seed(n_out_seed)
        loss = sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum() for o in outs)
        loss.backward()
        results.append(([o.detach() for o in outs], [leaf.grad.clone() for leaf in leaves]))
    (fo, fg), (ro, rg) = results
    for a, b in zip(fo, ro, strict=True):
        assert _rel_err(a, b) < 1e-6
    for a, b in zip(fg, rg, strict=True):
        assert torch.count_nonzero(b) > 0  # the gradient exists and the test is not vacuous
        assert _rel_err(a, b) < 1e-6


def test_dispatch_uses_fast_paths():
    assert _kernels.lstm_scan is _fast.lstm_scan
    assert _kernels.gru_scan is _fast.gru_scan


@pytest.mark.parametrize("name", sorted(LSTM_FLAGS))
def test_lstm_matches_reference(name):
    flags = LSTM_FLAGS[name]
    gx, w_h, state, peep = _lstm_inputs(flags, T=7, B=3, H=5)
    leaves = [gx, w_h, *state] + ([peep] if peep is not None else [])

    def run(impl):
        fn = _fast.lstm_scan if impl == 0 else lstm_scan_reference
        out, final = fn(gx, w_h, state, flags, peep)
        return [out, *final]

    _compare(run, leaves)


@pytest.mark.parametrize(("z_input", "blend"), GRU_MODES)
def test_gru_matches_reference(z_input, blend):
    T, B, H = 7, 3, 5
    g = torch.Generator().manual_seed(1)

    def rnd(*shape):
        return (torch.rand(*shape, generator=g, dtype=torch.float64) * 2 - 1).requires_grad_()

    gx, u_r, w_c, h0 = rnd(T, B, 3 * H), rnd(H, H), rnd(H, H), rnd(B, H)
    u_z = rnd(H, H) if z_input != "none" else None
    leaves = [gx, u_r, w_c, h0] + ([u_z] if u_z is not None else [])

    def run(impl):
        fn = _fast.gru_scan if impl == 0 else gru_scan_reference
        out, h = fn(gx, u_z, u_r, w_c, h0, z_input=z_input, blend=blend)
        return [out, h]

    _compare(run, leaves)


@pytest.mark.parametrize("name", ["lstm", "cifg", "fgr", "nog", "no-gates-linear"])
def test_lstm_gradcheck(name):
    flags = LSTM_FLAGS[name]
    gx, w_h, state, peep = _lstm_inputs(flags, T=3, B=2, H=2, seed=3)

    def fn(gx, w_h, *rest):
        st = rest[: len(state)]
        p = rest[len(state)] if peep is not None else None
        out, final = _fast.lstm_scan(gx, w_h, st, flags, p)
        return (out, *final)

    args = (gx, w_h, *state) + ((peep,) if peep is not None else ())
    assert torch.autograd.gradcheck(fn, args)


@pytest.mark.parametrize(("z_input", "blend"), GRU_MODES[:4])
def test_gru_gradcheck(z_input, blend):
    g = torch.Generator().manual_seed(4)
    T, B, H = 3, 2, 2

    def rnd(*shape):
        return (torch.rand(*shape, generator=g, dtype=torch.float64) * 2 - 1).requires_grad_()

    gx, u_r, w_c, h0 = rnd(T, B, 3 * H), rnd(H, H), rnd(H, H), rnd(B, H)
    u_z = rnd(H, H) if z_input != "none" else None

    def fn(gx, u_r, w_c, h0, *u):
        return _fast.gru_scan(gx, u[0] if u else None, u_r, w_c, h0, z_input=z_input, blend=blend)

    assert torch.autograd.gradcheck(fn, (gx, u_r, w_c, h0) + ((u_z,) if u_z is not None else ()))


def test_partial_requires_grad_and_no_grad():
    """Only the weights need grad (gx, state constants), and a no-grad forward runs too."""
    flags = LSTM_FLAGS["lstm-peep"]
    gx, w_h, state, peep = _lstm_inputs(flags, T=4, B=2, H=3)
    gx_c, state_c = gx.detach(), tuple(s.detach() for s in state)
    out, _ = _fast.lstm_scan(gx_c, w_h, state_c, flags, peep)
    out.sum().backward()
    ref_w, ref_p = w_h.grad.clone(), peep.grad.clone()
    w_h.grad = peep.grad = None
    lstm_scan_reference(gx_c, w_h, state_c, flags, peep)[0].sum().backward()
    assert _rel_err(ref_w, w_h.grad) < 1e-6 and _rel_err(ref_p, peep.grad) < 1e-6
    with torch.no_grad():
        out2, _ = _fast.lstm_scan(gx, w_h, state, flags, peep)
    assert not out2.requires_grad
    torch.testing.assert_close(out2, out.detach())

    h0 = torch.zeros(2, 3, dtype=torch.float64)
    u = [torch.randn(3, 3, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    o, _ = _fast.gru_scan(
        torch.randn(4, 2, 9, dtype=torch.float64), *u, h0, z_input="h", blend="gru"
    )
    o.sum().backward()
    assert all(p.grad is not None and torch.count_nonzero(p.grad) > 0 for p in u)


def test_double_backward_is_refused():
    flags = LSTM_FLAGS["lstm"]
    gx, w_h, state, _ = _lstm_inputs(flags, T=3, B=2, H=2)
    out, _ = _fast.lstm_scan(gx, w_h, state, flags, None)
    # a non-linear loss, so the incoming gradient itself depends on the inputs
    (grad,) = torch.autograd.grad((out**2).sum(), w_h, create_graph=True)
    with pytest.raises(RuntimeError, match="differentiate twice"):
        grad.sum().backward()


def test_bad_arguments():
    flags = dataclasses.replace(LSTM_FLAGS["cifg"], input_gate=False)
    gx, w_h, state, peep = _lstm_inputs(LSTM_FLAGS["lstm-i"], T=2, B=2, H=2)
    with pytest.raises(ConfigError, match="input_gate"):
        _fast.lstm_scan(gx, w_h, state, flags, peep)
    x = torch.zeros(2, 2, 6)
    w = torch.zeros(2, 2)
    with pytest.raises(ConfigError, match="z_input 'x'"):
        _fast.gru_scan(x, w, w, w, w, z_input="x", blend="gru")
    with pytest.raises(ConfigError, match="blend 'lstm'"):
        _fast.gru_scan(x, w, w, w, w, z_input="h", blend="lstm")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["lstm", "cifg", "fgr", "lstm-o"])
def test_lstm_cuda_matches_cpu(name):
    flags = LSTM_FLAGS[name]
    gx, w_h, state, peep = _lstm_inputs(flags, T=6, B=4, H=8)
    leaves = [gx, w_h, *state] + ([peep] if peep is not None else [])
    cuda = [t.detach().cuda().requires_grad_() for t in leaves]
    out_c, fin_c = _fast.lstm_scan(
        cuda[0],
        cuda[1],
        tuple(cuda[2 : 2 + len(state)]),
        flags,
        cuda[-1] if peep is not None else None,
    )
    out, fin = lstm_scan_reference(gx, w_h, state, flags, peep)
    (out_c.sum() + fin_c[1].sum()).backward()
    (out.sum() + fin[1].sum()).backward()
    assert _rel_err(out_c.cpu(), out.detach()) < 1e-6
    for a, b in zip(cuda, leaves, strict=True):
        assert _rel_err(a.grad.cpu(), b.grad) < 1e-6


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gru_cuda_matches_cpu():
    g = torch.Generator().manual_seed(5)
    T, B, H = 6, 4, 8
    ts = [
        torch.randn(*s, generator=g, dtype=torch.float64)
        for s in [(T, B, 3 * H), (H, H), (H, H), (H, H), (B, H)]
    ]
    cpu = [t.clone().requires_grad_() for t in ts]
    gpu = [t.cuda().requires_grad_() for t in ts]
    for args, fn in ((cpu, gru_scan_reference), (gpu, _fast.gru_scan)):
        o, h = fn(*args, z_input="tanh_h", blend="mut")
        (o.sum() + h.sum()).backward()
    for a, b in zip(gpu, cpu, strict=True):
        assert _rel_err(a.grad.cpu(), b.grad) < 1e-6


def test_autocast_runs_the_recurrence_in_the_weights_dtype():
    """bf16 input projections with fp32 weights (CPU autocast): fp32 recurrence, fp32 grads."""
    flags = LSTM_FLAGS["cifg"]
    g = torch.Generator().manual_seed(6)
    gx = torch.randn(5, 2, 12, generator=g).bfloat16().requires_grad_()
    w_h = torch.randn(12, 4, generator=g).requires_grad_()
    peep = torch.randn(3, 4, generator=g).requires_grad_()
    state = (torch.zeros(2, 4), torch.zeros(2, 4))
    out, _ = _fast.lstm_scan(gx, w_h, state, flags, peep)
    ref, _ = lstm_scan_reference(gx.float(), w_h, state, flags, peep)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref)
    out.sum().backward()
    assert gx.grad.dtype == torch.bfloat16 and w_h.grad.dtype == torch.float32
