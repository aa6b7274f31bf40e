"""Test shim, not transformers: lets llama.cpp's own convert_hf_to_gguf.py (from the bundled
llama.cpp release) run with Debian's Python, which has no `transformers`. The converter falls
back to reading config.json itself when AutoConfig fails; AutoTokenizer is only needed for BPE
vocabularies, which the reference conversions in the tests do not use."""


class AutoConfig:
    @staticmethod
    def from_pretrained(*args, **kwargs):
        raise OSError("transformers is not installed (temper test shim)")


class AutoTokenizer:
    @staticmethod
    def from_pretrained(*args, **kwargs):
        raise OSError("transformers is not installed (temper test shim)")
