#!/usr/bin/python3
"""A checkpoint "trained for Q4_0", and an independent check of its GGUF (numpy + llama.cpp's
gguf-py; no temper code).

  qat_lattice.py snap SRC_DIR DST_DIR [--embeddings]
      Copy an HF Llama folder with every 2-D layer weight whose rows are whole 32-blocks (and,
      with --embeddings, model.embed_tokens.weight) snapped to a Q4_0 lattice: per block of 32,
      d = fp16(max|x| / 8) and q = clip(round(x / d), -8, 7), stored as d*q in the folder's dtype
      (bf16/f16 round it). Where a block's extreme is positive it is clipped to q = 7 and no
      element has q = -8: ggml's Q4_0 search (d = extreme / -8) then picks another scale, so the
      default quantizer does not reproduce such blocks. Prints {"snapped": [...names]}.
  qat_lattice.py snap SRC_DIR DST_DIR --half NAME
      The same for only the first half of tensor NAME's rows (a tensor partly on a lattice).
  qat_lattice.py check GGUF DIR
      Decode every Q4_0 tensor of GGUF with gguf-py (llama.cpp's reader and dequantizer) and
      compare it with DIR's tensor (Llama q/k rows permuted as llama.cpp's converter does),
      after rounding the decoded value to DIR's dtype: equal means the checkpoint's value is
      reproduced bit for bit (+0 and -0 count as equal). Prints
      {"tensors": n, "elements": n, "mismatched": n, "types": {...}, "per_tensor": {...}}.
"""
import json
import os
import re
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from st_tool import DTYPES, copy_dir, read_hf_dir, write_safetensors  # noqa: E402

REF = os.environ.get("TEMPER_LLAMA_REF_DIR", os.path.join(HERE, "..", "..", ".llama-ref"))
LAYER_WEIGHT = re.compile(r"model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj\.weight$")


def to_f32(dtype, raw, shape):
    a = np.frombuffer(raw, dtype=DTYPES[dtype][0]).reshape(shape)
    if dtype == "BF16":
        return (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float32)


def round_to(dtype, x):
    """f32 -> the checkpoint's dtype (round to nearest even) -> f32."""
    x = np.asarray(x, dtype=np.float32)
    if dtype == "F32":
        return x
    if dtype == "F16":
        return x.astype(np.float16).astype(np.float32)
    u = x.view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32)


def encode(dtype, x):
    x = round_to(dtype, x)
    if dtype == "BF16":
        return (x.view(np.uint32) >> 16).astype(np.uint16).tobytes()
    return x.astype(DTYPES[dtype][0]).tobytes()


def snap(src, dst, embeddings, half=None):
    tensors = read_hf_dir(src)
    snapped = []
    for name, (dtype, shape, raw) in tensors.items():
        eligible = LAYER_WEIGHT.match(name) or (embeddings and name == "model.embed_tokens.weight")
        if half is not None:
            eligible = name == half
        if not eligible or len(shape) != 2 or shape[1] % 32:
            continue
        w = to_f32(dtype, raw, shape)
        rows = shape[0] // 2 if half else shape[0]
        blocks = w[:rows].reshape(-1, 32)
        amax = np.abs(blocks).max(axis=1, keepdims=True)
        d = (amax / 8).astype(np.float16).astype(np.float32)
        d[d == 0] = 1
        q = np.clip(np.rint(blocks / d), -8, 7)
        w[:rows] = (d * q).reshape(rows, shape[1])
        tensors[name] = (dtype, shape, encode(dtype, w))
        snapped.append(name)
    copy_dir(src, dst)
    for fn in os.listdir(dst):
        if fn.endswith(".safetensors") or fn.endswith(".safetensors.index.json"):
            os.remove(os.path.join(dst, fn))
    write_safetensors(os.path.join(dst, "model.safetensors"), tensors)
    print(json.dumps({"snapped": snapped}))
    return 0


def hf_name(gguf_name):
    if gguf_name == "token_embd.weight":
        return "model.embed_tokens.weight"
    if gguf_name == "output.weight":
        return "lm_head.weight"
    m = re.match(r"blk\.(\d+)\.(\w+)\.weight$", gguf_name)
    parts = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
             "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
             "ffn_down": "mlp.down_proj"}
    return f"model.layers.{m.group(1)}.{parts[m.group(2)]}.weight" if m and m.group(2) in parts else None


def permute(w, n_head, n_head_kv):
    """llama.cpp convert_hf_to_gguf.py LlamaModel.permute: HF's rotary halves -> interleaved."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def check(gguf_path, hf_dir):
    sys.path.insert(0, os.path.join(REF, "llama.cpp", "gguf-py"))
    import gguf  # noqa: E402

    cfg = json.load(open(os.path.join(hf_dir, "config.json")))
    n_head, n_head_kv = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    tensors = read_hf_dir(hf_dir)
    reader = gguf.GGUFReader(gguf_path)
    out = {"tensors": 0, "elements": 0, "mismatched": 0, "types": {}, "per_tensor": {}}
    for t in reader.tensors:
        type_name = t.tensor_type.name
        out["types"][type_name] = out["types"].get(type_name, 0) + 1
        name = hf_name(t.name)
        if t.tensor_type != gguf.GGMLQuantizationType.Q4_0 or name not in tensors:
            continue
        dtype, shape, raw = tensors[name]
        want = to_f32(dtype, raw, shape)
        if t.name.endswith("attn_q.weight"):
            want = permute(want, n_head, n_head)
        elif t.name.endswith("attn_k.weight"):
            want = permute(want, n_head, n_head_kv)
        got = round_to(dtype, gguf.quants.dequantize(t.data, t.tensor_type).reshape(want.shape))
        bad = int(np.count_nonzero(got != want))
        out["tensors"] += 1
        out["elements"] += int(want.size)
        out["mismatched"] += bad
        out["per_tensor"][t.name] = bad
    print(json.dumps(out))
    return 0


def main(argv):
    if len(argv) >= 3 and argv[0] == "snap":
        half = argv[argv.index("--half") + 1] if "--half" in argv[3:] else None
        return snap(argv[1], argv[2], "--embeddings" in argv[3:], half)
    if len(argv) == 3 and argv[0] == "check":
        return check(argv[1], argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
