#!/usr/bin/python3
"""Float64 PyTorch reference of causal GQA attention with a sliding window and packed-example
masks (forward: outputs and log-sum-exp; backward: autograd gradients of sum(dout * out)),
for tests/train/attention_tiled_test.cpp. Written from the definition, shares no code with
temper. Also writes the magnitude scales the test's rounding bounds are relative to.

    attention_torch_ref.py CASE.bin...   writes CASE.bin.ref next to each

CASE.bin (little-endian): int32 T, pos0, NH, NKV, HD, window, has_first_key; float32 scale;
float32 q (T, NH, HD), k (pos0+T, NKV, HD), v (pos0+T, NKV, HD), dout (T, NH, HD);
int32 first_key (T) when has_first_key.
CASE.bin.ref: float64 out (T*NH*HD), lse (T*NH), then max score magnitude
(scale * sum_d |q_d k_d| over visible pairs), and when pos0 = 0: dq, dk, dv, then the largest
scale * sum_j P_ij (|dP_ij - D_i| + A_ij) |K_j| (dq; A_ij below), its transpose summed over the
group's heads for dk, and sum_i P_ij |dO_i| (dv).
"""
import struct
import sys

import numpy as np
import torch

F = torch.float64


def run(path):
    raw = open(path, "rb").read()
    T, pos0, NH, NKV, HD, window, has_fk = struct.unpack_from("<7i", raw, 0)
    (scale,) = struct.unpack_from("<f", raw, 28)
    off = 32
    n_pos = pos0 + T

    def take(count, dtype):
        nonlocal off
        a = np.frombuffer(raw, dtype, count, off)
        off += a.nbytes
        return a

    q = torch.tensor(take(T * NH * HD, "<f4").astype(np.float64)).reshape(T, NH, HD)
    k = torch.tensor(take(n_pos * NKV * HD, "<f4").astype(np.float64)).reshape(n_pos, NKV, HD)
    v = torch.tensor(take(n_pos * NKV * HD, "<f4").astype(np.float64)).reshape(n_pos, NKV, HD)
    dout = torch.tensor(take(T * NH * HD, "<f4").astype(np.float64)).reshape(T, NH, HD)
    first = take(T, "<i4").astype(np.int64) if has_fk else np.zeros(T, np.int64)

    qpos = torch.arange(T)[:, None] + pos0
    kpos = torch.arange(n_pos)[None, :]
    vis = (kpos <= qpos) & (kpos >= torch.tensor(first)[:, None])
    if window > 0:
        vis &= qpos - kpos < window
    group = NH // NKV
    q.requires_grad_(True)
    k.requires_grad_(True)
    v.requires_grad_(True)
    kh = k.repeat_interleave(group, dim=1)  # (n_pos, NH, HD)
    vh = v.repeat_interleave(group, dim=1)
    s = torch.einsum("thd,phd->htp", q, kh) * float(scale)
    s = s.masked_fill(~vis[None], float("-inf"))
    lse = torch.logsumexp(s, dim=-1)  # (NH, T)
    p = torch.exp(s - lse[..., None])
    out = torch.einsum("htp,phd->thd", p, vh)
    res = [out.detach().reshape(-1), lse.detach().t().reshape(-1)]
    mag = torch.einsum("thd,phd->htp", q.detach().abs(), kh.detach().abs()) * float(scale)
    res.append(torch.tensor([mag.masked_fill(~vis[None], 0).max().item()], dtype=F))
    if pos0 == 0:
        dq, dk, dv = torch.autograd.grad((out * dout).sum(), (q, k, v))
        with torch.no_grad():
            dp = torch.einsum("thd,phd->htp", dout, vh)
            D = (p * dp).sum(-1, keepdim=True)
            ds = p * (dp - D).abs()
            # dP - D cancels (to 0 when one key is visible): its f32 rounding is absolute,
            # <= eps-multiples of A_ij = sum_d |dO_id| (|V_jd| + max|V|) (the dot dP, and D
            # from the f32 output O), so the bounds also scale with P A in place of P |dP - D|.
            a = torch.einsum("thd,phd->htp", dout.abs(), vh.detach().abs() + v.detach().abs().max())
            ds = ds + p * a

            def per_kv_head(x):  # (n_pos, NH, HD) -> (n_pos, NKV, HD): dk, dv sum the group
                return x.reshape(x.shape[0], NKV, group, HD).sum(2)

            mq = torch.einsum("htp,phd->thd", ds, kh.detach().abs()) * scale
            mk = per_kv_head(torch.einsum("htp,thd->phd", ds, q.detach().abs())) * scale
            mv = per_kv_head(torch.einsum("htp,thd->phd", p, dout.abs()))
        res += [dq.reshape(-1), dk.reshape(-1), dv.reshape(-1),
                torch.tensor([mq.max().item(), mk.max().item(), mv.max().item()], dtype=F)]
    with open(path + ".ref", "wb") as f:
        for r in res:
            f.write(r.detach().numpy().astype("<f8").tobytes())


if __name__ == "__main__":
    torch.set_num_threads(1)
    for a in sys.argv[1:]:
        run(a)
