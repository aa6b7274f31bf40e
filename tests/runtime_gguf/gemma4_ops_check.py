#!/usr/bin/python3
"""llama.cpp's Gemma 4 graph, op by op, against the Hugging Face semantics in float64.

Reads the intermediate tensors llama_tensor_dump wrote for one ubatch of a tiny Gemma 4
checkpoint's F32 GGUF and recomputes every step of every layer in float64 (with the pieces
of tests/forward/torch_ref.py, the independent HF reference) from llama.cpp's *own* inputs
to that step. So each check sees only the local error of one op, not the error accumulated
upstream, and a semantic difference anywhere (a missed norm, the wrong KV donor, a window off
by one, RoPE pairs, PLE order, expert routing, softcap) shows as an O(1e-2..1) relative
error. Covers the dense, PLE, KV-shared, K=V and MoE (26B-A4B) layers.

    /usr/bin/python3 gemma4_ops_check.py HF_DIR DUMP_DIR TOKENS

Tolerances, relative to the largest |value| of the checked tensor:
* f32 ops: 3e-5. The largest f32 error is RoPE's angle pos * theta (<= 64 rad here) formed
  in f32: a few roundings of 2^-24 * 64 rad ~ 1e-5 rad, i.e. ~1e-5 of the rotated values;
  norms, dot products (K <= 512) and softmax stay far below (observed: RoPE <= 1.6e-6, the
  rest <= 3e-7).
* GELU: ggml's CPU GELU (ggml-cpu/vec.h, GGML_GELU_FP16) rounds its input to f16 and reads
  an f16 table of GELU values. This is modelled here (gelu_ggml), so the GELU steps are also
  checked tightly; what remains is one f16 rounding step where our f32 input lands on the
  other side of an f16 rounding boundary, or where the table entry (computed by ggml in f32)
  rounds the other way: <= 2^-11 of a value, so the tolerance is 2^-10.
Prints one line per layer; exit status 1 if any check fails.
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "forward"))
import torch_ref as R  # noqa: E402

F = torch.float64
TOL_F32 = 3e-5
TOL_GELU = 2.0 ** -10


def gelu_ggml(x):
    """ggml_vec_gelu_f32 / ggml_vec_geglu_f32 with GGML_GELU_FP16: table[f16(x)], with
    x <= -10 -> 0 and x >= 10 -> x."""
    h = x.to(torch.float32).to(torch.float16).to(F)
    t = R.gelu_tanh(h).to(torch.float32).to(torch.float16).to(F)
    return torch.where(x <= -10, torch.zeros_like(x), torch.where(x >= 10, x, t))


class Dump:
    def __init__(self, folder):
        self.folder = folder

    def __call__(self, name, ndim):
        """ggml tensor NAME as a float64 torch tensor with the last `ndim` ggml dims reversed."""
        ne = [int(v) for v in open(os.path.join(self.folder, name + ".shape")).read().split()]
        assert all(v == 1 for v in ne[ndim:]), (name, ne)
        a = np.fromfile(os.path.join(self.folder, name + ".f32"), "<f4").astype(np.float64)
        return torch.from_numpy(a.reshape(ne[:ndim][::-1]))


def main(argv):
    hf_dir, dump_dir, tokens = argv
    ids = torch.tensor([int(v) for v in tokens.split(",")], dtype=torch.int64)
    root = json.load(open(os.path.join(hf_dir, "config.json")))
    c = dict(root)
    c.update(root.get("text_config") or {})
    w = R.W(R.load_safetensors(hf_dir), ["model.language_model.", "model."])
    d = Dump(dump_dir)
    H, L, nh, eps = c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"], c["rms_norm_eps"]
    types = c.get("layer_types")
    if not types:  # Gemma4TextConfig's default: 5 sliding : 1 full, the last layer full
        types = ["sliding_attention" if (i + 1) % 6 else "full_attention" for i in range(L)]
        types[-1] = "full_attention"
    first_shared = L - (c.get("num_kv_shared_layers") or 0)
    P = c.get("hidden_size_per_layer_input") or 0
    T = len(ids)
    pos = torch.arange(T)
    failures = []

    def rel_err(got, ref):
        return (got - ref).abs().max().item() / max(ref.abs().max().item(), 1e-30)

    def check(what, got, ref, tol):
        err = rel_err(got, ref)
        if not err <= tol:
            failures.append("%s: relative error %.3g > %.3g" % (what, err, tol))
        return err

    # Embeddings and per-layer inputs.
    emb = w("embed_tokens.weight")
    x0 = d("inp_scaled", 2)
    errs = [check("inp_scaled", emb[ids] * H ** 0.5, x0, TOL_F32)]
    if P:
        tok = (w("embed_tokens_per_layer.weight")[ids] * P ** 0.5).view(T, L, P)
        proj = (R.lin(x0, w("per_layer_model_projection.weight")) * H ** -0.5).view(T, L, P)
        proj = R.rms(proj, w("per_layer_projection_norm.weight"), eps)
        ple = d("inp_per_layer", 3)  # [T, L, P]
        errs.append(check("inp_per_layer", (proj + tok) * 2.0 ** -0.5, ple, TOL_F32))
    print("inputs: inp_scaled %.2g%s" % (errs[0], "  inp_per_layer %.2g" % errs[1] if P else ""))

    def check_moe(l, p, r, dense):
        """The 26B-A4B block: dense MLP (down output `dense`) beside the experts. The top-k is
        taken from llama.cpp's own router logits, so near-ties pick the same experts."""
        e = {}
        e["mlp_post_norm_1"] = check("L%d dense branch" % l, R.rms(dense, w(p + "post_feedforward_layernorm_1.weight"), eps),
                                     d("ffn_mlp-%d" % l, 2), TOL_F32)
        z = R.rms(r, None, eps) * w(p + "router.scale") * H ** -0.5
        logits = d("ffn_moe_logits-%d" % l, 2)
        e["router"] = check("L%d router logits" % l, R.lin(z, w(p + "router.proj.weight")), logits, TOL_F32)
        e_in = d("ffn_norm_2-%d" % l, 2)
        e["pre_norm_2"] = check("L%d expert input norm" % l, R.rms(r, w(p + "pre_feedforward_layernorm_2.weight"), eps),
                                e_in, TOL_F32)
        topw, topi = torch.topk(torch.softmax(logits, dim=-1), c["top_k_experts"], dim=-1)
        topw = topw / topw.sum(-1, keepdim=True) * w(p + "router.per_expert_scale")[topi]
        gu_all, down_all = w(p + "experts.gate_up_proj"), w(p + "experts.down_proj")
        out = torch.zeros_like(r)
        for t in range(r.shape[0]):
            for k in range(topi.shape[1]):
                gg, uu = R.lin(e_in[t], gu_all[int(topi[t, k])]).chunk(2, dim=-1)
                out[t] += topw[t, k] * R.lin(gelu_ggml(gg) * uu, down_all[int(topi[t, k])])
        e["experts (ggml f16 GELU)"] = check("L%d experts" % l, out, d("ffn_moe_out-%d" % l, 2), TOL_GELU)
        e["post_norm_2"] = check("L%d expert branch" % l,
                                 R.rms(d("ffn_moe_out-%d" % l, 2), w(p + "post_feedforward_layernorm_2.weight"), eps),
                                 d("ffn_moe-%d" % l, 2), TOL_F32)
        e["sum"] = check("L%d branch sum" % l, d("ffn_mlp-%d" % l, 2) + d("ffn_moe-%d" % l, 2),
                         d("ffn_moe_combined-%d" % l, 2), TOL_F32)
        return e

    for l in range(L):
        p = "layers.%d." % l
        sliding = types[l] == "sliding_attention"
        hd = c["head_dim"] if sliding else c["global_head_dim"]
        k_eq_v = c.get("attention_k_eq_v", False) and not sliding
        nkv = c["num_global_key_value_heads"] if k_eq_v else c["num_key_value_heads"]
        inv = R.gemma4_inv_freq(c["rope_parameters"][types[l]], hd)
        x = x0 if l == 0 else d("l_out-%d" % (l - 1), 2)
        e = {}
        h = d("attn_norm-%d" % l, 2)
        e["attn_norm"] = check("L%d attn_norm" % l, R.rms(x, w(p + "input_layernorm.weight"), eps), h, TOL_F32)
        q = R.lin(h, w(p + "self_attn.q_proj.weight")).view(T, nh, hd)
        e["q_norm"] = check("L%d q_norm" % l, R.rms(q, w(p + "self_attn.q_norm.weight"), eps),
                            d("Qcur_normed-%d" % l, 3), TOL_F32)
        e["q_rope"] = check("L%d q_rope" % l, R.rope(d("Qcur_normed-%d" % l, 3), pos, inv), d("Qcur_pos-%d" % l, 3),
                            TOL_F32)
        donor = l
        if l >= first_shared:  # HF: the last non-shared layer of the same attention type
            prev = types[:first_shared]
            donor = len(prev) - 1 - prev[::-1].index(types[l])
        else:
            k = R.lin(h, w(p + "self_attn.k_proj.weight")).view(T, nkv, hd)
            v = k if k_eq_v else R.lin(h, w(p + "self_attn.v_proj.weight")).view(T, nkv, hd)
            e["k_norm"] = check("L%d k_norm" % l, R.rms(k, w(p + "self_attn.k_norm.weight"), eps),
                                d("Kcur_normed-%d" % l, 3), TOL_F32)
            e["v_norm"] = check("L%d v_norm" % l, R.rms(v, None, eps), d("Vcur_normed-%d" % l, 3), TOL_F32)
            e["k_rope"] = check("L%d k_rope" % l, R.rope(d("Kcur_normed-%d" % l, 3), pos, inv),
                                d("Kcur_pos-%d" % l, 3), TOL_F32)
        a = R.attention(d("Qcur_pos-%d" % l, 3), d("Kcur_pos-%d" % donor, 3), d("Vcur_normed-%d" % donor, 3), 1.0,
                        c["sliding_window"] if sliding else 0)
        a = R.lin(a, w(p + "self_attn.o_proj.weight"))
        r = x + R.rms(a, w(p + "post_attention_layernorm.weight"), eps)
        e["attention"] = check("L%d attention (KV of layer %d)" % (l, donor), r, d("attn_out-%d" % l, 2), TOL_F32)
        r = d("attn_out-%d" % l, 2)
        moe = w.has(p + "router.proj.weight")
        n = d(("ffn_norm_1-%d" if moe else "ffn_norm-%d") % l, 2)
        e["ffn_norm"] = check("L%d ffn_norm" % l, R.rms(r, w(p + "pre_feedforward_layernorm.weight"), eps), n, TOL_F32)
        g, u = d("ffn_gate-%d" % l, 2), d("ffn_up-%d" % l, 2)
        e["gate_up"] = max(check("L%d ffn_gate" % l, R.lin(n, w(p + "mlp.gate_proj.weight")), g, TOL_F32),
                           check("L%d ffn_up" % l, R.lin(n, w(p + "mlp.up_proj.weight")), u, TOL_F32))
        e["geglu"] = check("L%d geglu (ggml f16 GELU)" % l, gelu_ggml(g) * u, d("ffn_geglu-%d" % l, 2), TOL_GELU)
        # For scale, not checked: the same step with the exact GELU that HF and temper use.
        e["(exact GELU)"] = rel_err(R.gelu_tanh(g) * u, d("ffn_geglu-%d" % l, 2))
        m = R.lin(d("ffn_geglu-%d" % l, 2), w(p + "mlp.down_proj.weight"))
        if moe:
            e.update(check_moe(l, p, r, m))
            m = d("ffn_moe_combined-%d" % l, 2)
        else:
            e["ffn_down"] = check("L%d ffn_down" % l, m, d("ffn_out-%d" % l, 2), TOL_F32)
            m = d("ffn_out-%d" % l, 2)
        y = r + R.rms(m, w(p + "post_feedforward_layernorm.weight"), eps)
        out = y
        if P:
            e["ffn_residual"] = check("L%d ffn residual" % l, y, d("pe_in-%d" % l, 2), TOL_F32)
            y = d("pe_in-%d" % l, 2)
            g = gelu_ggml(R.lin(y, w(p + "per_layer_input_gate.weight"))) * ple[:, l, :]
            pl = R.rms(R.lin(g, w(p + "per_layer_projection.weight")), w(p + "post_per_layer_input_norm.weight"), eps)
            e["ple"] = check("L%d per-layer input (ggml f16 GELU)" % l, pl, d("per_layer_embd_out-%d" % l, 2),
                             TOL_GELU)
            out = y + d("per_layer_embd_out-%d" % l, 2)
        e["layer_out"] = check("L%d layer_scalar / l_out" % l, out * w(p + "layer_scalar"), d("l_out-%d" % l, 2),
                               TOL_F32)
        print("L%d %s: " % (l, "sliding" if sliding else "full   ") +
              "  ".join("%s %.2g" % kv for kv in e.items()))

    ref = d("result_output", 2)  # the rows llama.cpp outputs: the batch's last token(s)
    xf = R.rms(d("l_out-%d" % (L - 1), 2)[-ref.shape[0]:], w("norm.weight"), eps)
    logits = R.lin(xf, emb)
    cap = c.get("final_logit_softcapping")
    if cap:
        logits = cap * torch.tanh(logits / cap)
    print("output (norm, tied head%s): %.2g" % (", softcap %g" % cap if cap else ", no softcap",
                                               check("output", logits, ref, TOL_F32)))
    for f in failures:
        print("FAIL " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
