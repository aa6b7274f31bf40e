#!/usr/bin/python3
"""The benchmarks find the shared fixtures the way the tests do (TEMPER_FIXTURES, else
../shared/fixtures beside the checkout), never through a path of one machine (issue 13 item 10).

  bench_paths_test.py SOURCE_DIR
"""
import glob
import importlib
import os
import re
import sys

src = os.path.abspath(sys.argv[1])
sys.path.insert(0, os.path.join(src, "bench"))

os.environ.pop("TEMPER_FIXTURES", None)
import bench_runtime  # noqa: E402

beside = os.path.join(os.path.dirname(src), "shared", "fixtures", "text")
assert os.path.normpath(bench_runtime.TEXTS) == os.path.normpath(beside), (bench_runtime.TEXTS, beside)

os.environ["TEMPER_FIXTURES"] = "/some/where/fixtures"
importlib.reload(bench_runtime)
assert bench_runtime.TEXTS == "/some/where/fixtures/text", bench_runtime.TEXTS

# No benchmark names an absolute path of this machine.
machine_path = re.compile(r"""["'](/work|/home|/root|/mnt)/""")
bad = [f"{path}:{n}: {line.strip()}"
       for path in sorted(glob.glob(os.path.join(src, "bench", "*")))
       if path.endswith((".py", ".mjs", ".sh", ".cpp"))
       for n, line in enumerate(open(path, encoding="utf-8"), 1) if machine_path.search(line)]
assert not bad, "machine paths in bench/:\n" + "\n".join(bad)
print("bench paths ok:", bench_runtime.TEXTS)
