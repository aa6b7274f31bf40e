#!/usr/bin/python3
"""Seed corpora for the libFuzzer harnesses, generated at run time (nothing large is committed).

  make_seeds.py OUT_DIR SOURCE_DIR FIXTURES_DIR TEMPER_BIN

Writes OUT_DIR/<harness>/* from sample/stories260K, the shared fixtures and a tiny Llama
(8-wide, 1 layer, stories260K's 512-token vocabulary) whose .h5 and GGUF files are written by
`TEMPER_BIN convert` / `quantize`, so the .h5 and GGUF seeds are real temper output.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np

out, src, fixtures, temper = sys.argv[1:5]
sample = os.path.join(src, "sample", "stories260K")


def put(harness, name, data):
    d = os.path.join(out, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def read(path):
    with open(path, "rb") as f:
        return f.read()


def safetensors(tensors, metadata=None):
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, arr) in tensors.items():
        raw = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


# --- a tiny Llama HF folder
rng = np.random.default_rng(0)
D, F, V, HD = 8, 16, 512, 4
cfg = json.loads(read(os.path.join(sample, "config.json")))
cfg.update(hidden_size=D, intermediate_size=F, num_hidden_layers=1, num_attention_heads=2,
           num_key_value_heads=1, head_dim=HD, max_position_embeddings=64)
shapes = {"model.embed_tokens.weight": (V, D), "model.norm.weight": (D,),
          "model.layers.0.input_layernorm.weight": (D,), "model.layers.0.post_attention_layernorm.weight": (D,),
          "model.layers.0.self_attn.q_proj.weight": (2 * HD, D), "model.layers.0.self_attn.k_proj.weight": (HD, D),
          "model.layers.0.self_attn.v_proj.weight": (HD, D), "model.layers.0.self_attn.o_proj.weight": (D, 2 * HD),
          "model.layers.0.mlp.gate_proj.weight": (F, D), "model.layers.0.mlp.up_proj.weight": (F, D),
          "model.layers.0.mlp.down_proj.weight": (D, F)}
f16 = {n: ("F16", rng.standard_normal(s).astype("<f2")) for n, s in shapes.items()}
work = tempfile.mkdtemp(prefix="temper-seeds-")
hf = os.path.join(work, "tiny")
os.makedirs(hf)
for f in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
          "generation_config.json"):
    shutil.copy(os.path.join(sample, f), hf)
with open(os.path.join(hf, "config.json"), "w") as f:
    json.dump(cfg, f, indent=2)
with open(os.path.join(hf, "model.safetensors"), "wb") as f:
    f.write(safetensors(f16))

# --- safetensors: the tiny model (f16), small mixed-dtype files with metadata
put("safetensors", "tiny_f16.safetensors", read(os.path.join(hf, "model.safetensors")))
small = {"a": ("F32", np.arange(6, dtype="<f4").reshape(2, 3)),
         "b": ("BF16", np.arange(4, dtype="<u2")), "c": ("F16", np.ones((1, 2, 2), "<f2")),
         "s": ("F32", np.array(3.0, "<f4")), "e": ("F32", np.zeros((0, 4), "<f4"))}
put("safetensors", "mixed.safetensors", safetensors(small, {"format": "pt"}))
put("safetensors", "empty.safetensors", safetensors({}))

# --- config.json: the sample's, the fixtures', the tiny one, other architectures' shapes
put("config", "stories260K.json", read(os.path.join(sample, "config.json")))
put("config", "tiny.json", json.dumps(cfg))
for d in sorted(os.listdir(os.path.join(fixtures, "model"))):
    p = os.path.join(fixtures, "model", d, "config.json")
    if os.path.exists(p):
        put("config", d + ".json", read(p))
base = dict(cfg, vocab_size=512, bos_token_id=1, eos_token_id=2)
put("config", "qwen3.json", json.dumps(dict(base, architectures=["Qwen3ForCausalLM"], model_type="qwen3")))
put("config", "qwen3moe.json", json.dumps(dict(base, architectures=["Qwen3MoeForCausalLM"], model_type="qwen3_moe",
                                                num_experts=4, num_experts_per_tok=2, moe_intermediate_size=8,
                                                decoder_sparse_step=1, norm_topk_prob=True, mlp_only_layers=[])))
put("config", "gemma3.json", json.dumps(dict(base, architectures=["Gemma3ForCausalLM"], model_type="gemma3_text",
                                              hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=4,
                                              sliding_window=16, layer_types=["full_attention"],
                                              rope_local_base_freq=10000.0, final_logit_softcapping=None)))
put("config", "gemma4.json", json.dumps({"architectures": ["Gemma4ForConditionalGeneration"], "model_type": "gemma4",
                                          "text_config": dict(base, model_type="gemma4_text", hidden_activation="gelu_pytorch_tanh",
                                                              layer_types=["full_attention"], sliding_window=16,
                                                              global_head_dim=4, num_kv_shared_layers=0,
                                                              hidden_size_per_layer_input=0,
                                                              final_logit_softcapping=30.0)}))
put("config", "llama3_rope.json", json.dumps(dict(base, rope_theta=500000.0, rope_scaling={
    "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192})))

# --- tokenizer.json: the sample's (SentencePiece-style BPE with byte fallback), a byte-level BPE
put("tokenizer_json", "stories260K.json", read(os.path.join(sample, "tokenizer.json")))
byte_chars = [chr(c) for c in range(33, 127)] + [chr(0x100 + i) for i in range(8)]
vocab = {c: i for i, c in enumerate(byte_chars)}
vocab.update({"Ġt": len(vocab), "he": len(vocab) + 1})
put("tokenizer_json", "byte_level.json", json.dumps({
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [{"id": len(vocab), "content": "<|end|>", "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": False, "special": True}],
    "normalizer": None,
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
         "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
    "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
              "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
              "vocab": vocab, "merges": [["Ġ", "t"], ["h", "e"]]}}))

# --- tokenizer_config.json: the sample's, and one per fixture chat template
tc = json.loads(read(os.path.join(sample, "tokenizer_config.json")))
put("tokenizer_config", "stories260K.json", json.dumps(tc))
tdir = os.path.join(fixtures, "tokenizers")
for d in sorted(os.listdir(tdir)):
    p = os.path.join(tdir, d, "chat_template.jinja")
    if os.path.exists(p):
        put("tokenizer_config", d + ".json", json.dumps(dict(tc, chat_template=read(p).decode())))
        put("tokenizer_config", d + "_list.json", json.dumps(dict(tc, chat_template=[
            {"name": "default", "template": read(p).decode()}])))
q = os.path.join(tdir, "qwen3", "tokenizer_config.json")
if os.path.exists(q):
    put("tokenizer_config", "qwen3_full.json", read(q))

# --- .h5 and GGUF: written by temper from the tiny model
h5 = os.path.join(work, "tiny.h5")
subprocess.run([temper, "convert", hf, "-o", h5], check=True, stdout=subprocess.DEVNULL)
put("checkpoint", "tiny.h5", read(h5))
h5z = os.path.join(work, "tiny_zstd.h5")
subprocess.run([temper, "convert", hf, "-o", h5z, "--compress"], check=True, stdout=subprocess.DEVNULL)
put("checkpoint", "tiny_zstd.h5", read(h5z))
for t in ("F32", "F16"):
    g = os.path.join(work, f"tiny_{t}.gguf")
    subprocess.run([temper, "quantize", h5, "-t", t, "-o", g], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    put("gguf", f"tiny_{t}.gguf", read(g))


# --- imatrix: llama-imatrix's GGUF layout and the legacy .dat, for the tiny model's matrices
def gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf_imatrix(entries):
    kvs = (gguf_str("imatrix.datasets") + struct.pack("<IIQ", 9, 8, 1) + gguf_str("sample.txt")
           + gguf_str("imatrix.chunk_count") + struct.pack("<II", 4, 3)
           + gguf_str("imatrix.chunk_size") + struct.pack("<II", 4, 64))
    infos, data = b"", b""
    for name, vals in entries.items():
        for suffix, arr in ((".in_sum2", vals), (".counts", np.array([3.0], "<f4"))):
            infos += gguf_str(name + suffix) + struct.pack("<I", 1) + struct.pack("<Q", arr.size)
            infos += struct.pack("<IQ", 0, len(data))
            data += arr.astype("<f4").tobytes()
            data += b"\0" * (-len(data) % 32)
    head = b"GGUF" + struct.pack("<IQQ", 3, 2 * len(entries), 3) + kvs + infos
    return head + b"\0" * (-len(head) % 32) + data


mats = {"blk.0.attn_q.weight": D, "blk.0.ffn_down.weight": F}
ent = {n: rng.random(k).astype("<f4") * 3 for n, k in mats.items()}
put("imatrix", "tiny.gguf", gguf_imatrix(ent))
dat = struct.pack("<i", len(ent))
for n, v in ent.items():
    dat += struct.pack("<i", len(n)) + n.encode() + struct.pack("<ii", 3, v.size) + v.tobytes()
put("imatrix", "tiny.dat", dat + struct.pack("<ii", 3, 10) + b"sample.txt")

# --- torch_pickle: adapter_model.bin as torch.save writes it (f32, bf16 strided views, an
# OrderedDict with _metadata whose tensors share a storage)
import collections  # noqa: E402
import io  # noqa: E402
import torch  # noqa: E402


def torch_saved(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


g = torch.Generator().manual_seed(0)
a, b = torch.randn(2, 8, generator=g), torch.randn(8, 2, generator=g)
put("torch_pickle", "f32.bin", torch_saved({"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": a,
                                            "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": b}))
put("torch_pickle", "bf16_strided.bin", torch_saved({"x.lora_A.weight": a.bfloat16().t().contiguous().t(),
                                                     "x.lora_B.weight": b.half()}))
flat = torch.randn(32, generator=g)
od = collections.OrderedDict([("a", flat[:16].view(2, 8)), ("b", flat[16:].view(8, 2))])
od._metadata = {"": {"version": 1}}
put("torch_pickle", "ordered_shared.bin", torch_saved(od))

# --- tasks JSONL
qa = os.path.join(fixtures, "instruct", "derived", "gsm8k_test_qa.jsonl")
lines = read(qa).decode().splitlines()[:3] if os.path.exists(qa) else []
put("tasks", "gsm8k3.jsonl", "\n".join(lines) + "\n")
put("tasks", "choices.jsonl", '{"question": "2+2?", "choices": ["3", "4"], "answer": 1}\n\n'
                              '{"question": "Capital of France?", "answer": "#### 1,000.50"}\n')
# --- training JSONL: every record shape train --data reads (fixtures' GSM8K chat and Alpaca lines)
derived = os.path.join(fixtures, "instruct", "derived")
for f, n in (("gsm8k_train_messages.jsonl", 2), ("self_instruct_seed_alpaca.jsonl", 2)):
    if os.path.exists(os.path.join(derived, f)):
        put("train_data", f, "\n".join(read(os.path.join(derived, f)).decode().splitlines()[:n]) + "\n")
put("train_data", "shapes.jsonl", "\n".join(json.dumps(r) for r in [
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                  {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye"},
                  {"role": "assistant", "content": "Bye!"}]},
    {"prompt": "Once upon a time", "completion": " there was a cat."},
    {"prompt": [{"role": "user", "content": "2+2?"}], "completion": [{"role": "assistant", "content": "4"}]},
    {"instruction": "Add.", "input": "2 and 2", "output": "4"},
    {"instruction": "Greet.", "output": "Hello"},
    {"text": "A long story " * 20}]) + "\n")
shutil.rmtree(work)
