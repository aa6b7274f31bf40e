#!/usr/bin/python3
"""PEFT-semantics reference for temper's LoRA paths, written from PEFT's documented format and
formula, sharing no code with temper's C++:

* `make`: random LoRA weights (non-zero A and B) for a Llama HF checkpoint, saved the way PEFT's
  `save_pretrained` lays them out: adapter_config.json (peft_type LORA, r, lora_alpha,
  use_rslora, target_modules, ...) + adapter_model.safetensors with keys
  `base_model.model.model.layers.{L}.self_attn.q_proj.lora_A.weight` (A: [r, in], B: [out, r]);
  the same tensors in adapter_model.bin (torch.save of the state dict) in a second folder; and
  the same adapter in temper's .h5 layout (docs/adapter-format.md, written with h5py). On
  Phi-3, targets q,k,v,gate,up are temper's adapters on the row blocks of qkv_proj and
  gate_up_proj (each its own A): only adapter.h5 is written then (PEFT has no such modules);
  qkv and gate_up are PEFT's fused modules.
* `logits`: float64 logits of the HF Llama model (tests/forward/torch_ref.py's pieces via
  tests/train/torch_lora_ref.py) with every projection computing PEFT's LoRA Linear forward,
  `W x + scaling * B(A(x))`, scaling = lora_alpha / r (use_rslora: lora_alpha / sqrt(r)),
  dropout off; several adapters add up (PEFT's add_weighted_adapter-free stacking), each times
  its multiplier.

    peft_ref.py make MODEL_DIR OUT_DIR RANK ALPHA RSLORA(0/1) SEED TARGETS(q,k,...|all)
    peft_ref.py logits MODEL_DIR IDS(comma-separated) OUT.f64 [PEFT_DIR[:MULT] ...]
    peft_ref.py pickles PEFT_DIR OUT_DIR

* `pickles`: adapter_model.bin variants of a PEFT folder's tensors as real PyTorch writes them
  (torch.save), each in its own folder with the same adapter_config.json: `bin_bf16_strided`
  (bfloat16, every matrix a transposed view, so strides are not row-major) beside
  `st_bf16` (the same bfloat16-rounded values as f32 safetensors, the expected result);
  `bin_ordered_shared` (an OrderedDict with `_metadata`, as model.state_dict() saves it, where
  each A and B are views into one shared storage); `bin_evil` (a pickle that calls os.system
  when Python loads it: it would create OUT_DIR/pwned); `bin_legacy` (PyTorch's pre-1.6
  format).
"""
import hashlib
import json
import math
import os
import re
import struct
import sys

import h5py
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "train"))
sys.path.insert(0, os.path.join(HERE, "..", "forward"))
import torch_lora_ref as L  # noqa: E402
import torch_ref as R  # noqa: E402

F = torch.float64
# temper's architecture ids (base_arch in its adapter file) of the HF architectures.
ARCH_IDS = {"LlamaForCausalLM": "llama", "Qwen3ForCausalLM": "qwen3", "Qwen3MoeForCausalLM": "qwen3moe",
            "Gemma3ForCausalLM": "gemma3", "Gemma3ForConditionalGeneration": "gemma3",
            "Gemma4ForConditionalGeneration": "gemma4", "Gemma4ForCausalLM": "gemma4",
            "Phi3ForCausalLM": "phi3"}
# qkv and gate_up: Phi-3's fused modules, which PEFT adapts as one nn.Linear each.
MODULES = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
           "o": "self_attn.o_proj", "gate": "mlp.gate_proj", "up": "mlp.up_proj",
           "down": "mlp.down_proj", "qkv": "self_attn.qkv_proj", "gate_up": "mlp.gate_up_proj"}
PREFIXES = ["model.language_model.", "language_model.model.", "model.", ""]


def layer_prefix(tensors):
    """The checkpoint's own prefix of its text layers ("model." for Llama/Qwen 3, "model.language_model."
    for Gemma 4 and multimodal Gemma 3): PEFT keys are base_model.model. + that + layers.{L}...."""
    for p in PREFIXES:
        if any(k.startswith(p + "layers.") for k in tensors):
            return p
    raise KeyError("no text layers in the checkpoint")


def write_safetensors(path, tensors):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, arr in tensors.items():
        b = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (name, info["dtype"])
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], "<f4").reshape(info["shape"]).astype(np.float64)
    return out


def make(model_dir, out_dir, rank, alpha, rslora, seed, targets):
    c = json.load(open(os.path.join(model_dir, "config.json")))
    text = c.get("text_config", c)
    st = R.load_safetensors(model_dir)
    w, prefix = R.W(st, PREFIXES), "base_model.model." + layer_prefix(st) + "layers."
    names = list(MODULES) if targets == "all" else targets.split(",")
    rng = np.random.default_rng(seed)
    tensors = {}
    # expert_gate/up/down: every expert's own projection (Qwen 3 MoE's mlp.experts.E.*_proj).
    modules = [m for t in names for m in
               ([MODULES[t]] if not t.startswith("expert_") else
                ["mlp.experts.%d.%s_proj" % (e, t[len("expert_"):]) for e in range(text.get("num_experts", 0))])]
    blocks = R.phi3_row_blocks(text)
    for layer in range(text["num_hidden_layers"]):
        for module in modules:
            # Layers without the projection (v in Gemma 4's k_eq_v layers, K/V of KV-shared
            # layers, the dense MLP of MoE layers) have no adapter on it, as in PEFT.
            name = "layers.%d.%s.weight" % (layer, module)
            if w.has(name):
                out_f, in_f = w(name).shape
            elif targets != "all" and module in blocks and w.has("layers.%d.%s.weight" % (layer, blocks[module][0])):
                # temper's adapter on a row block of a fused module (Phi-3's q_proj in qkv_proj)
                out_f, in_f = blocks[module][2], w("layers.%d.%s.weight" % (layer, blocks[module][0])).shape[1]
            else:
                continue
            key = prefix + "%d.%s" % (layer, module)
            tensors[key + ".lora_A.weight"] = rng.uniform(-1, 1, (rank, in_f)) / math.sqrt(in_f)
            tensors[key + ".lora_B.weight"] = rng.uniform(-0.3, 0.3, (out_f, rank))
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": alpha,
              "use_rslora": bool(rslora), "target_modules": sorted({m.split(".")[-1] for m in modules}),
              "lora_dropout": 0.0, "bias": "none", "fan_in_fan_out": False, "use_dora": False,
              "modules_to_save": None, "init_lora_weights": True, "layers_to_transform": None,
              "rank_pattern": {}, "alpha_pattern": {}, "base_model_name_or_path": model_dir}
    # temper's split blocks have no PEFT module of their name: only adapter.h5 is written then.
    split = targets != "all" and any(m in blocks and not w.has("layers.0.%s.weight" % m) for m in modules)
    for sub in () if split else ("peft", "peft_bin"):
        os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
        json.dump(config, open(os.path.join(out_dir, sub, "adapter_config.json"), "w"), indent=2)
    if not split:
        write_safetensors(os.path.join(out_dir, "peft", "adapter_model.safetensors"), tensors)
        torch.save({k: torch.tensor(v, dtype=torch.float32) for k, v in tensors.items()},
                   os.path.join(out_dir, "peft_bin", "adapter_model.bin"))
    os.makedirs(out_dir, exist_ok=True)
    # As temper writes it (docs/adapter-format.md): HDF5's 1.10 format, fixed-length strings
    # (np.bytes_; h5py would store a str as a variable-length string, which temper refuses).
    with h5py.File(os.path.join(out_dir, "adapter.h5"), "w", libver=("v110", "v110")) as f:
        f.attrs["format"] = np.bytes_("temper-lora")
        f.attrs["format_version"] = np.int32(1)
        f.attrs["rank"] = np.int32(rank)
        f.attrs["alpha"] = np.float32(alpha)
        f.attrs["scale"] = np.float32(alpha / math.sqrt(rank) if rslora else alpha / rank)
        f.attrs["rslora"] = np.int32(1 if rslora else 0)
        f.attrs["targets"] = np.bytes_(",".join(names))
        f.attrs["base_arch"] = np.bytes_(ARCH_IDS[c["architectures"][0]])
        f.attrs["base_hf_architecture"] = np.bytes_(c["architectures"][0])
        f.attrs["base_config_sha256"] = np.bytes_(hashlib.sha256(
            open(os.path.join(model_dir, "config.json"), "rb").read()).hexdigest())
        f.attrs["training_args"] = np.bytes_("{}")
        g = f.create_group("adapters", track_order=True)
        for key, arr in tensors.items():  # temper names adapters by the canonical model.layers...
            name = "model." + key[len(prefix) - len("layers."):].replace(".lora_A.weight", ".lora_A").replace(
                ".lora_B.weight", ".lora_B")
            g.create_dataset(name, data=arr.astype("<f4"))
    return 0


def pattern_value(pattern, module, default):
    """PEFT's get_pattern_key (peft/utils/other.py): the first key k of rank_pattern or
    alpha_pattern with re.match(rf"(.*\.)?({k})$", module), matched against the module's name
    in the model PEFT wraps; else the config's r or lora_alpha."""
    for k, v in (pattern or {}).items():
        if re.match(r"(.*\.)?(%s)$" % k, module):
            return v
    return default


def load_peft(spec):
    """A PEFT folder (optionally DIR:MULT) -> {(layer, module): (A, B)} with the multiplier and
    PEFT's scaling (per module: rank_pattern/alpha_pattern) folded into B."""
    d, mult = spec, 1.0
    if ":" in spec and not os.path.exists(spec):
        d, m = spec.rsplit(":", 1)
        mult = float(m)
    cfg = json.load(open(os.path.join(d, "adapter_config.json")))
    r, alpha = cfg["r"], cfg["lora_alpha"]
    st = os.path.join(d, "adapter_model.safetensors")
    if os.path.exists(st):
        t = read_safetensors(st)
    else:
        t = {k: v.double().numpy() for k, v in torch.load(os.path.join(d, "adapter_model.bin")).items()}
    out = {}
    for key, a in t.items():
        if not key.endswith(".lora_A.weight"):
            continue
        mod = key[key.index("layers.") + len("layers."):-len(".lora_A.weight")]
        layer, module = mod.split(".", 1)
        b = t[key.replace(".lora_A.", ".lora_B.")]
        name = key[len("base_model.model."):-len(".lora_A.weight")]
        r_m = pattern_value(cfg.get("rank_pattern"), name, r)
        alpha_m = pattern_value(cfg.get("alpha_pattern"), name, alpha)
        assert a.shape[0] == r_m and b.shape[1] == r_m, (key, a.shape, b.shape, r_m)
        scaling = alpha_m / math.sqrt(r_m) if cfg.get("use_rslora") else alpha_m / r_m
        out[(int(layer), module)] = (torch.tensor(a, dtype=F), torch.tensor(b, dtype=F) * (scaling * mult))
    return out


def logits(model_dir, ids, out_path, specs):
    c = json.load(open(os.path.join(model_dir, "config.json")))
    w = R.W(R.load_safetensors(model_dir), PREFIXES)
    adapters = {}
    for spec in specs:  # stack adapters along the rank: sum_i B_i A_i x
        for k, (a, b) in load_peft(spec).items():
            if k in adapters:
                a0, b0 = adapters[k]
                a, b = torch.cat([a0, a], 0), torch.cat([b0, b], 1)
            adapters[k] = (a, b)
    with torch.no_grad():
        out = L.lora_forward(c, w, torch.tensor([int(x) for x in ids.split(",")]), adapters, 1.0)
    out.numpy().astype("<f8").tofile(out_path)
    return 0


def pickles(peft_dir, out_dir):
    import collections
    import shutil
    t = {k: torch.tensor(v, dtype=torch.float32) for k, v in read_safetensors(
        os.path.join(peft_dir, "adapter_model.safetensors")).items()}

    def folder(name):
        d = os.path.join(out_dir, name)
        os.makedirs(d, exist_ok=True)
        shutil.copy(os.path.join(peft_dir, "adapter_config.json"), d)
        return d

    bf = {k: v.to(torch.bfloat16) for k, v in t.items()}
    strided = {k: v.t().contiguous().t() for k, v in bf.items()}
    assert all(not v.is_contiguous() for v in strided.values() if min(v.shape) > 1)
    torch.save(strided, os.path.join(folder("bin_bf16_strided"), "adapter_model.bin"))
    write_safetensors(os.path.join(folder("st_bf16"), "adapter_model.safetensors"),
                      {k: v.float().numpy() for k, v in bf.items()})

    shared = collections.OrderedDict()
    for k in t:
        if k.endswith(".lora_A.weight"):
            b = k[:-len(".lora_A.weight")] + ".lora_B.weight"
            flat = torch.cat([t[k].flatten(), t[b].flatten()])  # one storage for the pair
            shared[k] = flat[:t[k].numel()].view(t[k].shape)
            shared[b] = flat[t[k].numel():].view(t[b].shape)
    shared._metadata = {"": {"version": 1}}
    torch.save(shared, os.path.join(folder("bin_ordered_shared"), "adapter_model.bin"))

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + os.path.join(out_dir, "pwned"),))
    torch.save({"base_model.model.x": Evil()}, os.path.join(folder("bin_evil"), "adapter_model.bin"))
    torch.save(t, os.path.join(folder("bin_legacy"), "adapter_model.bin"), _use_new_zipfile_serialization=False)
    return 0


if __name__ == "__main__":
    a = sys.argv[1:]
    if a[0] == "pickles":
        sys.exit(pickles(a[1], a[2]))
    if a[0] == "make":
        sys.exit(make(a[1], a[2], int(a[3]), float(a[4]), int(a[5]), int(a[6]), a[7]))
    sys.exit(logits(a[1], a[2], a[3], a[4:]))
