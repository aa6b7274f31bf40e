#!/usr/bin/python3
"""Independent PyTorch 1.13 autograd reference for temper's LoRA gradients on an HF checkpoint
of any architecture tests/forward/torch_ref.py runs (llama, qwen3, qwen3moe, gemma3, gemma4, phi3).
Runs that file's float64 forward from the stored weights with PEFT-style adapters
y = x W^T + s (x A^T) B^T on the listed projections (gradients also flow through MoE routing
weights, KV sharing and everything else that reference computes),
and runs every example as its own sequence (no packing, positions from 0), so temper's packing
and masks are checked too. Shares no code with temper's C++.

    /usr/bin/python3 tests/train/torch_lora_ref.py MODEL_DIR CASE.json LORA.f32 OUT.f64 [--bf16-base]

CASE.json: {"examples": [{"tokens": [...], "trained": [0/1 ...]}], "rank": r, "alpha": a,
            "rslora": bool, "pairs": [{"layer": l, "module": "self_attn.q_proj"}, ...]}
LORA.f32:  float32 little-endian, for each pair A (r, in) then B (out, r).
OUT.f64:   float64 little-endian: the loss (sum over trained tokens of -log p), then for each
           pair dA, dB of that loss.
--bf16-base: the products with the seven dense projection weights of every layer (q, k, v, o,
           gate, up, down; adapted or not) as autocast runs them and temper's --precision bf16
           does: input and weight rounded to bfloat16 (via float32, round to nearest even),
           product in float64; in the backward the incoming gradient is rounded to bfloat16
           likewise before it meets the rounded weight. Everything else stays float64.
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


def model_forward(c, w, ids):
    """Logits of one sequence through tests/forward/torch_ref.py's forward of the checkpoint's
    architecture (every projection goes through R.lin, which lora_forward wraps)."""
    arch = c["architectures"][0]
    if arch.startswith("Gemma4"):
        return R.forward_gemma4(c, w, ids)
    if arch.startswith("Gemma3"):
        return R.forward_gemma3(c, w, ids)
    if arch == "Phi3ForCausalLM":
        return R.forward_phi3(c, w, ids)
    if arch in ("LlamaForCausalLM", "Qwen3ForCausalLM", "Qwen3MoeForCausalLM"):
        return R.forward_llama_qwen(c, w, ids, qk_norm=arch != "LlamaForCausalLM",
                                    moe=arch == "Qwen3MoeForCausalLM")
    raise ValueError("unsupported architecture " + arch)


def lora_forward(c, w, ids, adapters, scale):
    """Logits of one sequence with adapters: (layer, module) -> (A, B), as PEFT's LoRA layer
    y = base(x) + s * lora_B(lora_A(x)). The reference's forward looks every projection
    weight up by name and passes that very tensor to R.lin, so the adapter is found by the
    weight's identity while R.lin is wrapped."""
    by_id = {id(w("layers.%d.%s.weight" % key)): ab for key, ab in adapters.items()}
    base_lin = R.lin

    def lin(x, wt):
        y = base_lin(x, wt)
        if id(wt) in by_id:
            a, b = by_id[id(wt)]
            y = y + scale * base_lin(base_lin(x, a), b)
        return y

    R.lin = lin
    try:
        return model_forward(c, w, ids)
    finally:
        R.lin = base_lin


def split_fused(c, w):
    """Phi-3's qkv_proj and gate_up_proj as separate q/k/v and gate/up tensors (their row
    blocks): temper's LoRA adapts each block as its own projection, and an adapter is found by
    its weight's identity."""
    for l in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % l
        fused = {}
        for module, (whole, r0, n) in R.phi3_row_blocks(c).items():
            if whole not in fused:
                fused[whole] = w.t.pop(p + whole + ".weight")
            w.t[p + module + ".weight"] = fused[whole][r0:r0 + n].clone()


def bf16(t):
    """t rounded to bfloat16 as temper rounds its float32 values, back in float64."""
    return t.to(torch.float32).to(torch.bfloat16).to(F)


class Bf16Linear(torch.autograd.Function):
    """x W^T with both operands rounded to bf16; dx = bf16(dy) bf16(W). W is frozen."""

    @staticmethod
    def forward(ctx, x, wt):
        wr = bf16(wt)
        ctx.save_for_backward(wr)
        return bf16(x) @ wr.T

    @staticmethod
    def backward(ctx, dy):
        (wr,) = ctx.saved_tensors
        return bf16(dy) @ wr, None


def use_bf16_base(c, w):
    """Wraps R.lin so the dense projection weights of every layer go through Bf16Linear."""
    text = c.get("text_config", c)
    ids = set()
    for l in range(text["num_hidden_layers"]):
        for m in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                  "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"):
            name = "layers.%d.%s.weight" % (l, m)
            if w.has(name):
                ids.add(id(w(name)))
    base_lin = R.lin
    R.lin = lambda x, wt: Bf16Linear.apply(x, wt) if id(wt) in ids else base_lin(x, wt)


def main(argv):
    bf16_base = "--bf16-base" in argv
    argv = [a for a in argv if a != "--bf16-base"]
    model_dir, case_path, lora_path, out_path = argv
    c = json.load(open(os.path.join(model_dir, "config.json")))
    case = json.load(open(case_path))
    w = R.W(R.load_safetensors(model_dir),
            ["model.language_model.", "language_model.model.", "model.", ""])
    if c["architectures"][0] == "Phi3ForCausalLM":
        split_fused(c, w)
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
    if bf16_base:
        use_bf16_base(c, w)  # before lora_forward wraps R.lin: adapters stay float64
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
