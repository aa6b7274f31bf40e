"""Runs llama.cpp's convert_hf_to_gguf.py with the vocabulary step of Gemma 4 and Qwen3-MoE
switched off: their vocab paths need transformers.AutoTokenizer, which Debian's Python lacks,
so only their non-tokenizer keys and tensors can be compared with the reference.
  convert_no_vocab.py LLAMA_CPP_DIR HF_DIR --outfile OUT --outtype f32"""
import runpy
import sys

ref = sys.argv[1]
sys.path.insert(0, ref)
import conversion.gemma  # noqa: E402
import conversion.qwen  # noqa: E402

for cls in (conversion.gemma.Gemma4Model, conversion.qwen.Qwen3MoeModel):
    cls.set_vocab = lambda self: None
sys.argv = [ref + "/convert_hf_to_gguf.py"] + sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
