# Over 450 lines: two hand-written forward/backward pairs (LSTM, GRU) that tests prove equal
# to the plain equations; each pair reads best whole.
"""Hand-written autograd Functions for the LSTM and GRU recurrences (the fast paths).

Same contracts as :func:`rnnopt.cells._kernels.lstm_scan_reference` and
:func:`~rnnopt.cells._kernels.gru_scan_reference`; ``tests/cells/test_fast.py`` proves outputs and
gradients equal in float64.

Why this is fast without compilation: autograd over a Python loop records a dozen small nodes per
step and replays them one by one. Here forward runs under no autograd with one ``addmm`` per step
for the recurrent term and a handful of in-place elementwise ops writing into preallocated
``[T, B, ...]`` buffers. Everything backward needs that does not depend on the incoming gradient
(gate derivatives, products of saved activations) is computed for all steps at once before the
reverse loop, so each reverse step is ~5 elementwise ops plus one matmul for ``dh_prev``. The
recurrent weight gradient is ONE matmul over all steps after the loop (as fused RNN kernels
do), and the gradient w.r.t. ``gx`` is the stacked gate-gradient buffer itself. Gate ablations
are Python constants: branches are chosen once per call, never per element.

Layout notes. ``acts`` ``[T, B, G*H]`` holds the gate activations in ``flags.blocks`` order
(i, f, g, o), so the blocks i, f, g that multiply ``dc`` are always the first ``k`` blocks and
their gradients are written with one broadcast multiply into a ``[B, k, H]`` view.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from rnnopt.errors import ConfigError

if TYPE_CHECKING:  # runtime import would be circular: _kernels imports this module
    from rnnopt.cells._kernels import LSTMFlags

__all__ = ["gru_scan", "lstm_scan"]


def _no_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    # The Functions manage dtypes themselves (inputs are cast to gx's dtype by the wrappers);
    # autocast inside would change the dtype of ``out=`` results per op.
    if device.type in ("cpu", "cuda"):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def _hprev_matmul(dg: Tensor, h0: Tensor, hs: Tensor) -> Tensor:
    """``sum_t dg[t].T @ hprev[t]`` with hprev = (h0, hs[0], ..., hs[T-2]), as two matmuls.

    dg ``[T, B, N]`` (may be a column slice), h0 ``[B, M]``, hs ``[T, B, M]``; returns ``[N, M]``.
    """
    T, B, N = dg.shape
    out = dg[0].t() @ h0
    if T > 1:
        out.addmm_(dg[1:].reshape((T - 1) * B, N).t(), hs[:-1].reshape((T - 1) * B, hs.shape[2]))
    return out


class _LSTMScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gx, w_h, h0, c0, a0, peep, flags):  # type: ignore[override]
        with torch.no_grad(), _no_autocast(gx.device):
            return _lstm_forward(ctx, gx, w_h, h0, c0, a0, peep, flags)

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out, g_h, g_c, g_a):  # type: ignore[override]
        with _no_autocast(g_out.device):
            return _lstm_backward(ctx, g_out, g_h, g_c, g_a)


def _lstm_forward(ctx, gx, w_h, h0, c0, a0, peep, flags):
    T, B, GH = gx.shape
    H = h0.shape[1]
    blocks = flags.blocks
    G = len(blocks)
    pos = {b: n for n, b in enumerate(blocks)}
    has_i, has_f, has_o = "i" in pos, "f" in pos, "o" in pos
    use_peep = peep is not None
    w_h_in = w_h
    fgr = a0 is not None
    opts = dict(dtype=gx.dtype, device=gx.device)

    acts = torch.empty(T, B, GH, **opts)
    c_all = torch.empty(T, B, H, **opts)
    out = torch.empty(T, B, H, **opts)
    tmp = torch.empty(B, H, **opts)
    blk = acts.view(T, B, G, H)
    in_act = flags.input_activation
    out_act = flags.output_activation
    # tanh(x) = 2 sigmoid(2x) - 1. torch's CPU tanh costs about five sigmoids, and this way
    # i, f and g share one sigmoid call: g's rows of gx and w_h are scaled by 2 up front.
    pos_g = pos["g"]
    if in_act:
        acts.copy_(gx)
        blk[:, :, pos_g].mul_(2.0)
        w_h = w_h.clone()
        w_h[pos_g * H : (pos_g + 1) * H].mul_(2.0)
    tc_all = torch.empty(T, B, H, **opts) if out_act else None  # tanh(c_t)
    tc_t = tc_all.unbind(0) if out_act else None
    # y = 2 s - 1 as one addcmul with tensor operands (a Python scalar costs a conversion)
    minus_one = torch.full((B, H), -1.0, **opts)
    two = torch.full((B, H), 2.0, **opts)
    # Per-step views, made once by unbind (one C++ call) instead of T Python slicings.
    gx_t, acts_t, c_t, out_t = gx.unbind(0), acts.unbind(0), c_all.unbind(0), out.unbind(0)
    n_sig_front = int(has_i) + int(has_f)  # i, f: contiguous sigmoid blocks at the front
    n_front = n_sig_front + int(in_act)
    sig_front = acts[:, :, : n_front * H].unbind(0) if n_front else None
    g_t = blk[:, :, pos["g"]].unbind(0)
    i_t = blk[:, :, pos["i"]].unbind(0) if has_i else None
    f_t = blk[:, :, pos["f"]].unbind(0) if has_f else None
    o_t = blk[:, :, pos["o"]].unbind(0) if has_o else None
    if use_peep:
        p_o = peep[2]
        if n_sig_front:
            pf = peep[[k for k, b in enumerate("if") if b in pos]].view(1, n_sig_front, H)
            pre_if_t = blk[:, :, :n_sig_front].unbind(0)
    if fgr:
        w_hh_t = w_h[:, :H].t()
        w_ha_t = w_h[:, H:].t()
        rec = flags.recurrent_gates
        KH = w_h.shape[1] - H
        a_hist = torch.empty(T, B, KH, **opts)
        a_blk = a_hist.view(T, B, len(rec), H)
        a_t = a_hist.unbind(0)
        # copies (src block, dst slot) of each recurrent gate into a_hist
        a_src = [blk[:, :, pos[r]].unbind(0) for r in rec]
        a_dst = [a_blk[:, :, k].unbind(0) for k in range(len(rec))]
    else:
        w_hh_t = w_h.t()

    h, c = h0, c0
    coupled = flags.coupled
    for t in range(T):
        pre = acts_t[t]
        if in_act:
            pre.addmm_(h, w_hh_t)
        else:
            torch.addmm(gx_t[t], h, w_hh_t, out=pre)
        if fgr:
            pre.addmm_(a0 if t == 0 else a_t[t - 1], w_ha_t)
        if use_peep and n_sig_front:
            pre_if_t[t].addcmul_(c.unsqueeze(1), pf)
        if n_front:
            sig_front[t].sigmoid_()
        if in_act:
            torch.addcmul(minus_one, g_t[t], two, out=g_t[t])
        cn = c_t[t]
        if has_f:
            torch.mul(f_t[t], c, out=cn)
            if has_i:
                cn.addcmul_(i_t[t], g_t[t])
            else:
                cn.add_(g_t[t])
        elif coupled:  # c' = (1 - i) c + i g = c + i (g - c)
            torch.sub(g_t[t], c, out=tmp)
            torch.addcmul(c, i_t[t], tmp, out=cn)
        elif has_i:
            torch.addcmul(c, i_t[t], g_t[t], out=cn)
        else:
            torch.add(c, g_t[t], out=cn)
        if has_o:
            o = o_t[t]
            if use_peep:
                o.addcmul_(cn, p_o)
            o.sigmoid_()
        if out_act:
            tc = tc_t[t]
            torch.add(cn, cn, out=tc).sigmoid_()
            torch.addcmul(minus_one, tc, two, out=tc)
            if has_o:
                torch.mul(o, tc, out=out_t[t])
            else:
                out_t[t].copy_(tc)
        elif has_o:
            torch.mul(o, cn, out=out_t[t])
        else:
            out_t[t].copy_(cn)
        if fgr:
            for src, dst in zip(a_src, a_dst, strict=True):
                dst[t].copy_(src[t])
        h, c = out_t[t], cn

    saved = [acts, c_all, out, h0, c0, w_h_in, tc_all]
    if fgr:
        saved += [a0, a_hist]
    if use_peep:
        saved.append(peep)
    ctx.save_for_backward(*saved)
    ctx.flags = flags
    ctx.use_peep = use_peep
    ctx.fgr = fgr
    h_T = out[-1].clone()
    c_T = c_all[-1].clone()
    a_T = a_hist[-1].clone() if fgr else None
    return out, h_T, c_T, a_T


def _lstm_backward(ctx, g_out, g_h, g_c, g_a):
    flags = ctx.flags
    fgr, use_peep = ctx.fgr, ctx.use_peep
    saved = list(ctx.saved_tensors)
    acts, c_all, out, h0, c0, w_h, tc_all = saved[:7]
    rest = saved[7:]
    if fgr:
        a0, a_hist = rest[:2]
        rest = rest[2:]
    peep = rest[0] if use_peep else None
    need_gx, need_wh, need_h0, need_c0, need_a0, need_peep = ctx.needs_input_grad[:6]

    T, B, _ = acts.shape
    H = h0.shape[1]
    blocks = flags.blocks
    G = len(blocks)
    pos = {b: n for n, b in enumerate(blocks)}
    has_i, has_f, has_o = "i" in pos, "f" in pos, "o" in pos
    k = G - int(has_o)  # blocks i, f, g: the ones whose gradient is dc times a coefficient
    blk = acts.view(T, B, G, H)
    i_a = blk[:, :, pos["i"]] if has_i else None
    f_a = blk[:, :, pos["f"]] if has_f else None
    g_a_ = blk[:, :, pos["g"]]
    o_a = blk[:, :, pos["o"]] if has_o else None
    # c_{t-1} for all t, materialised only where a per-step view is not enough
    need_c_prev = flags.coupled or (use_peep and (has_i or has_f))
    c_prev = torch.cat((c0.unsqueeze(0), c_all[:-1]), 0) if need_c_prev else None

    # Coefficients independent of the incoming gradient, for all steps at once, written
    # in place where possible: backward's peak memory is what a training step pays.
    tc = tc_all if flags.output_activation else c_all
    if has_o:
        a_o = torch.neg(o_a).add_(1.0).mul_(o_a).mul_(tc)  # dpre_o = dh * tc o (1 - o)
        if flags.output_activation:
            b_c = torch.mul(tc, tc).neg_().add_(1.0).mul_(o_a)  # dc += dh o (1 - tanh^2 c)
        else:
            b_c = o_a
    else:
        a_o = None
        b_c = torch.mul(tc, tc).neg_().add_(1.0) if flags.output_activation else None
    del tc
    N = torch.empty(T, B, k, H, dtype=acts.dtype, device=acts.device)
    if has_i:  # dpre_i = dc * i (1 - i) * (g, or g - c_prev when coupled)
        n_i = torch.neg(i_a, out=N[:, :, pos["i"]]).add_(1.0).mul_(i_a)
        n_i.mul_(g_a_ - c_prev if flags.coupled else g_a_)
    if has_f:  # dpre_f = dc * f (1 - f) c_prev
        n_f = torch.neg(f_a, out=N[:, :, pos["f"]]).add_(1.0).mul_(f_a)
        n_f[1:].mul_(c_all[:-1])
        n_f[0].mul_(c0)
    n_g = N[:, :, pos["g"]]  # dpre_g = dc * i * act'(g)
    if flags.input_activation:
        torch.mul(g_a_, g_a_, out=n_g).neg_().add_(1.0)
        if has_i:
            n_g.mul_(i_a)
    elif has_i:
        n_g.copy_(i_a)
    else:
        n_g.fill_(1.0)
    if has_f:
        fcoef = f_a
    elif flags.coupled:
        fcoef = 1.0 - i_a
    else:
        fcoef = None
    if fgr:
        rec = flags.recurrent_gates
        sig = {"i": i_a, "f": f_a, "o": o_a}
        dsig = {r: (sig[r] * (1.0 - sig[r])).unbind(0) for r in rec}
        w_hh = w_h[:, :H]
        w_ha = w_h[:, H:]
    else:
        w_hh = w_h

    dgates = torch.empty_like(acts)
    dblk = dgates.view(T, B, G, H)
    dg_t = dgates.unbind(0)
    dk_t = dblk[:, :, :k].unbind(0)
    do_t = dblk[:, :, pos["o"]].unbind(0) if has_o else None
    di_t = dblk[:, :, pos["i"]].unbind(0) if has_i else None
    df_t = dblk[:, :, pos["f"]].unbind(0) if has_f else None
    go_t = g_out.unbind(0)
    N_t = N.unbind(0)
    a_o_t = a_o.unbind(0) if a_o is not None else None
    b_c_t = b_c.unbind(0) if b_c is not None else None
    fc_t = fcoef.unbind(0) if fcoef is not None else None
    if use_peep:
        p_i, p_f, p_o = peep[0], peep[1], peep[2]
    if fgr:
        da_slot = {r: n for n, r in enumerate(rec)}
        dgrec_t = {r: dblk[:, :, pos[r]].unbind(0) for r in rec}

    dh = g_out[T - 1] + g_h
    dc = g_c.clone()
    da = g_a.clone() if fgr else None
    dh0 = None
    for t in range(T - 1, -1, -1):
        if fgr:
            da_v = da.view(B, len(rec), H)
        if has_o:
            dgo = do_t[t]
            torch.mul(dh, a_o_t[t], out=dgo)
            if fgr:
                dgo.addcmul_(da_v[:, da_slot["o"]], dsig["o"][t])
            if use_peep:
                dc.addcmul_(dgo, p_o)
        if b_c_t is not None:
            dc.addcmul_(dh, b_c_t[t])
        else:
            dc.add_(dh)
        torch.mul(N_t[t], dc.unsqueeze(1), out=dk_t[t])
        if fgr:
            for r in rec:
                if r != "o":
                    dgrec_t[r][t].addcmul_(da_v[:, da_slot[r]], dsig[r][t])
        if fc_t is not None:
            dc.mul_(fc_t[t])
        if use_peep:
            if has_i:
                dc.addcmul_(di_t[t], p_i)
            if has_f:
                dc.addcmul_(df_t[t], p_f)
        if t > 0:
            torch.addmm(go_t[t - 1], dg_t[t], w_hh, out=dh)
            if fgr:
                da = dg_t[t] @ w_ha
        else:
            if need_h0:
                dh0 = dg_t[0] @ w_hh
            if fgr and need_a0:
                da = dg_t[0] @ w_ha

    d_wh = None
    if need_wh:
        d_wh = _hprev_matmul(dgates, h0, out)
        if fgr:
            d_wh = torch.cat((d_wh, _hprev_matmul(dgates, a0, a_hist)), 1)
    d_peep = None
    if need_peep and use_peep:
        d_peep = torch.zeros_like(peep)
        scratch = N[:, :, 0]  # N is dead after the loop: reuse it for the products
        for row, gate, c_seen in ((0, "i", c_prev), (1, "f", c_prev), (2, "o", c_all)):
            if gate in pos:
                d_peep[row] = torch.mul(dblk[:, :, pos[gate]], c_seen, out=scratch).sum((0, 1))
    return (
        dgates if need_gx else None,
        d_wh,
        dh0,
        dc if need_c0 else None,
        da if (fgr and need_a0) else None,
        d_peep,
        None,
    )


def lstm_scan(
    gx: Tensor,
    w_h: Tensor,
    state: tuple[Tensor, ...],
    flags: LSTMFlags,
    peep: Tensor | None,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Fast :func:`rnnopt.cells._kernels.lstm_scan_reference` (same arguments and results).

    Double backward is not supported (raises a RuntimeError naming this function).
    """
    if flags.coupled and not flags.input_gate:
        raise ConfigError("coupled gates need the input gate: input_gate=False is not allowed")
    # Under autocast gx arrives in bf16/fp16 while the weights are fp32: run the recurrence in
    # the wider type (the state is a running sum that low precision would erode).
    dt = torch.promote_types(gx.dtype, w_h.dtype)
    gx = gx.to(dt)
    h0, c0 = state[0].to(dt), state[1].to(dt)
    a0 = state[2].to(dt) if flags.fgr else None
    use_peep = flags.peepholes and peep is not None
    p = peep.to(dt) if use_peep else None
    out, h, c, a = _LSTMScan.apply(gx, w_h.to(dt), h0, c0, a0, p, flags)
    return out, ((h, c, a) if flags.fgr else (h, c))


class _GRUScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gx, u_z, u_r, w_c, h0, z_input, blend):  # type: ignore[override]
        with torch.no_grad(), _no_autocast(gx.device):
            return _gru_forward(ctx, gx, u_z, u_r, w_c, h0, z_input, blend)

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out, g_h):  # type: ignore[override]
        with _no_autocast(g_out.device):
            return _gru_backward(ctx, g_out, g_h)


def _gru_forward(ctx, gx, u_z, u_r, w_c, h0, z_input, blend):
    T, B, H3 = gx.shape
    H = H3 // 3
    opts = dict(dtype=gx.dtype, device=gx.device)
    acts = torch.empty(T, B, H3, **opts)  # sigmoid(z), sigmoid(r), tanh(g)
    rh_all = torch.empty(T, B, H, **opts)
    out = torch.empty(T, B, H, **opts)
    tmp = torch.empty(B, H, **opts)
    minus_one = torch.full((B, H), -1.0, **opts)
    two = torch.full((B, H), 2.0, **opts)
    out_t, rh_t = out.unbind(0), rh_all.unbind(0)
    z_t = acts[:, :, :H].unbind(0)
    r_t = acts[:, :, H : 2 * H].unbind(0)
    g_t = acts[:, :, 2 * H :].unbind(0)
    # tanh(x) = 2 sigmoid(2x) - 1 (torch's CPU tanh costs about five sigmoids)
    torch.mul(gx[:, :, 2 * H :], 2.0, out=acts[:, :, 2 * H :])
    w_c_t = (w_c * 2.0).t()
    if z_input == "h":
        u_zr_t = torch.cat((u_z, u_r), 0).t()
        zr_t = acts[:, :, : 2 * H].unbind(0)
        gxzr_t = gx[:, :, : 2 * H].unbind(0)
    else:
        u_r_t = u_r.t()
        gxr_t = gx[:, :, H : 2 * H].unbind(0)
        if z_input == "tanh_h":
            u_z_t = u_z.t()
            gxz_t = gx[:, :, :H].unbind(0)
        else:  # z does not depend on h: all steps at once
            torch.sigmoid(gx[:, :, :H], out=acts[:, :, :H])
    mut = blend == "mut"
    h = h0
    for t in range(T):
        if z_input == "h":
            torch.addmm(gxzr_t[t], h, u_zr_t, out=zr_t[t])
            zr_t[t].sigmoid_()
        else:
            torch.addmm(gxr_t[t], h, u_r_t, out=r_t[t])
            r_t[t].sigmoid_()
            if z_input == "tanh_h":
                torch.add(h, h, out=tmp).sigmoid_()
                torch.addcmul(minus_one, tmp, two, out=tmp)  # tanh(h)
                torch.addmm(gxz_t[t], tmp, u_z_t, out=z_t[t])
                z_t[t].sigmoid_()
        torch.mul(r_t[t], h, out=rh_t[t])
        g = g_t[t]
        g.addmm_(rh_t[t], w_c_t).sigmoid_()
        torch.addcmul(minus_one, g, two, out=g)
        if mut:  # h' = g z + h (1 - z) = h + z (g - h)
            torch.sub(g, h, out=tmp)
            torch.addcmul(h, z_t[t], tmp, out=out_t[t])
        else:  # h' = z h + (1 - z) g = g + z (h - g)
            torch.sub(h, g, out=tmp)
            torch.addcmul(g, z_t[t], tmp, out=out_t[t])
        h = out_t[t]
    ctx.save_for_backward(acts, rh_all, out, h0, u_z if z_input != "none" else None, u_r, w_c)
    ctx.z_input, ctx.mut = z_input, mut
    return out, out[-1].clone()


def _gru_backward(ctx, g_out, g_h):
    acts, rh_all, out, h0, u_z, u_r, w_c = ctx.saved_tensors
    z_input, mut = ctx.z_input, ctx.mut
    need_gx, need_uz, need_ur, need_wc, need_h0 = ctx.needs_input_grad[:5]
    T, B, H3 = acts.shape
    H = H3 // 3
    z, r, g = acts[:, :, :H], acts[:, :, H : 2 * H], acts[:, :, 2 * H :]
    hprev = torch.cat((h0.unsqueeze(0), out[:-1]), 0)
    dzs = z * (1.0 - z)
    dg_pre = 1.0 - g * g
    if mut:
        c_z = (g - hprev).mul_(dzs)  # dpre_z = dh * c_z
        c_g = dg_pre.mul_(z)  # dpre_g = dh * c_g
        c_h = 1.0 - z  # direct dh_prev = dh * c_h
    else:
        c_z = (hprev - g).mul_(dzs)
        c_g = dg_pre.mul_(1.0 - z)
        c_h = z
    c_r = hprev * r * (1.0 - r)  # dpre_r = (dpre_g @ w_c) * c_r
    if z_input == "tanh_h":
        th = torch.tanh(hprev)
        c_th = (1.0 - th * th).unbind(0)

    dgates = torch.empty_like(acts)
    dz_t = dgates[:, :, :H].unbind(0)
    dr_t = dgates[:, :, H : 2 * H].unbind(0)
    dc_t = dgates[:, :, 2 * H :].unbind(0)
    dzr_t = dgates[:, :, : 2 * H].unbind(0)
    c_z_t, c_g_t, c_h_t, c_r_t, r_t = (x.unbind(0) for x in (c_z, c_g, c_h, c_r, r))
    go_t = g_out.unbind(0)
    u_zr = torch.cat((u_z, u_r), 0) if z_input == "h" else None
    drh = torch.empty(B, H, dtype=acts.dtype, device=acts.device)
    dh_new = torch.empty_like(drh)
    dh = g_out[T - 1] + g_h
    for t in range(T - 1, -1, -1):
        torch.mul(dh, c_g_t[t], out=dc_t[t])
        torch.mm(dc_t[t], w_c, out=drh)
        torch.mul(drh, c_r_t[t], out=dr_t[t])
        torch.mul(dh, c_z_t[t], out=dz_t[t])
        if t == 0 and not need_h0:
            break
        base = go_t[t - 1] if t > 0 else torch.zeros_like(dh)
        if z_input == "h":
            torch.addmm(base, dzr_t[t], u_zr, out=dh_new)
        else:
            torch.addmm(base, dr_t[t], u_r, out=dh_new)
            if z_input == "tanh_h":
                dh_new.addcmul_(dz_t[t] @ u_z, c_th[t])
        dh_new.addcmul_(dh, c_h_t[t])
        dh_new.addcmul_(drh, r_t[t])
        dh, dh_new = dh_new, dh

    d_uz = None
    if need_uz and z_input != "none":
        zin0, zin = (torch.tanh(h0), torch.tanh(out)) if z_input == "tanh_h" else (h0, out)
        d_uz = _hprev_matmul(dgates[:, :, :H], zin0, zin)
    d_ur = _hprev_matmul(dgates[:, :, H : 2 * H], h0, out) if need_ur else None
    d_wc = None
    if need_wc:
        d_wc = dgates[:, :, 2 * H :].reshape(T * B, H).t() @ rh_all.reshape(T * B, H)
    return (
        dgates if need_gx else None,
        d_uz,
        d_ur,
        d_wc,
        dh if need_h0 else None,
        None,
        None,
    )


def gru_scan(
    gx: Tensor,
    u_z: Tensor | None,
    u_r: Tensor,
    w_c: Tensor,
    h0: Tensor,
    *,
    z_input: str,
    blend: str,
) -> tuple[Tensor, Tensor]:
    """Fast :func:`rnnopt.cells._kernels.gru_scan_reference` (same arguments and results).

    Double backward is not supported (raises a RuntimeError naming this function).
    """
    if z_input not in ("h", "tanh_h", "none"):
        raise ConfigError(f"z_input {z_input!r}: expected 'h', 'tanh_h' or 'none'")
    if blend not in ("gru", "mut"):
        raise ConfigError(f"blend {blend!r}: expected 'gru' or 'mut'")
    if z_input != "none" and u_z is None:
        raise ConfigError(f"z_input {z_input!r} needs u_z; pass z_input='none' for no u_z")
    dt = torch.promote_types(gx.dtype, w_c.dtype)  # see lstm_scan
    gx = gx.to(dt)
    u_z = u_z.to(dt) if z_input != "none" else None
    return _GRUScan.apply(gx, u_z, u_r.to(dt), w_c.to(dt), h0.to(dt), z_input, blend)
