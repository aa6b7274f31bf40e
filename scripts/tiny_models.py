#!/usr/bin/python3
"""Tiny random Hugging Face checkpoints, one folder per architecture, for tests.

Configs are real ones scaled down (hidden 64, 2-6 layers, vocab 512) keeping the ratios and
the features that matter (GQA, head_dim != hidden/heads, sliding patterns, KV sharing, MoE,
PLE, ...). Weights are seeded random numbers written as safetensors by hand (header JSON +
raw little-endian bytes), bf16 by default. Each folder also gets the stories260K tokenizer
(vocab 512) and a generation_config.json. EXTRA_MODELS (variants for single tests) are written
only when --only names them.

    /usr/bin/python3 scripts/tiny_models.py OUT_DIR [--dtype bf16|f32] [--only a,b]
                                            [--sharded [NAME]]
"""
import argparse
import json
import os
import shutil
import struct
import sys
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TOKENIZER_DIR = os.path.normpath(
    os.path.join(HERE, "..", "..", "shared", "fixtures", "model", "stories260K-hf-f32"))
TOKENIZER_FILES = ["tokenizer.json", "tokenizer.model", "tokenizer_config.json",
                   "special_tokens_map.json"]
VOCAB = 512  # the stories260K tokenizer
BOS, EOS, PAD = 1, 2, 0


# ----------------------------------------------------------------------------- safetensors

def f32_to_bf16_bits(a):
    """float32 array -> uint16 bf16 bits, round to nearest even (NaN stays a quiet NaN)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    out = rounded.astype(np.uint16)
    out[np.isnan(a)] = 0x7FC0
    return out


def tensor_bytes(a, dtype):
    if dtype == "bf16":
        return "BF16", f32_to_bf16_bits(a).astype("<u2").tobytes()
    return "F32", np.ascontiguousarray(a, dtype="<f4").tobytes()


def write_safetensors(path, tensors, dtype):
    """tensors: dict name -> float32 array. Data laid out in name order, header 8-aligned."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        st_dtype, data = tensor_bytes(tensors[name], dtype)
        header[name] = {"dtype": st_dtype, "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    return offset


def write_checkpoint(folder, tensors, dtype, sharded):
    if not sharded:
        write_safetensors(os.path.join(folder, "model.safetensors"), tensors, dtype)
        return
    names = sorted(tensors)
    half = len(names) // 2
    parts = [names[:half], names[half:]]
    weight_map, total = {}, 0
    for i, part in enumerate(parts):
        fname = "model-%05d-of-%05d.safetensors" % (i + 1, len(parts))
        total += write_safetensors(os.path.join(folder, fname),
                                   {n: tensors[n] for n in part}, dtype)
        weight_map.update({n: fname for n in part})
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2, sort_keys=True)


# ----------------------------------------------------------------------------- weights

class Weights:
    """Seeded random tensors: matrices ~ N(0, 1/fan_in), norms near their neutral value."""

    def __init__(self, seed, norm_center):
        self.rng = np.random.default_rng(seed)
        self.norm_center = norm_center  # 1 for w-scaled norms, 0 for Gemma 3's (1 + w)
        self.t = {}

    def mat(self, name, *shape):
        self.t[name] = (self.rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32)

    def embed(self, name, *shape):
        self.t[name] = (0.5 * self.rng.standard_normal(shape)).astype(np.float32)

    def norm(self, name, n):
        self.t[name] = (self.norm_center + 0.1 * self.rng.standard_normal(n)).astype(np.float32)

    def positive(self, name, *shape):
        self.t[name] = self.rng.uniform(0.5, 1.5, shape).astype(np.float32)


def llama_like(w, c, prefix="model.", qk_norm=False, moe=None):
    H, hd = c["hidden_size"], c.get("head_dim", c["hidden_size"] // c["num_attention_heads"])
    nq, nkv = c["num_attention_heads"], c["num_key_value_heads"]
    w.embed(prefix + "embed_tokens.weight", c["vocab_size"], H)
    w.norm(prefix + "norm.weight", H)
    if not c["tie_word_embeddings"]:
        w.mat("lm_head.weight", c["vocab_size"], H)
    for i in range(c["num_hidden_layers"]):
        p = "%slayers.%d." % (prefix, i)
        w.norm(p + "input_layernorm.weight", H)
        w.norm(p + "post_attention_layernorm.weight", H)
        w.mat(p + "self_attn.q_proj.weight", nq * hd, H)
        w.mat(p + "self_attn.k_proj.weight", nkv * hd, H)
        w.mat(p + "self_attn.v_proj.weight", nkv * hd, H)
        w.mat(p + "self_attn.o_proj.weight", H, nq * hd)
        if qk_norm:
            w.norm(p + "self_attn.q_norm.weight", hd)
            w.norm(p + "self_attn.k_norm.weight", hd)
        if moe:
            E, I = c["num_experts"], c["moe_intermediate_size"]
            w.mat(p + "mlp.gate.weight", E, H)
            for e in range(E):
                w.mat(p + "mlp.experts.%d.gate_proj.weight" % e, I, H)
                w.mat(p + "mlp.experts.%d.up_proj.weight" % e, I, H)
                w.mat(p + "mlp.experts.%d.down_proj.weight" % e, H, I)
        else:
            I = c["intermediate_size"]
            w.mat(p + "mlp.gate_proj.weight", I, H)
            w.mat(p + "mlp.up_proj.weight", I, H)
            w.mat(p + "mlp.down_proj.weight", H, I)


def gemma3_weights(w, c):
    t = c["text_config"]
    H, hd, I = t["hidden_size"], t["head_dim"], t["intermediate_size"]
    nq, nkv = t["num_attention_heads"], t["num_key_value_heads"]
    pre = "language_model.model."  # the Gemma3ForConditionalGeneration layout
    w.embed(pre + "embed_tokens.weight", t["vocab_size"], H)
    w.norm(pre + "norm.weight", H)
    for i in range(t["num_hidden_layers"]):
        p = "%slayers.%d." % (pre, i)
        for n in ["input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                  "post_feedforward_layernorm"]:
            w.norm(p + n + ".weight", H)
        w.mat(p + "self_attn.q_proj.weight", nq * hd, H)
        w.mat(p + "self_attn.k_proj.weight", nkv * hd, H)
        w.mat(p + "self_attn.v_proj.weight", nkv * hd, H)
        w.mat(p + "self_attn.o_proj.weight", H, nq * hd)
        w.norm(p + "self_attn.q_norm.weight", hd)
        w.norm(p + "self_attn.k_norm.weight", hd)
        w.mat(p + "mlp.gate_proj.weight", I, H)
        w.mat(p + "mlp.up_proj.weight", I, H)
        w.mat(p + "mlp.down_proj.weight", H, I)
    # A stand-in for the vision tower and projector, which the text conversion skips.
    w.mat("vision_tower.vision_model.embeddings.patch_embedding.weight", 16, 3 * 4 * 4)
    w.mat("multi_modal_projector.mm_input_projection_weight", 16, H)


def gemma4_layer_types(t):
    if "layer_types" in t:
        return t["layer_types"]
    n = t["num_hidden_layers"]  # HF default: 5 sliding : 1 full, last layer full
    types = ["sliding_attention" if (i + 1) % 6 else "full_attention" for i in range(n)]
    types[-1] = "full_attention"
    return types


def gemma4_weights(w, c, shared_kv_extras=False):
    t = c["text_config"]
    H, L, I = t["hidden_size"], t["num_hidden_layers"], t["intermediate_size"]
    nq, P = t["num_attention_heads"], t.get("hidden_size_per_layer_input") or 0
    types = gemma4_layer_types(t)
    first_shared = L - t.get("num_kv_shared_layers", 0)
    pre = "model.language_model."
    w.embed(pre + "embed_tokens.weight", t["vocab_size"], H)
    w.norm(pre + "norm.weight", H)
    if P:
        w.embed(pre + "embed_tokens_per_layer.weight", t["vocab_size_per_layer_input"], L * P)
        w.mat(pre + "per_layer_model_projection.weight", L * P, H)
        w.norm(pre + "per_layer_projection_norm.weight", P)
    for i in range(L):
        p = "%slayers.%d." % (pre, i)
        full = types[i] == "full_attention"
        hd = t["global_head_dim"] if full else t["head_dim"]
        k_eq_v = full and t.get("attention_k_eq_v", False)
        nkv = t["num_global_key_value_heads"] if k_eq_v else t["num_key_value_heads"]
        shared = i >= first_shared
        for n in ["input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                  "post_feedforward_layernorm"]:
            w.norm(p + n + ".weight", H)
        w.mat(p + "self_attn.q_proj.weight", nq * hd, H)
        w.norm(p + "self_attn.q_norm.weight", hd)
        w.mat(p + "self_attn.o_proj.weight", H, nq * hd)
        if not shared or shared_kv_extras:  # HF ignores these on shared layers
            w.mat(p + "self_attn.k_proj.weight", nkv * hd, H)
            w.norm(p + "self_attn.k_norm.weight", hd)
            if not k_eq_v:
                w.mat(p + "self_attn.v_proj.weight", nkv * hd, H)
        Il = 2 * I if shared and t.get("use_double_wide_mlp") else I
        w.mat(p + "mlp.gate_proj.weight", Il, H)
        w.mat(p + "mlp.up_proj.weight", Il, H)
        w.mat(p + "mlp.down_proj.weight", H, Il)
        if t.get("enable_moe_block"):
            E, Ie = t["num_experts"], t["moe_intermediate_size"]
            w.mat(p + "router.proj.weight", E, H)
            w.positive(p + "router.scale", H)
            w.positive(p + "router.per_expert_scale", E)
            w.mat(p + "experts.gate_up_proj", E, 2 * Ie, H)
            w.mat(p + "experts.down_proj", E, H, Ie)
            for n in ["pre_feedforward_layernorm_2", "post_feedforward_layernorm_1",
                      "post_feedforward_layernorm_2"]:
                w.norm(p + n + ".weight", H)
        if P:
            w.mat(p + "per_layer_input_gate.weight", P, H)
            w.mat(p + "per_layer_projection.weight", H, P)
            w.norm(p + "post_per_layer_input_norm.weight", H)
        w.positive(p + "layer_scalar", 1)
    # Stand-ins for the towers, which the text conversion skips.
    w.mat("model.vision_tower.encoder.layers.0.mlp.fc1.weight", 16, 16)
    w.mat("model.embed_vision.embedding_projection.weight", H, 16)
    if P:  # only the E-models have audio
        w.mat("model.audio_tower.layers.0.ffn.weight", 16, 16)
        w.mat("model.embed_audio.embedding_projection.weight", H, 16)


# ----------------------------------------------------------------------------- configs

def llama_config(tied):
    # Llama 3.1 8B scaled down (GQA, explicit head_dim, llama3 RoPE scaling, untied); the tied
    # variant is Llama 2 / 3.2 style.
    c = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
         "hidden_size": 64, "intermediate_size": 224, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
         "vocab_size": VOCAB, "max_position_embeddings": 1024, "rms_norm_eps": 1e-5,
         "rope_theta": 500000.0, "hidden_act": "silu", "tie_word_embeddings": tied,
         "attention_bias": False, "mlp_bias": False, "bos_token_id": BOS, "eos_token_id": EOS}
    if tied:  # a Llama 2 style config: no head_dim, no scaling
        del c["head_dim"]
        c.update(rope_theta=10000.0, rope_scaling=None)
    else:
        c["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    return c


def gemma3_config():
    # gemma-3-4b-it scaled down: multimodal wrapper, nested text_config, 5 local : 1 global.
    text = {"model_type": "gemma3_text", "hidden_size": 64, "intermediate_size": 256,
            "num_hidden_layers": 6, "num_attention_heads": 4, "num_key_value_heads": 2,
            "head_dim": 32, "query_pre_attn_scalar": 32, "vocab_size": VOCAB,
            "sliding_window": 16, "sliding_window_pattern": 6, "rope_theta": 1000000.0,
            "rope_local_base_freq": 10000.0, "rope_scaling": {"rope_type": "linear",
                                                               "factor": 8.0},
            "rms_norm_eps": 1e-6, "hidden_activation": "gelu_pytorch_tanh",
            "max_position_embeddings": 1024, "final_logit_softcapping": None,
            "attn_logit_softcapping": None}
    return {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
            "text_config": text, "vision_config": {"model_type": "siglip_vision_model"},
            "mm_tokens_per_image": 256, "tie_word_embeddings": True,
            "bos_token_id": BOS, "eos_token_id": [EOS, 106], "pad_token_id": PAD}


GEMMA4_ROPE = {"full_attention": {"partial_rotary_factor": 0.25, "rope_theta": 1000000.0,
                                  "rope_type": "proportional"},
               "sliding_attention": {"rope_theta": 10000.0, "rope_type": "default"}}


def gemma4_text_base():
    return {"model_type": "gemma4_text", "hidden_size": 64, "vocab_size": VOCAB,
            "head_dim": 32, "global_head_dim": 64, "rms_norm_eps": 1e-6,
            "hidden_activation": "gelu_pytorch_tanh", "max_position_embeddings": 1024,
            "final_logit_softcapping": 30.0, "rope_parameters": GEMMA4_ROPE,
            "tie_word_embeddings": True, "attention_bias": False,
            "bos_token_id": BOS, "eos_token_id": EOS, "pad_token_id": PAD}


def gemma4_wrap(text, audio):
    c = {"architectures": ["Gemma4ForConditionalGeneration"], "model_type": "gemma4",
         "text_config": text, "vision_config": {"model_type": "gemma4_vision"},
         "tie_word_embeddings": True, "eos_token_id": [EOS, 106]}
    if audio:
        c["audio_config"] = {"model_type": "gemma4_audio"}
    return c


def gemma4_e2b_config():
    # E2B: 8 heads x 1 KV head, PLE, last layers share KV, double-wide MLP on shared layers,
    # explicit layer_types. Here: 4 owning layers (s s s f) then 2 shared (s f), donors 2 / 3.
    t = gemma4_text_base()
    s, f = "sliding_attention", "full_attention"
    t.update(num_hidden_layers=6, intermediate_size=256, num_attention_heads=2,
             num_key_value_heads=1, num_global_key_value_heads=None, attention_k_eq_v=False,
             sliding_window=16, layer_types=[s, s, s, f, s, f], num_kv_shared_layers=2,
             use_double_wide_mlp=True, hidden_size_per_layer_input=16,
             vocab_size_per_layer_input=VOCAB, enable_moe_block=False,
             moe_intermediate_size=None)
    return gemma4_wrap(t, audio=True)


def gemma4_26b_config():
    # 26B-A4B: MoE (fused experts) beside a narrow dense MLP, K=V full layers with fewer
    # global KV heads, 5:1 layer_types as the released config lists them.
    t = gemma4_text_base()
    s, f = "sliding_attention", "full_attention"
    t.update(layer_types=[s, s, s, s, s, f], num_hidden_layers=6, intermediate_size=48, num_attention_heads=4,
             num_key_value_heads=2, num_global_key_value_heads=1, attention_k_eq_v=True,
             sliding_window=32, num_kv_shared_layers=0, use_double_wide_mlp=False,
             hidden_size_per_layer_input=None, enable_moe_block=True, num_experts=8,
             top_k_experts=2, moe_intermediate_size=16)
    return gemma4_wrap(t, audio=False)


def gemma4_31b_config():
    # 31B: dense, K=V full layers, num_global_key_value_heads, 5:1 via explicit layer_types.
    t = gemma4_text_base()
    s, f = "sliding_attention", "full_attention"
    t.update(num_hidden_layers=6, intermediate_size=256, num_attention_heads=4,
             num_key_value_heads=2, num_global_key_value_heads=1, attention_k_eq_v=True,
             sliding_window=32, layer_types=[s, s, s, s, s, f], num_kv_shared_layers=0,
             use_double_wide_mlp=False, hidden_size_per_layer_input=0,
             enable_moe_block=False, moe_intermediate_size=None)
    return gemma4_wrap(t, audio=False)


def qwen3_config(moe):
    # Qwen3-0.6B / Qwen3-30B-A3B scaled down: head_dim 2x hidden/heads, q/k norm.
    c = {"architectures": ["Qwen3MoeForCausalLM" if moe else "Qwen3ForCausalLM"],
         "model_type": "qwen3_moe" if moe else "qwen3", "hidden_size": 64,
         "intermediate_size": 192, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "head_dim": 32, "vocab_size": VOCAB,
         "max_position_embeddings": 1024, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
         "rope_scaling": None, "hidden_act": "silu", "tie_word_embeddings": False,
         "attention_bias": False, "use_sliding_window": False, "sliding_window": None,
         "bos_token_id": BOS, "eos_token_id": EOS}
    if moe:
        c.update(num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32,
                 norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[])
    return c


def phi3_config(original=32):
    # Phi-4-mini scaled down: GQA, partial rotary (0.75: 12 of 16 dims rotate), tied embeddings,
    # LongRoPE with distinct short and long factors and max/original = 4 (attention factor
    # sqrt(1 + ln 4 / ln original)). HF takes the long factors when a forward's sequence exceeds
    # original_max_position_embeddings, llama.cpp when the context does: phi4-mini's 32 is below
    # every test's context (48-256 tokens), so both take the long factors; phi4-mini-short's 256
    # is at or above them, so both take the short ones. Named phi4-mini, not phi3: llama.cpp's
    # vocabulary loader looks up "<|endoftext|>" for every model whose general.name (the
    # folder's name) contains "phi3" (src/llama-vocab.cpp, load), and the stories260K tokenizer
    # has no such token.
    return {"architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "hidden_size": 64,
            "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "vocab_size": VOCAB, "max_position_embeddings": 4 * original,
            "original_max_position_embeddings": original, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
            "partial_rotary_factor": 0.75,
            "rope_scaling": {"type": "longrope", "short_factor": [1.0, 1.05, 1.2, 1.5, 2.25, 3.0],
                             "long_factor": [1.0, 1.75, 3.5, 7.25, 14.0, 29.5]},
            "sliding_window": None, "hidden_act": "silu", "tie_word_embeddings": True,
            "attention_dropout": 0.0, "resid_pdrop": 0.0, "embd_pdrop": 0.0,
            "bos_token_id": BOS, "eos_token_id": EOS, "pad_token_id": PAD}


def phi3_weights(w, c):
    H, L, I = c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"]
    nq, nkv = c["num_attention_heads"], c["num_key_value_heads"]
    hd = H // nq
    w.embed("model.embed_tokens.weight", c["vocab_size"], H)
    w.norm("model.norm.weight", H)
    for i in range(L):
        p = "model.layers.%d." % i
        w.norm(p + "input_layernorm.weight", H)
        w.norm(p + "post_attention_layernorm.weight", H)
        w.mat(p + "self_attn.qkv_proj.weight", (nq + 2 * nkv) * hd, H)
        w.mat(p + "self_attn.o_proj.weight", H, nq * hd)
        w.mat(p + "mlp.gate_up_proj.weight", 2 * I, H)
        w.mat(p + "mlp.down_proj.weight", H, I)


# Architectures whose checkpoints are Llama-shaped (the same tensor names and shapes): the tiny
# config is all they need here. Mistral 7B v0.3 scaled down: GQA, no sliding window (null, as
# v0.2+ and Nemo ship it; llama.cpp runs Mistral as Llama, with full attention).
LLAMA_SHAPED = {
    "mistral": {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 64,
                "intermediate_size": 224, "num_hidden_layers": 2, "num_attention_heads": 4,
                "num_key_value_heads": 2, "head_dim": 16, "vocab_size": VOCAB,
                "max_position_embeddings": 1024, "rms_norm_eps": 1e-5, "rope_theta": 1000000.0,
                "sliding_window": None, "hidden_act": "silu", "tie_word_embeddings": False,
                "bos_token_id": BOS, "eos_token_id": EOS},
}


def build(name):
    """-> (config, tensors). Seeds depend only on the model name."""
    seed = zlib.crc32(name.encode())
    if name in ("llama", "llama-tied", "llama-wide"):
        c = llama_config(tied=name == "llama-tied")
        if name == "llama-wide":  # rows of 256+: every block type applies without fallbacks
            c.update(hidden_size=256, intermediate_size=512, head_dim=64)
        w = Weights(seed, 1.0)
        llama_like(w, c)
    elif name in LLAMA_SHAPED:
        c = json.loads(json.dumps(LLAMA_SHAPED[name]))
        w = Weights(seed, 1.0)
        llama_like(w, c)
    elif name == "gemma3":
        c = gemma3_config()
        w = Weights(seed, 0.0)
        gemma3_weights(w, c)
    elif name == "gemma4-e2b-sliding-last":
        # Valid for HF, outside llama.cpp: the last non-shared layer is sliding (s s f s | s f),
        # so HF's donors are 3 / 2 while llama.cpp's are 2 / 3 (tests/quantize/llama_compat_test).
        c = gemma4_e2b_config()
        s, f = "sliding_attention", "full_attention"
        c["text_config"]["layer_types"] = [s, s, f, s, s, f]
        w = Weights(seed, 1.0)
        gemma4_weights(w, c, shared_kv_extras=False)
    elif name.startswith("gemma4"):
        c = {"gemma4-e2b": gemma4_e2b_config, "gemma4-e2b-nocap": gemma4_e2b_config,
             "gemma4-26b-a4b": gemma4_26b_config, "gemma4-31b": gemma4_31b_config}[name]()
        if name == "gemma4-e2b-nocap":  # no final softcap (llama.cpp's default would be 30)
            c["text_config"]["final_logit_softcapping"] = None
        w = Weights(seed, 1.0)
        gemma4_weights(w, c, shared_kv_extras=name == "gemma4-e2b")
    elif name in ("qwen3", "qwen3moe"):
        c = qwen3_config(moe=name == "qwen3moe")
        w = Weights(seed, 1.0)
        llama_like(w, c, qk_norm=True, moe=name == "qwen3moe")
    elif name in ("phi4-mini", "phi4-mini-short"):
        c = phi3_config(original=256 if name == "phi4-mini-short" else 32)
        w = Weights(seed, 1.0)
        phi3_weights(w, c)
    else:
        raise KeyError(name)
    return c, w.t


def build_config(name):
    return build(name)[0]


MODELS = ["llama", "llama-tied", "llama-wide", "gemma3", "gemma4-e2b", "gemma4-26b-a4b", "gemma4-31b",
          "qwen3", "qwen3moe", "phi4-mini", "phi4-mini-short"] + list(LLAMA_SHAPED)
# Variants written only when named with --only: a Gemma 4 without a final softcap, and a config
# llama.cpp cannot load as HF means it (the compatibility check refuses it).
EXTRA_MODELS = ["gemma4-e2b-nocap", "gemma4-e2b-sliding-last"]


def write_model(out_dir, name, dtype, sharded):
    config, tensors = build(name)
    folder = os.path.join(out_dir, name)
    os.makedirs(folder, exist_ok=True)
    config["torch_dtype"] = "bfloat16" if dtype == "bf16" else "float32"
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    gen = {"bos_token_id": BOS, "eos_token_id": EOS, "transformers_version": "4.56.0"}
    if name.startswith("gemma"):
        gen.update(pad_token_id=PAD, eos_token_id=[EOS, 106])
    with open(os.path.join(folder, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=2)
    for fname in TOKENIZER_FILES:
        shutil.copyfile(os.path.join(TOKENIZER_DIR, fname), os.path.join(folder, fname))
    write_checkpoint(folder, tensors, dtype, sharded)
    return folder


def write_wide_llama(folder, hidden, ffn, layers, heads, kv_heads, head_dim=64, seed=12345):
    """A Llama-shaped bf16 HF folder of the given widths (untied, stories260K's tokenizer): the
    models whose size, not values, the benchmarks and memory tests measure."""
    os.makedirs(folder, exist_ok=True)
    c = llama_config(tied=False)
    c.update(hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=layers, num_attention_heads=heads,
             num_key_value_heads=kv_heads, head_dim=head_dim, torch_dtype="bfloat16")
    w = Weights(seed, 1.0)
    llama_like(w, c)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
    for fname in TOKENIZER_FILES:
        shutil.copyfile(os.path.join(TOKENIZER_DIR, fname), os.path.join(folder, fname))
    write_checkpoint(folder, w.t, "bf16", False)
    return folder


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir", nargs="?")
    ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    ap.add_argument("--only", help="comma-separated subset of: " + ", ".join(MODELS + EXTRA_MODELS))
    ap.add_argument("--list", action="store_true",
                    help="print 'NAME ARCHITECTURE' per model (tests iterate this list) and exit")
    ap.add_argument("--sharded", nargs="?", const="llama", default=None, metavar="NAME",
                    help="write NAME (default llama) as 2 shards + model.safetensors.index.json")
    args = ap.parse_args(argv)
    if args.list:
        for n in MODELS:
            print(n, build_config(n)["architectures"][0])
        return 0
    if not args.out_dir:
        ap.error("OUT_DIR is required")
    names = args.only.split(",") if args.only else MODELS
    for n in names:
        if n not in MODELS + EXTRA_MODELS:
            ap.error("unknown model '%s'; choose from %s" % (n, ", ".join(MODELS + EXTRA_MODELS)))
    if args.sharded and args.sharded not in MODELS:
        ap.error("unknown model '%s' for --sharded" % args.sharded)
    for n in names:
        folder = write_model(args.out_dir, n, args.dtype, sharded=args.sharded == n)
        print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
