# Test shim: lets llama.cpp's convert_hf_to_gguf.py import under Debian's PyTorch 1.13.
# Test shim: the Debian PyTorch (1.13) predates these dtypes; the converter only uses them as dict keys.
try:
    import torch
    for _n in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "uint16", "uint32", "uint64"):
        if not hasattr(torch, _n):
            setattr(torch, _n, type("dtype_" + _n, (), {})())
except Exception:
    pass
