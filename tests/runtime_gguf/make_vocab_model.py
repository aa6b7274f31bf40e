#!/usr/bin/python3
"""A tiny random HF checkpoint carrying a real tokenizer, for GGUF tokenizer parity tests.

    /usr/bin/python3 make_vocab_model.py TOKENIZER_DIR ARCH OUT_DIR

ARCH: llama | qwen3 | gemma3. vocab_size = the tokenizer's highest id + 1 (embedding rows =
vocabulary, as llama.cpp requires; from tokenizer.model when there is no tokenizer.json);
hidden 32, one layer, f16 weights, tied embeddings.
"""
import json
import os
import shutil
import sys

import numpy as np


def vocab_size(tok_dir):
    if not os.path.exists(os.path.join(tok_dir, "tokenizer.json")):  # tokenizer.model only
        import sentencepiece
        return sentencepiece.SentencePieceProcessor(model_file=os.path.join(tok_dir, "tokenizer.model")).vocab_size()
    with open(os.path.join(tok_dir, "tokenizer.json"), encoding="utf-8") as f:
        tok = json.load(f)
    ids = list(tok["model"]["vocab"].values()) + [a["id"] for a in tok.get("added_tokens", [])]
    return max(ids) + 1


def config(arch, n_vocab):
    common = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
              "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16,
              "vocab_size": n_vocab, "max_position_embeddings": 512, "rms_norm_eps": 1e-6,
              "tie_word_embeddings": True, "attention_bias": False, "torch_dtype": "float16"}
    if arch == "llama":
        return dict(common, architectures=["LlamaForCausalLM"], model_type="llama",
                    hidden_act="silu", mlp_bias=False, rope_theta=500000.0)
    if arch == "qwen3":
        return dict(common, architectures=["Qwen3ForCausalLM"], model_type="qwen3",
                    hidden_act="silu", rope_theta=1000000.0, use_sliding_window=False)
    return dict(common, architectures=["Gemma3ForCausalLM"], model_type="gemma3_text",
                hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=16,
                sliding_window=16, sliding_window_pattern=6, rope_theta=1000000.0,
                rope_local_base_freq=10000.0, final_logit_softcapping=None,
                attn_logit_softcapping=None)


def tensors(arch, c, rng):
    H, F, D = c["hidden_size"], c["intermediate_size"], c["head_dim"]
    nq, nkv = c["num_attention_heads"], c["num_key_value_heads"]
    p = "model.layers.0."
    t = {"model.embed_tokens.weight": (c["vocab_size"], H), "model.norm.weight": (H,),
         p + "input_layernorm.weight": (H,), p + "post_attention_layernorm.weight": (H,),
         p + "self_attn.q_proj.weight": (nq * D, H), p + "self_attn.k_proj.weight": (nkv * D, H),
         p + "self_attn.v_proj.weight": (nkv * D, H), p + "self_attn.o_proj.weight": (H, nq * D),
         p + "mlp.gate_proj.weight": (F, H), p + "mlp.up_proj.weight": (F, H),
         p + "mlp.down_proj.weight": (H, F)}
    if arch in ("qwen3", "gemma3"):
        t[p + "self_attn.q_norm.weight"] = (D,)
        t[p + "self_attn.k_norm.weight"] = (D,)
    if arch == "gemma3":
        t[p + "pre_feedforward_layernorm.weight"] = (H,)
        t[p + "post_feedforward_layernorm.weight"] = (H,)
    return {k: (rng.standard_normal(s) * 0.05).astype("<f2") for k, s in sorted(t.items())}


def write_safetensors(path, ts):
    header, offset = {}, 0
    for name, a in ts.items():
        header[name] = {"dtype": "F16", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text)
        for a in ts.values():
            f.write(a.tobytes())


def main(tok_dir, arch, out):
    os.makedirs(out, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model"):
        if os.path.exists(os.path.join(tok_dir, name)):
            shutil.copy(os.path.join(tok_dir, name), os.path.join(out, name))
    c = config(arch, vocab_size(tok_dir))
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(c, f, indent=1)
    write_safetensors(os.path.join(out, "model.safetensors"), tensors(arch, c, np.random.default_rng(7)))


if __name__ == "__main__":
    main(*sys.argv[1:])
