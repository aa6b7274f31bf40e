"""What the quantize script tests on the sample model share: the paths, llama.cpp's gguf-py (its
own readers and block decoders, from the reference install), running temper, and a check list
that reports every failure before the test fails."""
import os
import subprocess
import sys

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(SRC, ".llama-ref", "llama.cpp", "gguf-py"))
import gguf  # noqa: E402,F401
from gguf import quants  # noqa: E402,F401

TEMPER = os.environ["TEMPER_BIN"]
MODEL = os.path.join(SRC, "sample", "stories260K")
CALIB = os.path.join(SRC, "sample", "facts_train.jsonl")
HELD_OUT = os.path.join(SRC, "sample", "tinystories_sample.txt")
failures = []
__all__ = ["SRC", "TEMPER", "MODEL", "CALIB", "HELD_OUT", "gguf", "quants", "run", "check", "finish"]


def run(args, ok=True):
    """temper ARGS; exits the test with temper's stderr when it fails and `ok`."""
    r = subprocess.run([TEMPER] + args, capture_output=True, text=True)
    if ok and r.returncode != 0:
        sys.exit("temper %s failed:\n%s" % (" ".join(args), r.stderr))
    return r


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        failures.append(msg)


def finish():
    if failures:
        sys.exit("%d checks failed" % len(failures))
