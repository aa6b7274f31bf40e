#!/usr/bin/python3
"""Independent PyTorch 1.13 autograd reference for temper's LoRA gradients on a Llama-style HF
checkpoint. Builds the HF Llama math (tests/forward/torch_ref.py's pieces) in float64 from the
stored weights, adds PEFT-style adapters y = x W^T + s (x A^T) B^T on the listed projections,
and runs every example as its own sequence (no packing, positions from 0), so temper's packing
and masks are checked too. Shares no code with temper's C++.

    /usr/bin/python3 tests/train/torch_lora_ref.py MODEL_DIR CASE.json LORA.f32 OUT.f64

CASE.json: {"examples": [{"tokens": [...], "trained": [0/1 ...]}], "rank": r, "alpha": a,
            "rslora": bool, "pairs": [{"layer": l, "module": "self_attn.q_proj"}, ...]}
LORA.f32:  float32 little-endian, for each pair A (r, in) then B (out, r).
OUT.f64:   float64 little-endian: the loss (sum over trained tokens of -log p), then for each
           pair dA, dB of that loss.
"""
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "forward"))
import torch_ref as R  # noqa: E402

F = torch.float64


def lora_forward(c, w, ids, adapters, scale):
    """HF LlamaForCausalLM forward of one sequence; adapters: (layer, module) -> (A, B)."""
    H, L = c["hidden_size"], c["num_hidden_layers"]
    nh, nkv = c["num_attention_heads"], c.get("num_key_value_heads", c["num_attention_heads"])
    hd = c.get("head_dim") or H // nh
    eps = c["rms_norm_eps"]
    s = c.get("rope_scaling")
    theta = c.get("rope_theta", 10000.0)
    if s and s.get("rope_type", s.get("type")) == "llama3":
        inv = R.llama3_inv_freq(theta, hd, s)
    else:
        inv = R.default_inv_freq(theta, hd)
    T = len(ids)
    pos = torch.arange(T)

    def proj(l, module, x):
        y = R.lin(x, w("layers.%d.%s.weight" % (l, module)))
        if (l, module) in adapters:
            a, b = adapters[(l, module)]
            y = y + scale * R.lin(R.lin(x, a), b)
        return y

    x = w("embed_tokens.weight")[ids]
    for l in range(L):
        p = "layers.%d." % l
        h = R.rms(x, w(p + "input_layernorm.weight"), eps)
        q = proj(l, "self_attn.q_proj", h).view(T, nh, hd)
        k = proj(l, "self_attn.k_proj", h).view(T, nkv, hd)
        v = proj(l, "self_attn.v_proj", h).view(T, nkv, hd)
        q, k = R.rope(q, pos, inv), R.rope(k, pos, inv)
        a = R.attention(q, k, v, hd ** -0.5, 0)
        x = x + proj(l, "self_attn.o_proj", a)
        h = R.rms(x, w(p + "post_attention_layernorm.weight"), eps)
        m = R.silu(proj(l, "mlp.gate_proj", h)) * proj(l, "mlp.up_proj", h)
        x = x + proj(l, "mlp.down_proj", m)
    x = R.rms(x, w("norm.weight"), eps)
    tied = c.get("tie_word_embeddings", False)
    head = w("embed_tokens.weight") if tied else w("lm_head.weight")
    return R.lin(x, head)


def main(argv):
    model_dir, case_path, lora_path, out_path = argv
    c = json.load(open(os.path.join(model_dir, "config.json")))
    assert c["architectures"][0] == "LlamaForCausalLM", c["architectures"]
    case = json.load(open(case_path))
    w = R.W(R.load_safetensors(model_dir), ["model.", ""])
    r, alpha = case["rank"], case["alpha"]
    scale = alpha / math.sqrt(r) if case["rslora"] else alpha / r
    raw = np.fromfile(lora_path, dtype="<f4").astype(np.float64)
    adapters, order, off = {}, [], 0
    for pr in case["pairs"]:
        W0 = w("layers.%d.%s.weight" % (pr["layer"], pr["module"]))
        out_f, in_f = W0.shape
        a = torch.tensor(raw[off:off + r * in_f].reshape(r, in_f), dtype=F, requires_grad=True)
        off += r * in_f
        b = torch.tensor(raw[off:off + out_f * r].reshape(out_f, r), dtype=F, requires_grad=True)
        off += out_f * r
        adapters[(pr["layer"], pr["module"])] = (a, b)
        order.append((a, b))
    assert off == raw.size, (off, raw.size)
    torch.set_num_threads(1)
    loss = torch.zeros((), dtype=F)
    for ex in case["examples"]:
        ids = torch.tensor(ex["tokens"], dtype=torch.int64)
        logits = lora_forward(c, w, ids, adapters, scale)
        logp = torch.log_softmax(logits, dim=-1)
        for i in range(len(ex["tokens"]) - 1):
            if ex["trained"][i + 1]:
                loss = loss - logp[i, ex["tokens"][i + 1]]
    loss.backward()
    parts = [np.array([loss.item()])]
    for a, b in order:
        parts += [a.grad.numpy().ravel(), b.grad.numpy().ravel()]
    np.concatenate(parts).astype("<f8").tofile(out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
