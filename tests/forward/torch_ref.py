#!/usr/bin/python3
"""Independent PyTorch reference logits for tiny HF checkpoints (llama, gemma3, gemma4,
qwen3, qwen3moe, phi3), written from the Hugging Face modeling semantics (docs/architectures.md and
transformers' modeling_*.py), reading config.json and the safetensors directly. Shares no
code with temper's C++. Computes in float64 from the stored weights (bf16/f16 upcast
exactly), so the only differences to temper are temper's fp32 rounding.

    /usr/bin/python3 tests/forward/torch_ref.py --tokens 1,2,3 --out OUT_DIR MODEL_DIR...

Writes OUT_DIR/<basename(MODEL_DIR)>.f32: float32 little-endian logits [n_tokens][vocab].
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch

F = torch.float64


# ----------------------------------------------------------------------------- loading

def safetensors_entries(folder):
    """Yields (name, dtype, shape, bytes) of every tensor of the folder's (sharded) safetensors,
    reading one tensor at a time (so a caller that keeps bf16 holds no copy of the file)."""
    idx = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(idx):
        files = sorted(set(json.load(open(idx))["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    for fn in files:
        with open(os.path.join(folder, fn), "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
            for name, info in header.items():
                if name == "__metadata__":
                    continue
                a, b = info["data_offsets"]
                f.seek(8 + n + a)
                yield name, info["dtype"], info["shape"], f.read(b - a)


def load_safetensors(folder):
    """Every tensor in float64 (bf16/f16 upcast exactly)."""
    out = {}
    for name, dtype, shape, buf in safetensors_entries(folder):
        if dtype == "F32":
            arr = np.frombuffer(buf, "<f4").astype(np.float64)
        elif dtype == "F16":
            arr = np.frombuffer(buf, "<f2").astype(np.float64)
        elif dtype == "BF16":
            bits = np.frombuffer(buf, "<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32).astype(np.float64)
        else:
            raise ValueError("%s: dtype %s" % (name, dtype))
        out[name] = torch.from_numpy(arr.reshape(shape).copy())
    return out


class W:
    """Tensor lookup by the text model's canonical name under any of the known prefixes."""

    def __init__(self, tensors, prefixes):
        self.t, self.prefixes = tensors, prefixes

    def has(self, name):
        return any(p + name in self.t for p in self.prefixes)

    def __call__(self, name):
        for p in self.prefixes:
            if p + name in self.t:
                return self.t[p + name]
        raise KeyError(name)


# ----------------------------------------------------------------------------- pieces

def rms(x, w, eps, offset=0.0):
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return y if w is None else y * (offset + w)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope(x, pos, inv_freq):
    """x: [T, heads, hd]; inv_freq: [hd/2] (HF: cos/sin of cat(freqs, freqs))."""
    freqs = pos[:, None].to(F) * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]
    return x * cos + rotate_half(x) * sin


def default_inv_freq(theta, dim):
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).to(F) / dim))


def llama3_inv_freq(theta, dim, s):
    inv = default_inv_freq(theta, dim)
    factor, lo, hi = s["factor"], s["low_freq_factor"], s["high_freq_factor"]
    old = s["original_max_position_embeddings"]
    lo_wl, hi_wl = old / lo, old / hi
    wavelen = 2 * math.pi / inv
    inv_l = torch.where(wavelen > lo_wl, inv / factor, inv)
    smooth = (old / wavelen - lo) / (hi - lo)
    smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
    medium = ~(wavelen < hi_wl) * ~(wavelen > lo_wl)
    return torch.where(medium, smoothed, inv_l)


def attention(q, k, v, scale, window):
    """q: [T, nh, hd], k/v: [T, nkv, hd]; causal, optional sliding window."""
    T, nh, _ = q.shape
    rep = nh // k.shape[1]
    k = k.repeat_interleave(rep, dim=1)
    v = v.repeat_interleave(rep, dim=1)
    scores = torch.einsum("qhd,khd->hqk", q, k) * scale
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    allowed = j <= i
    if window:
        allowed = allowed & (i - j < window)
    scores = scores.masked_fill(~allowed[None], float("-inf"))
    p = torch.softmax(scores, dim=-1)
    return torch.einsum("hqk,khd->qhd", p, v).reshape(T, -1)


def gelu_tanh(x):
    return torch.nn.functional.gelu(x, approximate="tanh")


def silu(x):
    return torch.nn.functional.silu(x)


def lin(x, w):
    return x @ w.T


# ----------------------------------------------------------------------------- llama / qwen3

def forward_llama_qwen(c, w, ids, qk_norm, moe):
    H, L = c["hidden_size"], c["num_hidden_layers"]
    nh, nkv = c["num_attention_heads"], c.get("num_key_value_heads", c["num_attention_heads"])
    hd = c.get("head_dim") or H // nh
    eps = c["rms_norm_eps"]
    s = c.get("rope_scaling")
    theta = c.get("rope_theta", 10000.0)
    if s and s.get("rope_type", s.get("type")) == "llama3":
        inv = llama3_inv_freq(theta, hd, s)
    elif s and s.get("rope_type", s.get("type")) == "linear":
        inv = default_inv_freq(theta, hd) / s["factor"]
    else:
        inv = default_inv_freq(theta, hd)
    T = len(ids)
    pos = torch.arange(T)
    x = w("embed_tokens.weight")[ids]
    for l in range(L):
        p = "layers.%d." % l
        h = rms(x, w(p + "input_layernorm.weight"), eps)
        q = lin(h, w(p + "self_attn.q_proj.weight")).view(T, nh, hd)
        k = lin(h, w(p + "self_attn.k_proj.weight")).view(T, nkv, hd)
        v = lin(h, w(p + "self_attn.v_proj.weight")).view(T, nkv, hd)
        if qk_norm:
            q = rms(q, w(p + "self_attn.q_norm.weight"), eps)
            k = rms(k, w(p + "self_attn.k_norm.weight"), eps)
        q, k = rope(q, pos, inv), rope(k, pos, inv)
        a = attention(q, k, v, hd ** -0.5, c.get("sliding_window") or 0)  # Mistral's window
        x = x + lin(a, w(p + "self_attn.o_proj.weight"))
        h = rms(x, w(p + "post_attention_layernorm.weight"), eps)
        if moe and w.has(p + "mlp.gate.weight"):
            probs = torch.softmax(lin(h, w(p + "mlp.gate.weight")), dim=-1)
            topw, topi = torch.topk(probs, c["num_experts_per_tok"], dim=-1)
            if c.get("norm_topk_prob", False):
                topw = topw / topw.sum(-1, keepdim=True)
            m = torch.zeros_like(h)
            for t in range(T):
                for kk in range(topi.shape[1]):
                    e = int(topi[t, kk])
                    ep = p + "mlp.experts.%d." % e
                    g = lin(h[t], w(ep + "gate_proj.weight"))
                    u = lin(h[t], w(ep + "up_proj.weight"))
                    m[t] += topw[t, kk] * lin(silu(g) * u, w(ep + "down_proj.weight"))
        else:
            g = lin(h, w(p + "mlp.gate_proj.weight"))
            u = lin(h, w(p + "mlp.up_proj.weight"))
            m = lin(silu(g) * u, w(p + "mlp.down_proj.weight"))
        x = x + m
    x = rms(x, w("norm.weight"), eps)
    head = w("lm_head.weight") if not c.get("tie_word_embeddings", False) else w("embed_tokens.weight")
    return lin(x, head)


# ----------------------------------------------------------------------------- phi3

def phi3_row_blocks(c):
    """Phi-3's fused projections as Phi3Attention/Phi3MLP split them: qkv_proj's rows q, k, v and
    gate_up_proj's gate, up, as {separate module: (fused module, first row, rows)}."""
    nh = c.get("num_attention_heads", 1)
    nkv = c.get("num_key_value_heads") or nh
    hd = c.get("head_dim") or c.get("hidden_size", 0) // nh
    ff = c.get("intermediate_size", 0)
    qkv, gu = "self_attn.qkv_proj", "mlp.gate_up_proj"
    return {"self_attn.q_proj": (qkv, 0, nh * hd), "self_attn.k_proj": (qkv, nh * hd, nkv * hd),
            "self_attn.v_proj": (qkv, (nh + nkv) * hd, nkv * hd), "mlp.gate_proj": (gu, 0, ff),
            "mlp.up_proj": (gu, ff, ff)}


def forward_phi3(c, w, ids):
    """HF Phi3ForCausalLM: fused qkv_proj / gate_up_proj, partial rotary, LongRoPE (short
    factors up to original_max_position_embeddings tokens, long beyond; cos and sin times the
    attention factor, _compute_longrope_parameters)."""
    H, L = c["hidden_size"], c["num_hidden_layers"]
    hd = c.get("head_dim") or H // c["num_attention_heads"]
    eps = c["rms_norm_eps"]
    rot = int(hd * c.get("partial_rotary_factor", 1.0))
    T = len(ids)
    inv = default_inv_freq(c.get("rope_theta", 10000.0), rot)
    attn_factor = 1.0
    s = c.get("rope_scaling")
    if s and s.get("rope_type", s.get("type")) in ("longrope", "su"):
        orig = c["original_max_position_embeddings"]
        ext = s["long_factor"] if T > orig else s["short_factor"]
        inv = inv / torch.tensor(ext, dtype=F)
        factor = c["max_position_embeddings"] / orig
        attn_factor = s.get("attention_factor") or (
            1.0 if factor <= 1 else math.sqrt(1 + math.log(factor) / math.log(orig)))

    def rope_partial(x):
        return torch.cat((attn_factor * rope(x[..., :rot], pos, inv), x[..., rot:]), dim=-1)

    pos = torch.arange(T)
    blocks = phi3_row_blocks(c)
    x = w("embed_tokens.weight")[ids]
    for l in range(L):
        p = "layers.%d." % l
        h = rms(x, w(p + "input_layernorm.weight"), eps)
        if w.has(p + "self_attn.qkv_proj.weight"):
            qkv = lin(h, w(p + "self_attn.qkv_proj.weight"))
        else:  # the same rows as separate tensors (tests/train/torch_lora_ref.py splits them)
            qkv = torch.cat([lin(h, w(p + "self_attn.%s_proj.weight" % n)) for n in "qkv"], dim=-1)
        q, k, v = [qkv[:, r0:r0 + n].reshape(T, -1, hd) for _, r0, n in
                   (blocks["self_attn.%s_proj" % x] for x in "qkv")]
        q, k = rope_partial(q), rope_partial(k)
        a = attention(q, k, v, hd ** -0.5, c.get("sliding_window") or 0)
        x = x + lin(a, w(p + "self_attn.o_proj.weight"))
        h = rms(x, w(p + "post_attention_layernorm.weight"), eps)
        if w.has(p + "mlp.gate_up_proj.weight"):
            gate, up = lin(h, w(p + "mlp.gate_up_proj.weight")).chunk(2, dim=-1)
        else:
            gate, up = lin(h, w(p + "mlp.gate_proj.weight")), lin(h, w(p + "mlp.up_proj.weight"))
        x = x + lin(up * silu(gate), w(p + "mlp.down_proj.weight"))
    x = rms(x, w("norm.weight"), eps)
    head = w("embed_tokens.weight") if c.get("tie_word_embeddings", False) else w("lm_head.weight")
    return lin(x, head)


# ----------------------------------------------------------------------------- gemma 3

def forward_gemma3(root, w, ids):
    c = dict(root)
    c.update(root.get("text_config") or {})
    H, L = c["hidden_size"], c["num_hidden_layers"]
    nh, nkv, hd = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
    eps = c["rms_norm_eps"]
    pattern = c.get("sliding_window_pattern", 6)
    types = c.get("layer_types") or [
        "sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(L)]
    inv_local = default_inv_freq(c.get("rope_local_base_freq", 10000.0), hd)
    inv_global = default_inv_freq(c.get("rope_theta", 1e6), hd)
    s = c.get("rope_scaling")
    if s and s.get("rope_type", s.get("type")) == "linear":
        inv_global = inv_global / s["factor"]
    T = len(ids)
    pos = torch.arange(T)
    emb = w("embed_tokens.weight")
    x = emb[ids] * torch.tensor(H ** 0.5, dtype=F)
    for l in range(L):
        p = "layers.%d." % l
        sliding = types[l] == "sliding_attention"
        inv = inv_local if sliding else inv_global
        h = rms(x, w(p + "input_layernorm.weight"), eps, 1.0)
        q = lin(h, w(p + "self_attn.q_proj.weight")).view(T, nh, hd)
        k = lin(h, w(p + "self_attn.k_proj.weight")).view(T, nkv, hd)
        v = lin(h, w(p + "self_attn.v_proj.weight")).view(T, nkv, hd)
        q = rope(rms(q, w(p + "self_attn.q_norm.weight"), eps, 1.0), pos, inv)
        k = rope(rms(k, w(p + "self_attn.k_norm.weight"), eps, 1.0), pos, inv)
        a = attention(q, k, v, c["query_pre_attn_scalar"] ** -0.5,
                      c["sliding_window"] if sliding else 0)
        a = lin(a, w(p + "self_attn.o_proj.weight"))
        x = x + rms(a, w(p + "post_attention_layernorm.weight"), eps, 1.0)
        h = rms(x, w(p + "pre_feedforward_layernorm.weight"), eps, 1.0)
        m = lin(gelu_tanh(lin(h, w(p + "mlp.gate_proj.weight"))) * lin(h, w(p + "mlp.up_proj.weight")),
                w(p + "mlp.down_proj.weight"))
        x = x + rms(m, w(p + "post_feedforward_layernorm.weight"), eps, 1.0)
    x = rms(x, w("norm.weight"), eps, 1.0)
    logits = lin(x, emb)
    cap = c.get("final_logit_softcapping")
    return cap * torch.tanh(logits / cap) if cap else logits


# ----------------------------------------------------------------------------- gemma 4

def gemma4_inv_freq(rp, hd):
    theta = rp["rope_theta"]
    if rp.get("rope_type", "default") == "proportional":
        n = int(rp.get("partial_rotary_factor", 1.0) * hd // 2)
        inv = torch.zeros(hd // 2, dtype=F)
        inv[:n] = 1.0 / (theta ** (torch.arange(0, 2 * n, 2, dtype=torch.int64).to(F) / hd))
        return inv / rp.get("factor", 1.0)
    return default_inv_freq(theta, hd)


def forward_gemma4(root, w, ids):
    c = dict(root)
    c.update(root.get("text_config") or {})
    H, L = c["hidden_size"], c["num_hidden_layers"]
    nh, eps = c["num_attention_heads"], c["rms_norm_eps"]
    types = c.get("layer_types")
    if not types:
        types = ["sliding_attention" if (i + 1) % 6 else "full_attention" for i in range(L)]
        types[-1] = "full_attention"
    n_shared = c.get("num_kv_shared_layers", 0) or 0
    first_shared = L - n_shared
    P = c.get("hidden_size_per_layer_input") or 0
    T = len(ids)
    pos = torch.arange(T)
    emb = w("embed_tokens.weight")
    x = emb[ids] * torch.tensor(H ** 0.5, dtype=F)
    if P:
        tok = (w("embed_tokens_per_layer.weight")[ids] * P ** 0.5).view(T, L, P)
        proj = (lin(x, w("per_layer_model_projection.weight")) * H ** -0.5).view(T, L, P)
        proj = rms(proj, w("per_layer_projection_norm.weight"), eps)
        ple = (proj + tok) * 2.0 ** -0.5
    kv_store = {}
    for l in range(L):
        p = "layers.%d." % l
        sliding = types[l] == "sliding_attention"
        hd = c["head_dim"] if sliding else c["global_head_dim"]
        k_eq_v = c.get("attention_k_eq_v", False) and not sliding
        nkv = c["num_global_key_value_heads"] if k_eq_v else c["num_key_value_heads"]
        inv = gemma4_inv_freq(c["rope_parameters"][types[l]], hd)
        h = rms(x, w(p + "input_layernorm.weight"), eps)
        q = lin(h, w(p + "self_attn.q_proj.weight")).view(T, nh, hd)
        q = rope(rms(q, w(p + "self_attn.q_norm.weight"), eps), pos, inv)
        if l >= first_shared:
            prev = types[:first_shared]
            donor = len(prev) - 1 - prev[::-1].index(types[l])
            k, v = kv_store[donor]
        else:
            k = lin(h, w(p + "self_attn.k_proj.weight")).view(T, nkv, hd)
            v = k if k_eq_v else lin(h, w(p + "self_attn.v_proj.weight")).view(T, nkv, hd)
            k = rope(rms(k, w(p + "self_attn.k_norm.weight"), eps), pos, inv)
            v = rms(v, None, eps)
            kv_store[l] = (k, v)
        a = attention(q, k, v, 1.0, c["sliding_window"] if sliding else 0)
        a = lin(a, w(p + "self_attn.o_proj.weight"))
        x = x + rms(a, w(p + "post_attention_layernorm.weight"), eps)
        r = x
        h = rms(r, w(p + "pre_feedforward_layernorm.weight"), eps)
        m = lin(gelu_tanh(lin(h, w(p + "mlp.gate_proj.weight"))) * lin(h, w(p + "mlp.up_proj.weight")),
                w(p + "mlp.down_proj.weight"))
        if c.get("enable_moe_block"):
            m1 = rms(m, w(p + "post_feedforward_layernorm_1.weight"), eps)
            z = rms(r, None, eps) * w(p + "router.scale") * H ** -0.5
            probs = torch.softmax(lin(z, w(p + "router.proj.weight")), dim=-1)
            topw, topi = torch.topk(probs, c["top_k_experts"], dim=-1)
            topw = topw / topw.sum(-1, keepdim=True)
            topw = topw * w(p + "router.per_expert_scale")[topi]
            e_in = rms(r, w(p + "pre_feedforward_layernorm_2.weight"), eps)
            gu_all, down_all = w(p + "experts.gate_up_proj"), w(p + "experts.down_proj")
            m2 = torch.zeros_like(r)
            for t in range(T):
                for kk in range(topi.shape[1]):
                    e = int(topi[t, kk])
                    g, u = lin(e_in[t], gu_all[e]).chunk(2, dim=-1)
                    m2[t] += topw[t, kk] * lin(gelu_tanh(g) * u, down_all[e])
            m = m1 + rms(m2, w(p + "post_feedforward_layernorm_2.weight"), eps)
        x = r + rms(m, w(p + "post_feedforward_layernorm.weight"), eps)
        if P:
            g = gelu_tanh(lin(x, w(p + "per_layer_input_gate.weight"))) * ple[:, l, :]
            x = x + rms(lin(g, w(p + "per_layer_projection.weight")),
                        w(p + "post_per_layer_input_norm.weight"), eps)
        x = x * w(p + "layer_scalar")
    x = rms(x, w("norm.weight"), eps)
    logits = lin(x, emb)
    cap = c.get("final_logit_softcapping")
    return cap * torch.tanh(logits / cap) if cap else logits


# ----------------------------------------------------------------------------- main

def forward(folder, ids):
    c = json.load(open(os.path.join(folder, "config.json")))
    t = load_safetensors(folder)
    arch = c["architectures"][0]
    ids = torch.tensor(ids, dtype=torch.int64)
    if arch.startswith("Gemma4"):
        return forward_gemma4(c, W(t, ["model.language_model.", "model."]), ids)
    if arch.startswith("Gemma3"):
        return forward_gemma3(c, W(t, ["language_model.model.", "model.language_model.", "model."]), ids)
    w = W(t, ["model.", ""])
    if arch in ("LlamaForCausalLM", "MistralForCausalLM"):
        return forward_llama_qwen(c, w, ids, qk_norm=False, moe=False)
    if arch == "Qwen3ForCausalLM":
        return forward_llama_qwen(c, w, ids, qk_norm=True, moe=False)
    if arch == "Phi3ForCausalLM":
        return forward_phi3(c, w, ids)
    if arch == "Qwen3MoeForCausalLM":
        return forward_llama_qwen(c, w, ids, qk_norm=True, moe=True)
    raise ValueError("unsupported architecture " + arch)


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("models", nargs="+")
    a = ap.parse_args(argv)
    ids = [int(v) for v in a.tokens.split(",")]
    torch.set_num_threads(1)
    for m in a.models:
        with torch.no_grad():
            logits = forward(m, ids)
        name = os.path.basename(os.path.normpath(m))
        logits.numpy().astype("<f4").tofile(os.path.join(a.out, name + ".f32"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
